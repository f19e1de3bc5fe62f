"""Finding providers: built-ins by name, third-party ones by entry point, each in isolation."""

import sys
import textwrap
import types

import pytest

from core.hookspecs import hookimpl
from core.models import CheckResult
from core.plugins import ENTRY_POINT_GROUP, ProviderRegistry
from core.providers import Provider


class EchoProvider(Provider):
    id = "echo"
    label = "Echo"
    remote = False

    def check(self, image, data, ctx):
        return CheckResult(face_seg=False)


def plugin(name, fn):
    module = types.ModuleType(name)
    module.register_providers = hookimpl(fn)
    return module


def test_builtin_providers_are_registered_explicitly():
    registry = ProviderRegistry(load_entry_points=False)
    assert {"local", "cometapi", "useapi"} <= set(registry.providers)
    assert registry.problems == []
    assert registry.origin("local") == "plugins.local"


def test_a_plugin_that_raises_is_named_and_the_others_still_load():
    def boom(register):
        raise RuntimeError("broken on purpose")

    registry = ProviderRegistry(
        builtins=(),
        load_entry_points=False,
        extra_plugins=[plugin("broken_plugin", boom), plugin("good_plugin", lambda register: register(EchoProvider))],
    )
    assert list(registry.providers) == ["echo"]
    assert [(p.plugin, "broken on purpose" in p.message) for p in registry.problems] == [("broken_plugin", True)]


def test_registering_something_that_is_not_a_provider_is_reported():
    registry = ProviderRegistry(
        builtins=(), load_entry_points=False, extra_plugins=[plugin("odd", lambda register: register(dict))]
    )
    assert registry.providers == {}
    assert "not a Provider class" in registry.problems[0].message


def test_a_duplicate_id_keeps_the_first_and_says_who_took_it():
    registry = ProviderRegistry(
        builtins=(),
        load_entry_points=False,
        extra_plugins=[
            plugin("first", lambda register: register(EchoProvider)),
            plugin("second", lambda register: register(EchoProvider)),
        ],
    )
    assert registry.origin("echo") == "first"
    assert "already taken by first" in registry.problems[0].message


def test_a_hook_with_a_wrong_signature_is_rejected_by_pluggy():
    registry = ProviderRegistry(
        builtins=(), load_entry_points=False, extra_plugins=[plugin("wrong", lambda register, extra: None)]
    )
    assert registry.providers == {}
    assert registry.problems and registry.problems[0].plugin == "wrong"


def test_unknown_provider_error_lists_the_known_ones():
    registry = ProviderRegistry(load_entry_points=False)
    with pytest.raises(KeyError) as info:
        registry.get("nope")
    assert "local" in info.value.args[0]


def test_third_party_providers_come_from_the_entry_point_group(tmp_path, monkeypatch):
    """A real installed distribution (a dist-info folder on sys.path) with one good and
    one broken entry point: the good one is used, the broken one named."""
    (tmp_path / "kp_good_plugin.py").write_text(
        textwrap.dedent(
            """
            from core.hookspecs import hookimpl
            from core.models import CheckResult
            from core.providers import Provider

            class ThirdParty(Provider):
                id = "thirdparty"
                label = "Third party"
                remote = False

                def check(self, image, data, ctx):
                    return CheckResult()

            @hookimpl
            def register_providers(register):
                register(ThirdParty)
            """
        )
    )
    dist = tmp_path / "kp_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kp-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ngood = kp_good_plugin\nbroken = kp_missing_module\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "kp_good_plugin", raising=False)
    registry = ProviderRegistry(builtins=())
    assert "thirdparty" in registry.providers
    assert registry.origin("thirdparty").startswith("good")
    broken = [p for p in registry.problems if p.plugin.startswith("broken")]
    assert broken and "kp_missing_module" in broken[0].message
