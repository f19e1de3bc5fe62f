"""A real keyring backend for tests: passwords in a JSON file named by an environment variable.

A subprocess selects it with::

    PYTHON_KEYRING_BACKEND=tests.keyring_backend.JsonFileKeyring
    KLING_PREFLIGHT_TEST_KEYRING=/tmp/.../keyring.json
    PYTHONPATH=<the repository root>   # so that ``tests`` can be imported

keyring 25 resolves ``PYTHON_KEYRING_BACKEND`` by importing the module part of the dotted
name, reading the class's ``priority`` (which must not raise) and instantiating the class.
Without the file variable ``priority`` raises, so the backend is not ``viable``: keyring's
own discovery never picks it, in this process or any other.

It is a test double for the OS keychain, not a secure store: the file is plain JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import PasswordDeleteError

FILE_ENV = "KLING_PREFLIGHT_TEST_KEYRING"


class JsonFileKeyring(KeyringBackend):
    """Keeps ``{service: {username: password}}`` in the file ``$KLING_PREFLIGHT_TEST_KEYRING``."""

    @properties.classproperty
    def priority(cls) -> float:
        if not os.environ.get(FILE_ENV):
            raise RuntimeError(f"{FILE_ENV} is not set")
        return 1

    @staticmethod
    def path() -> Path:
        """:returns: the file named by the environment variable (read at each call)."""
        return Path(os.environ[FILE_ENV])

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.path().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _save(self, entries: dict[str, dict[str, str]]) -> None:
        self.path().write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        entries = self._load()
        entries.setdefault(service, {})[username] = password
        self._save(entries)

    def delete_password(self, service: str, username: str) -> None:
        entries = self._load()
        if username not in entries.get(service, {}):
            raise PasswordDeleteError(f"no password for {username} in {service}")
        del entries[service][username]
        self._save(entries)


class MemoryKeyring(KeyringBackend):
    """A keychain in a dict, for tests in this process (``KeyStore(backend=MemoryKeyring())``).

    ``viable = False``: keyring registers every backend class process-wide, and its own
    discovery must never pick this one for other tests.
    """

    priority = 1
    viable = False

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.passwords.get((service, username))

    def set_password(self, service, username, password):
        self.passwords[(service, username)] = password

    def delete_password(self, service, username):
        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError("no such password")
