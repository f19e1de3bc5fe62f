import logging

import pytest
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringLocked, NoKeyringError

from core.logs import Redactor
from core.secrets import SERVICE, KeyLookup, KeyStore, KeyStoreError, NoSecureStoreError
from tests import keyring_backend

ENV = "KLING_PREFLIGHT_COMETAPI_KEY"


class MemoryKeyring(keyring_backend.MemoryKeyring):
    """Defined here so the store describes it by this module's name ("test_secrets keyring")."""


class BrokenKeyring(MemoryKeyring):
    """A keyring that fails the way a locked or missing keychain does."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def get_password(self, *args):
        raise self.error

    set_password = delete_password = get_password


class LowPriorityKeyring(MemoryKeyring):
    priority = 0.5


class ChainOf(chainer.ChainerBackend):
    """keyring's chainer over the members given, instead of every backend installed."""

    viable = False
    backends = ()


class ProviderLike:
    def __init__(self, id, key_env):
        self.id, self.key_env = id, key_env


@pytest.fixture
def memory():
    return MemoryKeyring()


def test_set_get_delete_through_a_secure_keychain(memory):
    store = KeyStore(memory, environ={})
    assert store.secure()
    assert store.backend_description() == "test_secrets keyring"
    store.set("cometapi", "  sk-live-123456 \n")
    assert memory.passwords == {(SERVICE, "cometapi"): "sk-live-123456"}
    found = store.get("cometapi", ENV)
    assert found == KeyLookup("sk-live-123456", "keychain", "from the keychain (test_secrets)")
    assert store.delete("cometapi") is True
    assert store.delete("cometapi") is False
    assert store.get("cometapi", ENV) == KeyLookup(None, "none", "not set")


def test_keychain_comes_before_the_environment(memory):
    store = KeyStore(memory, environ={ENV: "sk-from-env"})
    assert store.get("cometapi", ENV).source == "environment"
    store.set("cometapi", "sk-from-keychain")
    found = store.get("cometapi", ENV)
    assert (found.key, found.source) == ("sk-from-keychain", "keychain")


def test_environment_lookup_strips_and_names_the_variable(memory):
    store = KeyStore(memory, environ={ENV: " sk-env-9999 \n", "EMPTY": "   "})
    assert store.get("cometapi", ENV) == KeyLookup(
        "sk-env-9999", "environment", f"from the environment variable {ENV}"
    )
    assert store.get("useapi", "EMPTY").source == "none"
    assert store.get("useapi", None).source == "none"


def test_empty_key_is_refused(memory):
    with pytest.raises(ValueError, match="empty"):
        KeyStore(memory, environ={}).set("cometapi", " \t\n")
    assert memory.passwords == {}


def test_fail_backend_is_not_secure_refuses_to_store_and_says_why():
    store = KeyStore(fail.Keyring(), environ={ENV: "sk-env-abcd"})
    assert not store.secure()
    assert store.backend_description().startswith("no secure store: ")
    with pytest.raises(NoSecureStoreError) as caught:
        store.set("cometapi", "sk-new-key-1234", env_var=ENV)
    message = str(caught.value)
    assert message.startswith("This computer has no secure key store (")
    assert message.endswith(f"Set {ENV} in your environment instead.")
    assert "sk-new-key-1234" not in message
    # The environment still works, without touching the failing backend.
    assert store.get("cometapi", ENV) == KeyLookup("sk-env-abcd", "environment", f"from the environment variable {ENV}")
    assert store.delete("cometapi") is False


@pytest.mark.parametrize(
    "backend", [null.Keyring(), LowPriorityKeyring(), ChainOf()], ids=["null", "priority-below-1", "empty-chain"]
)
def test_other_insecure_backends_refuse_to_store(backend):
    store = KeyStore(backend, environ={})
    assert not store.secure()
    assert store.backend_description().startswith("no secure store: ")
    with pytest.raises(NoSecureStoreError):
        store.set("cometapi", "sk-123456789")
    assert getattr(backend, "passwords", {}) == {}


def test_keyrings_alt_counts_as_insecure_even_with_a_high_priority():
    # keyrings.alt is not installed here; what matters is where the backend comes from.
    plaintext = type("PlaintextKeyring", (MemoryKeyring,), {"__module__": "keyrings.alt.file", "priority": 5})()
    store = KeyStore(plaintext, environ={})
    assert not store.secure()
    assert "keyrings.alt" in store.backend_description()
    with pytest.raises(NoSecureStoreError):
        store.set("cometapi", "sk-123456789")
    assert plaintext.passwords == {}


def test_a_chain_uses_its_best_secure_member_and_never_the_plaintext_one(memory):
    plaintext = type("PlaintextKeyring", (MemoryKeyring,), {"__module__": "keyrings.alt.file", "priority": 5})()
    chain = type("Chain", (ChainOf,), {"backends": (plaintext, LowPriorityKeyring(), memory)})()
    store = KeyStore(chain, environ={})
    assert store.secure()
    store.set("cometapi", "sk-chained-1234")
    assert memory.passwords == {(SERVICE, "cometapi"): "sk-chained-1234"}
    assert plaintext.passwords == {}


@pytest.mark.parametrize("error", [NoKeyringError("no backend"), KeyringLocked("locked"), OSError("dbus gone")])
def test_a_failing_keychain_counts_as_absent_and_is_logged(error, caplog):
    store = KeyStore(BrokenKeyring(error), environ={ENV: "sk-env-5678"})
    with caplog.at_level(logging.WARNING, logger="core.secrets"):
        found = store.get("cometapi", ENV)
    assert (found.key, found.source) == ("sk-env-5678", "environment")
    assert any(type(error).__name__ in r.getMessage() for r in caplog.records)
    assert KeyStore(BrokenKeyring(error), environ={}).get("cometapi", ENV).source == "none"


def test_a_keychain_that_refuses_to_store_or_delete_says_so():
    store = KeyStore(BrokenKeyring(KeyringLocked("the keychain is locked")), environ={})
    with pytest.raises(KeyStoreError, match="did not store the key for cometapi: the keychain is locked"):
        store.set("cometapi", "sk-123456789")
    with pytest.raises(KeyStoreError, match="did not delete"):
        store.delete("cometapi")


def test_the_key_never_shows_in_repr():
    lookup = KeyLookup("sk-very-secret-42", "keychain", "from the keychain (SecretService)")
    assert "sk-very-secret-42" not in repr(lookup)
    assert "sk-very-secret-42" not in str(lookup)


def test_status_lists_providers_that_need_a_key(memory):
    store = KeyStore(memory, environ={"KLING_PREFLIGHT_USEAPI_KEY": "ua-env-1234"})
    store.set("cometapi", "sk-keychain-1234")
    providers = [ProviderLike("cometapi", ENV), ProviderLike("local", None), ProviderLike("useapi", "KLING_PREFLIGHT_USEAPI_KEY")]
    status = store.status(providers)
    assert [(pid, lookup.source) for pid, lookup in status] == [("cometapi", "keychain"), ("useapi", "environment")]


def test_keys_read_or_set_are_registered_with_the_redactor(memory):
    redactor = Redactor()
    memory.set_password(SERVICE, "cometapi", "sk-stored-earlier")
    store = KeyStore(memory, environ={"UA": "ua-from-env-77"}, redactor=redactor)
    store.get("cometapi", ENV)
    store.get("useapi", "UA")
    store.set("other", "sk-set-now-99")
    text = redactor.redact("sk-stored-earlier ua-from-env-77 sk-set-now-99")
    assert text == "[redacted] [redacted] [redacted]"


def test_a_key_refused_for_want_of_a_secure_store_is_still_redacted():
    redactor = Redactor()
    with pytest.raises(NoSecureStoreError):
        KeyStore(fail.Keyring(), environ={}, redactor=redactor).set("cometapi", "sk-typed-in-1234")
    assert redactor.redact("sk-typed-in-1234") == "[redacted]"
