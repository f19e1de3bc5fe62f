"""Provider keys: in the OS keychain through keyring, or in an environment variable.

A key is stored only in a secure store. Where keyring has nothing secure (no backend, the
null backend, keyrings.alt's files, which are plaintext or "encrypted" with a guessable
password), the store says so and refuses to store; the environment variable still works.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import keyring
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import PasswordDeleteError

from .errors import SaysSentence
from .redact import Redactor
from .providers import Provider

SERVICE = "kling-preflight"

log = logging.getLogger(__name__)


class KeyStoreError(SaysSentence, RuntimeError):
    """The keychain could not do what was asked; the message is a sentence for the user."""


class NoSecureStoreError(KeyStoreError):
    """This computer has no secure key store, so a key cannot be stored."""


@dataclass(frozen=True)
class KeyLookup:
    """A provider's key and where it came from. ``repr`` never shows the key."""

    key: str | None = field(repr=False)
    source: str  # "keychain" | "environment" | "none"
    detail: str  # a sentence fragment: "from the keychain (SecretService)", "not set"


@dataclass(frozen=True)
class _StoreChoice:
    """The keyring backend keys may be kept in (None when none is secure), and in words why."""

    backend: KeyringBackend | None
    name: str  # "SecretService", or the reason nothing is secure


def _short_name(backend: KeyringBackend) -> str:
    # keyring's backends are named by their module: SecretService, macOS, Windows, kwallet.
    return type(backend).__module__.rpartition(".")[2]


def _choose_store(backend: KeyringBackend) -> _StoreChoice:
    if isinstance(backend, fail.Keyring):
        return _StoreChoice(None, "keyring found no keychain on this computer")
    if isinstance(backend, null.Keyring):
        return _StoreChoice(None, "keyring is turned off by its null backend")
    if isinstance(backend, chainer.ChainerBackend):
        # Use the best secure member directly: the chainer itself would write to its first
        # member, which may be a plaintext file.
        for member in backend.backends:
            choice = _choose_store(member)
            if choice.backend is not None:
                return choice
        return _StoreChoice(None, "none of the keyrings found is secure")
    if type(backend).__module__.startswith("keyrings.alt"):
        return _StoreChoice(None, f"{type(backend).__name__} from keyrings.alt keeps keys in a file")
    try:
        priority = backend.priority
    except Exception as exc:  # keyring's backends raise here when they cannot work on this machine
        return _StoreChoice(None, f"the {_short_name(backend)} keyring cannot be used here: {exc}")
    if priority < 1:
        return _StoreChoice(None, f"keyring does not recommend the {_short_name(backend)} keyring (priority {priority:g})")
    return _StoreChoice(backend, _short_name(backend))


def _use_environment(env_var: str | None) -> str:
    if env_var:
        return f"Set {env_var} in your environment instead."
    return "Set the provider's key environment variable instead."


class KeyStore:
    """Reads, stores and deletes provider keys.

    Every key it reads or stores is registered with ``redactor`` at once, so no log line
    can show it. Without a redactor nothing is registered: the app always passes its one.
    """

    def __init__(
        self,
        backend: KeyringBackend | None = None,
        environ: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self._backend = keyring.get_keyring() if backend is None else backend
        self._environ = os.environ if environ is None else environ
        self._redactor = redactor
        self._store = _choose_store(self._backend)

    def secure(self) -> bool:
        """:returns: True when keys can be kept in a secure keychain here."""
        return self._store.backend is not None

    def backend_description(self) -> str:
        """:returns: the keychain in words: "SecretService keyring" or "no secure store: <why>"."""
        if self._store.backend is None:
            return f"no secure store: {self._store.name}"
        return f"{self._store.name} keyring"

    def get(self, provider_id: str, env_var: str | None) -> KeyLookup:
        """Find a provider's key: in the keychain first, then in its environment variable.

        A keychain that fails (locked, gone, no backend) counts as holding no key; the
        failure is logged.

        :param provider_id: the provider's id; the keychain entry's user name.
        :param env_var: the environment variable that may hold the key, or None.
        :returns: the key (stripped) and where it came from, or source "none".
        """
        key = self._read_keychain(provider_id)
        if key:
            return KeyLookup(self._remember(key), "keychain", f"from the keychain ({self._store.name})")
        value = self._environ.get(env_var, "").strip() if env_var else ""
        if value:
            return KeyLookup(self._remember(value), "environment", f"from the environment variable {env_var}")
        return KeyLookup(None, "none", "not set")

    def set(self, provider_id: str, key: str, env_var: str | None = None) -> None:
        """Store a provider's key in the keychain.

        :param provider_id: the provider's id.
        :param key: the key; surrounding whitespace is dropped.
        :param env_var: the provider's environment variable, named in the error when the
            key cannot be stored.
        :raises ValueError: the key is empty.
        :raises NoSecureStoreError: there is no secure store here; nothing was written.
        :raises KeyStoreError: the keychain refused (locked, for example).
        """
        key = key.strip()
        if not key:
            raise ValueError("The key is empty.")
        self._remember(key)
        if self._store.backend is None:
            raise NoSecureStoreError(
                f"This computer has no secure key store ({self._store.name}). {_use_environment(env_var)}"
            )
        try:
            self._store.backend.set_password(SERVICE, provider_id, key)
        except Exception as exc:  # any backend failure (locked, D-Bus gone) is the user's to see
            raise KeyStoreError(f"The keychain did not store the key for {provider_id}: {exc}") from exc

    def delete(self, provider_id: str) -> bool:
        """Remove a provider's key from the keychain.

        :param provider_id: the provider's id.
        :returns: True when a key was removed, False when there was none to remove.
        :raises KeyStoreError: the keychain refused (locked, for example).
        """
        if self._store.backend is None:
            return False
        try:
            self._store.backend.delete_password(SERVICE, provider_id)
        except PasswordDeleteError:  # what keyring's backends raise for "no such entry"
            return False
        except Exception as exc:
            raise KeyStoreError(f"The keychain did not delete the key for {provider_id}: {exc}") from exc
        return True

    def status(self, providers: Iterable[type[Provider]]) -> list[tuple[str, KeyLookup]]:
        """Where each provider that needs a key would get it from, for ``keys status``.

        :param providers: provider classes; those that need no key are left out.
        :returns: (provider id, lookup) pairs in the order given.
        """
        return [(cls.id, self.get(cls.id, cls.key_env)) for cls in providers if cls.key_env is not None]

    def _read_keychain(self, provider_id: str) -> str:
        if self._store.backend is None:
            return ""
        try:
            key = self._store.backend.get_password(SERVICE, provider_id)
        # keyring's own errors (NoKeyringError, KeyringLocked) and whatever its transport leaks
        # (D-Bus, the Security framework): either way there is no key to be had from it.
        except Exception as exc:
            log.warning("The keychain could not be read for %s (%s): %s", provider_id, type(exc).__name__, exc)
            return ""
        return (key or "").strip()

    def _remember(self, key: str) -> str:
        if self._redactor is not None:
            self._redactor.add(key)
        return key
