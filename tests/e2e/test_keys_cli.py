"""``kling-preflight keys set|delete|status`` in a subprocess, with a real keyring backend
(tests/keyring_backend.py, selected through PYTHON_KEYRING_BACKEND) and with keyring's
backends that offer no secure store.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import time
from pathlib import Path

import pytest

from core.secrets import SERVICE
from tests.conftest import SAMPLES
from tests.e2e.test_remote_cli import (
    COMET_ENV,
    EXE,
    USEAPI_ENV,
    VALID,
    assert_sentence,
    cli_env,
    configure,
    files_holding,
    kp,
)
from tests.keyring_backend import FILE_ENV

TEST_KEYRING = "tests.keyring_backend.JsonFileKeyring"


def keyring_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PYTHON_KEYRING_BACKEND": TEST_KEYRING, FILE_ENV: str(tmp_path / "keyring.json"), **extra}


def stored(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "keyring.json"
    return json.loads(path.read_text(encoding="utf-8")).get(SERVICE, {}) if path.exists() else {}


def status_lines(tmp_path: Path, home: Path, **extra: str) -> dict[str, str]:
    result = kp("keys", "status", home=home, env=keyring_env(tmp_path, **extra))
    assert result.returncode == 0, result.stderr
    return {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}


def test_one_command_stores_the_key_and_a_scan_uses_it(fake_cometapi, tmp_path):
    home = tmp_path / "home"
    env = keyring_env(tmp_path)
    result = kp("keys", "set", "cometapi", home=home, env=env, input=fake_cometapi.key + "\n")
    assert result.returncode == 0, result.stderr
    assert "Stored the cometapi key in keyring_backend keyring." in result.stdout
    assert fake_cometapi.key not in result.stdout + result.stderr
    assert stored(tmp_path) == {"cometapi": fake_cometapi.key}  # the line's end is not part of the key
    assert files_holding(home, fake_cometapi.key) == []

    configure(home, "cometapi", f"base_url={fake_cometapi.base_url}")
    scan = kp("scan", str(SAMPLES), "--provider", "cometapi", "--yes", home=home, env=env)
    assert scan.returncode == 0, scan.stderr
    assert fake_cometapi.counts()["recognize"].billed == len(VALID)  # the fake took the stored key


def test_status_says_where_each_key_comes_from(tmp_path):
    home = tmp_path / "home"
    assert kp("keys", "set", "cometapi", home=home, env=keyring_env(tmp_path), input="sk-from-keychain\n").returncode == 0

    lines = status_lines(tmp_path, home)
    assert "from the keychain (keyring_backend)" in lines["cometapi"]
    assert "not set" in lines["useapi"]

    # The keychain comes first; the environment variable serves when the keychain has none.
    lines = status_lines(tmp_path, home, **{COMET_ENV: "sk-from-env-1", USEAPI_ENV: "sk-from-env-2"})
    assert "from the keychain" in lines["cometapi"]
    assert f"from the environment variable {USEAPI_ENV}" in lines["useapi"]
    for line in lines.values():
        assert "sk-from" not in line

    providers = kp("providers", home=home, env=keyring_env(tmp_path, **{USEAPI_ENV: "sk-from-env-2"}))
    assert providers.returncode == 0, providers.stderr
    assert "key: keychain" in providers.stdout and "key: environment" in providers.stdout


def test_delete_removes_the_key_and_the_environment_takes_over(tmp_path):
    home = tmp_path / "home"
    env = keyring_env(tmp_path)
    assert kp("keys", "set", "useapi", home=home, env=env, input="sk-useapi-123\n").returncode == 0
    assert stored(tmp_path) == {"useapi": "sk-useapi-123"}

    deleted = kp("keys", "delete", "useapi", home=home, env=env)
    assert deleted.returncode == 0 and "Removed the useapi key from the keychain." in deleted.stdout
    assert stored(tmp_path) == {}
    lines = status_lines(tmp_path, home, **{USEAPI_ENV: "sk-env-456"})
    assert f"from the environment variable {USEAPI_ENV}" in lines["useapi"]

    again = kp("keys", "delete", "useapi", home=home, env=env)
    assert again.returncode == 0 and "There was no useapi key in the keychain." in again.stdout


def test_a_provider_without_a_key_has_none_to_set(tmp_path):
    result = kp("keys", "set", "local", home=tmp_path / "home", env=keyring_env(tmp_path), input="x\n")
    assert result.returncode == 2
    assert_sentence(result.stderr, "needs no key")
    assert stored(tmp_path) == {}


@pytest.mark.parametrize("typed", ["\n", "", "   \n"], ids=["empty-line", "end-of-input", "spaces"])
def test_an_empty_key_is_refused_with_a_sentence(typed, tmp_path):
    result = kp("keys", "set", "cometapi", home=tmp_path / "home", env=keyring_env(tmp_path), input=typed)
    assert stored(tmp_path) == {}
    assert_sentence(result.stderr, "empty")
    assert result.returncode == 2


@pytest.mark.parametrize("backend", ["keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"])
def test_without_a_secure_store_set_refuses_and_writes_nothing(backend, tmp_path):
    home = tmp_path / "home"
    secret = "sk-nowhere-to-go-0123456789"
    result = kp("keys", "set", "cometapi", home=home, env={"PYTHON_KEYRING_BACKEND": backend}, input=secret + "\n")
    assert result.returncode == 2
    assert_sentence(result.stderr, "no secure key store", f"Set {COMET_ENV} in your environment instead.")
    assert secret not in result.stdout + result.stderr
    assert files_holding(tmp_path, secret) == []

    status = kp("keys", "status", home=home, env={"PYTHON_KEYRING_BACKEND": backend, COMET_ENV: secret})
    assert "Key store: no secure store:" in status.stdout
    assert f"from the environment variable {COMET_ENV}" in status.stdout


def read_until(fd: int, marker: bytes, timeout: float = 20) -> bytes:
    """Read a terminal's output until ``marker`` shows (or the program ends)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the program ended and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_on_a_terminal_the_key_is_asked_for_and_not_echoed(tmp_path):
    home = tmp_path / "home"
    secret = "sk-typed-at-the-terminal-42"
    env = cli_env(home, keyring_env(tmp_path))
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.execve(str(EXE), [str(EXE), "keys", "set", "cometapi"], env)
    status = None
    try:
        prompt = read_until(fd, b"(input hidden): ")
        assert b"CometAPI (Kling image recognition) key (input hidden): " in prompt
        os.write(fd, secret.encode() + b"\r")
        rest = read_until(fd, b"Stored the cometapi key")
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, rest
    assert b"Stored the cometapi key" in rest
    assert secret.encode() not in prompt + rest  # not echoed
    assert stored(tmp_path) == {"cometapi": secret}
