"""Secrets: base URLs that would leak a key are refused, and no key is left anywhere.

The sweep runs after every other test of the session (``sweep_last``). It first runs a
workload of its own that tempts every path a key could leak through (a server that echoes
the key in its errors and its answers, verbose logging, ``providers --check``, exports),
then reads every file the session wrote (databases with their -wal files, exports, logs,
captured output of the command line) and looks for every key the suite handed out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import main
from core.events import Finished
from core.logs import remove_handlers
from core.runner import BatchRunner, RunOptions
from tests.fakes import Respond
from tests.fakes.cometapi import kling_error

SECRET = "sk-in-url-7c1f0e2b9a"


def cli(args: list[str], home: Path, env_extra: dict[str, str] | None = None):
    env = {**os.environ, "KLING_PREFLIGHT_HOME": str(home), **(env_extra or {})}
    for name in ("KLING_PREFLIGHT_COMETAPI_KEY", "KLING_PREFLIGHT_USEAPI_KEY"):
        if name not in (env_extra or {}):
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


REFUSED = [
    f"https://user:{SECRET}@api.cometapi.com",
    f"https://{SECRET}@api.cometapi.com",
    f"http://user:{SECRET}@127.0.0.1:8080",
    f"https://vendor.example.com/?key={SECRET}",
    "http://vendor.example.com",
    "http://10.0.0.7:8080",
    "http://192.168.1.20",
    "http://localhost.example.com",
    "http://127.0.0.1.nip.io:8080",
]
ACCEPTED = ["https://vendor.example.com", "http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:8080"]


@pytest.fixture
def run_cli(tmp_path):
    """The command line in this process (click's runner), with its own home; its log
    handlers are removed afterwards."""
    home = tmp_path / "home"

    def run(*args: str, key: str | None = None):
        env = {"KLING_PREFLIGHT_HOME": str(home), "KLING_PREFLIGHT_COMETAPI_KEY": key, "KLING_PREFLIGHT_USEAPI_KEY": None}
        return CliRunner().invoke(main, list(args), env=env)

    yield run
    remove_handlers()


def assert_refused(result) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and result.output.strip().endswith(".")
    assert SECRET not in result.output


@pytest.mark.parametrize("url", REFUSED)
def test_a_base_url_with_credentials_or_plain_http_elsewhere_is_refused(url, tmp_path, run_cli, figures):
    assert_refused(run_cli("settings", "set", "cometapi", f"base_url={url}"))
    settings = tmp_path / "home" / "settings.json"
    assert not settings.exists() or url not in settings.read_text()
    # Nor for one run, nor from a settings file edited by hand.
    assert_refused(run_cli("scan", str(tmp_path), "--provider", "cometapi", "--set", f"base_url={url}", "--dry-run",
                           key="sk-dummy-0000"))  # fmt: skip
    settings.write_text(json.dumps({"version": 1, "providers": {"cometapi": {"base_url": url}}}))
    assert_refused(run_cli("scan", str(tmp_path), "--provider", "cometapi", "--dry-run", key="sk-dummy-0000"))
    figures("secrets", refused_base_url=url.replace(SECRET, "[secret]"))


@pytest.mark.parametrize("url", ACCEPTED)
def test_https_and_plain_http_to_this_machine_are_accepted(url, run_cli):
    saved = run_cli("settings", "set", "cometapi", f"base_url={url}")
    assert saved.exit_code == 0, saved.output


def find_keys(roots: list[Path], keys: list[str]) -> tuple[list[tuple[str, str]], int, int]:
    """Every (file, key) where a key occurs, and how many files and bytes were read."""
    needles = [(key, key.encode()) for key in keys]
    found, files, size = [], 0, 0
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    continue
                files += 1
                size += len(data)
                found.extend((path, key) for key, needle in needles if needle in data)
    return found, files, size


def secret_heavy_workload(base: Path, photos: Path, fake) -> None:
    """Runs that tempt every path a key could leak through: the fake echoes the key in a
    plain error, in a Bearer header quoted in an error, and in a success answer's fields."""
    key = fake.key
    fake.enqueue(
        "recognize",
        Respond(500, {"error": {"message": f"upstream rejected Authorization: Bearer {key}", "code": key}}),
        kling_error(400, 1201, f"image invalid for token {key}"),
        Respond(200, {"code": 0, "message": key, "request_id": key,
                      "data": {"final_unit_deduction": "0.2", "task_result": {"images": [
                          {"type": "head_seg", "is_contain": True, "url": f"https://cdn.example/{key}/head.png"}]}}}),
        Respond(401, {"error": {"message": f"invalid token {key}", "code": "invalid_request"}}),
    )  # fmt: skip
    home = base / "home"
    env = {"KLING_PREFLIGHT_COMETAPI_KEY": key}
    assert cli(["settings", "set", "cometapi", f"base_url={fake.base_url}", "concurrency=1"], home).returncode == 0
    first = cli(["-v", "scan", str(photos), "--provider", "cometapi", "--yes", "--export", str(base / "first.json")], home, env)
    assert first.returncode == 1 and "CometAPI rejected the key" in first.stderr, first.stderr
    second = cli(["-v", "scan", str(photos), "--provider", "cometapi", "--yes", "--retry-failed", "--export", str(base / "second.csv")],
                 home, env)  # fmt: skip
    assert second.returncode in (0, 1), second.stderr
    check = cli(["-v", "providers", "--check"], home, env)
    status = cli(["keys", "status"], home, env)
    exported = cli(["export", "--format", "json", "--out", str(base / "all.json")], home, env)
    assert exported.returncode == 0, exported.stderr
    for n, result in enumerate((first, second, check, status, exported)):
        (base / f"run{n}.out").write_text(result.stdout)
        (base / f"run{n}.err").write_text(result.stderr)


@pytest.mark.sweep_last
def test_no_key_is_left_in_any_database_export_log_or_output(
    tmp_path, tmp_path_factory, photo_folder, comet, secret_ledger, figures
):
    # The sweep must be able to find a key: plant one where it would look, and see it found.
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "planted.db").write_bytes(b"\x00junk" + secret_ledger.keys[0].encode() + b"junk\x00")
    assert find_keys([canary], secret_ledger.keys)[0] == [(str(canary / "planted.db"), secret_ledger.keys[0])]
    shutil.rmtree(canary)

    photos = tmp_path / "photos"
    photos.mkdir()
    for source in sorted(photo_folder.iterdir())[:6]:
        os.link(source, photos / source.name)
    secret_heavy_workload(tmp_path / "workload", photos, comet)

    roots = [tmp_path_factory.getbasetemp(), *secret_ledger.folders]
    found, files, size = find_keys(roots, secret_ledger.keys)

    assert found == [], f"keys found in {len(found)} places, e.g. {found[:5]}"
    assert files > 0 and len(secret_ledger.keys) >= 2
    figures("secrets", files_searched=files, bytes_searched=size, keys_searched=len(secret_ledger.keys),
            keys_found=len(found))  # fmt: skip


def test_a_key_echoed_json_escaped_never_reaches_the_database(tmp_path, photo_folder, comet, make_app):
    escaped = "".join(f"\\u{ord(c):04x}" for c in comet.key)
    body = (
        '{"code": 0, "message": "SUCCEED", "request_id": "%s", "data": {"final_unit_deduction": "0.2", '
        '"task_result": {"images": [{"type": "face_seg", "is_contain": true, "url": "https://cdn.example/%s"}]}}}'
    ) % (escaped, escaped)
    comet.enqueue("recognize", Respond(200, body.encode(), {"Content-Type": "application/json"}))
    photos = tmp_path / "photos"
    photos.mkdir()
    os.link(sorted(photo_folder.iterdir())[0], photos / "one.jpg")
    work = tmp_path / "escaped"
    try:
        app = make_app(work / "home", {"KLING_PREFLIGHT_COMETAPI_KEY": comet.key})
        provider = app.create_provider("cometapi", {"base_url": comet.base_url})
        events = list(BatchRunner(work / "results.db", provider, RunOptions()).run([photos]))
        assert isinstance(events[-1], Finished) and events[-1].summary.checked == 1
        assert find_keys([work], [comet.key])[0] == []
    finally:
        # Whatever this known leak wrote must not fail the sweep for everything else.
        shutil.rmtree(work, ignore_errors=True)
