import json
import logging
import os

import pytest

from core.paths import app_paths
from core.providers import SettingSpec
from core.settings import (
    MAX_RECENT_FOLDERS,
    AppSettings,
    SettingsError,
    load_settings,
    parse_setting_assignment,
    resolve_provider_settings,
    save_settings,
)


class CometLike:
    """What resolve_provider_settings reads from a provider class: its id and its spec."""

    id = "cometapi"
    settings_spec = (
        SettingSpec("base_url", "Base URL", "https://vendor.example.com"),
        SettingSpec("concurrency", "Parallel requests", 4, int),
        SettingSpec("read_timeout", "Read timeout (s)", 60.0, float),
        SettingSpec("connect_timeout", "Connect timeout (s)", 10.0, float),
        SettingSpec("model", "Model", "kling-v1"),
    )


@pytest.fixture
def paths(app_home):
    return app_paths()


def test_missing_file_gives_defaults(paths):
    settings = load_settings(paths)
    assert settings == AppSettings()
    assert settings.deep_check is True and settings.retry_ambiguous is False
    assert settings.default_provider is None and settings.recent_folders == ()


def test_round_trip_through_the_file_under_the_relocated_home(paths, tmp_path):
    settings = (
        AppSettings(retry_ambiguous=True, deep_check=False)
        .with_provider_value("cometapi", "base_url", "http://127.0.0.1:8080")
        .with_provider_value("cometapi", "concurrency", 8)
        .with_provider_value("useapi", "read_timeout", 30.5)
        .with_default_provider("useapi")
        .with_recent_folder(tmp_path / "a")
        .with_recent_folder(tmp_path / "b")
    )
    save_settings(paths, settings)
    assert paths.settings == tmp_path / "home" / "settings.json"
    loaded = load_settings(paths)
    assert loaded == settings
    assert loaded.providers["cometapi"] == {"base_url": "http://127.0.0.1:8080", "concurrency": 8}
    assert loaded.recent_folders == (str(tmp_path / "b"), str(tmp_path / "a"))
    assert loaded.default_provider == "useapi"


def test_with_methods_return_new_instances_and_leave_the_original_alone():
    original = AppSettings().with_provider_value("cometapi", "concurrency", 2)
    changed = original.with_provider_value("cometapi", "concurrency", 3)
    assert original.providers["cometapi"]["concurrency"] == 2
    assert changed.providers["cometapi"]["concurrency"] == 3
    with pytest.raises(TypeError):
        original.providers["cometapi"]["concurrency"] = 9  # read-only view


def test_recent_folders_most_recent_first_no_duplicates_at_most_ten(tmp_path):
    settings = AppSettings()
    for i in range(12):
        settings = settings.with_recent_folder(tmp_path / str(i))
    settings = settings.with_recent_folder(tmp_path / "5")
    assert settings.recent_folders[0] == str(tmp_path / "5")
    assert len(settings.recent_folders) == MAX_RECENT_FOLDERS
    assert len(set(settings.recent_folders)) == MAX_RECENT_FOLDERS
    assert settings.recent_folders[1] == str(tmp_path / "11")
    assert str(tmp_path / "0") not in settings.recent_folders


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"recent_folders": "oops"}', b"\xff\xfe\x00"])
def test_broken_file_gives_defaults_and_is_kept_aside(paths, caplog, content):
    paths.home.mkdir(parents=True)
    paths.settings.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="core.settings"):
        settings = load_settings(paths)
    assert settings == AppSettings()
    assert not paths.settings.exists()
    assert (paths.home / "settings.json.broken").read_bytes() == content
    assert any("settings.json.broken" in r.getMessage() for r in caplog.records)


def test_a_hand_edited_file_with_a_byte_order_mark_is_read(paths):
    paths.home.mkdir(parents=True)
    paths.settings.write_text('{"default_provider": "local"}', encoding="utf-8-sig")
    assert load_settings(paths).default_provider == "local"


def test_save_after_a_broken_file_writes_a_fresh_one(paths):
    paths.home.mkdir(parents=True)
    paths.settings.write_text("{")
    save_settings(paths, load_settings(paths).with_default_provider("local"))
    assert load_settings(paths).default_provider == "local"


def test_failed_replace_leaves_the_old_file_whole_and_no_temporary_file(paths, monkeypatch):
    save_settings(paths, AppSettings().with_default_provider("cometapi"))
    before = paths.settings.read_bytes()

    def replace_fails(src, dst):
        # The temporary file must be beside the target, or os.replace could not be atomic.
        assert os.path.dirname(src) == str(paths.home)
        assert json.loads(open(src, encoding="utf-8").read())["default_provider"] == "useapi"
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", replace_fails)
    with pytest.raises(OSError, match="disk full"):
        save_settings(paths, AppSettings().with_default_provider("useapi"))
    monkeypatch.undo()
    assert paths.settings.read_bytes() == before
    assert sorted(p.name for p in paths.home.iterdir()) == ["settings.json"]


def test_unserialisable_value_writes_nothing(paths):
    save_settings(paths, AppSettings().with_default_provider("cometapi"))
    before = paths.settings.read_bytes()
    with pytest.raises(TypeError):
        save_settings(paths, AppSettings().with_provider_value("cometapi", "model", object()))
    assert paths.settings.read_bytes() == before
    assert sorted(p.name for p in paths.home.iterdir()) == ["settings.json"]


@pytest.mark.parametrize("name", ["key", "api_key", "API-KEY", "token", "secret", "access_token", "password"])
def test_key_like_names_are_refused_everywhere(paths, name):
    with pytest.raises(ValueError, match="keys are not kept in settings"):
        AppSettings().with_provider_value("cometapi", name, "sk-123456")
    with pytest.raises(ValueError, match="keys are not kept in settings"):
        parse_setting_assignment(f"{name}=sk-123456")
    # Built directly, past the with_ method: saving still refuses, and writes nothing.
    with pytest.raises(ValueError):
        save_settings(paths, AppSettings(providers={"cometapi": {name: "sk-123456"}}))
    assert not paths.settings.exists()


def test_names_that_merely_contain_key_letters_are_settings():
    settings = AppSettings().with_provider_value("cometapi", "keyframes", 3).with_provider_value("x", "monkey", 1)
    assert settings.providers["cometapi"]["keyframes"] == 3


def test_hand_edited_key_in_the_file_is_dropped_on_load(paths, caplog):
    paths.home.mkdir(parents=True)
    paths.settings.write_text(json.dumps({"providers": {"cometapi": {"api_key": "sk-abcdef", "concurrency": 2}}}))
    with caplog.at_level(logging.WARNING, logger="core.settings"):
        settings = load_settings(paths)
    assert settings.providers["cometapi"] == {"concurrency": 2}
    assert all("sk-abcdef" not in r.getMessage() for r in caplog.records)


def test_resolve_uses_spec_defaults_when_nothing_is_saved():
    assert resolve_provider_settings(AppSettings(), CometLike) == {
        "base_url": "https://vendor.example.com",
        "concurrency": 4,
        "read_timeout": 60.0,
        "connect_timeout": 10.0,
        "model": "kling-v1",
    }


def test_resolve_converts_saved_text_to_each_kind_and_ignores_unknown_names():
    settings = AppSettings(
        providers={"cometapi": {"concurrency": " 16 ", "read_timeout": "2.5", "connect_timeout": 3, "model": 7,
                                "retired_setting": "x"}}
    )
    resolved = resolve_provider_settings(settings, CometLike)
    assert resolved["concurrency"] == 16 and type(resolved["concurrency"]) is int
    assert resolved["read_timeout"] == 2.5
    assert resolved["connect_timeout"] == 3.0 and type(resolved["connect_timeout"]) is float
    assert resolved["model"] == "7"
    assert "retired_setting" not in resolved


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("concurrency", 0, "cometapi concurrency: 0 is outside 1 to 32"),
        ("concurrency", 33, "cometapi concurrency: 33 is outside 1 to 32"),
        ("concurrency", "many", "cometapi concurrency: 'many' is not a whole number"),
        ("concurrency", 2.5, "cometapi concurrency: 2.5 is not a whole number"),
        ("concurrency", True, "cometapi concurrency: True is not a whole number"),
        ("read_timeout", 0, "cometapi read_timeout: a timeout must be more than 0 seconds"),
        ("connect_timeout", "-1", "cometapi connect_timeout: a timeout must be more than 0 seconds"),
        ("read_timeout", "soon", "cometapi read_timeout: 'soon' is not a number"),
        ("read_timeout", "nan", "cometapi read_timeout: 'nan' is not a number"),
        ("model", ["a"], "cometapi model: \\['a'\\] is not text"),
    ],
)
def test_resolve_refuses_invalid_values_with_a_sentence_naming_provider_and_setting(name, value, says):
    settings = AppSettings().with_provider_value("cometapi", name, value)
    with pytest.raises(SettingsError, match=f"^{says}") as caught:
        resolve_provider_settings(settings, CometLike)
    assert caught.value.provider_id == "cometapi" and caught.value.setting == name
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8123", "https://vendor.example.com", "http://localhost:9000"])
def test_resolve_accepts_https_and_loopback_http_base_urls(url):
    settings = AppSettings().with_provider_value("cometapi", "base_url", url)
    assert resolve_provider_settings(settings, CometLike)["base_url"].rstrip("/") == url


@pytest.mark.parametrize("url", ["http://example.com", "https://user:pw@api.cometapi.com", "ftp://example.com"])
def test_resolve_refuses_unsafe_base_urls(url):
    settings = AppSettings().with_provider_value("cometapi", "base_url", url)
    with pytest.raises(SettingsError, match="^cometapi base_url: ") as caught:
        resolve_provider_settings(settings, CometLike)
    assert "pw" not in str(caught.value).replace("cometapi", "")


def test_parse_setting_assignment_splits_at_the_first_equals():
    assert parse_setting_assignment("base_url=https://x.test/?a=b") == ("base_url", "https://x.test/?a=b")
    assert parse_setting_assignment(" concurrency = 4") == ("concurrency", " 4")


@pytest.mark.parametrize("text", ["base_url", "=https://x.test", ""])
def test_parse_setting_assignment_refuses_text_without_a_name_and_value(text):
    with pytest.raises(ValueError, match="is not name=value"):
        parse_setting_assignment(text)
