"""What differs on Windows and macOS, tested here on Linux: Windows paths (drive letters,
backslashes, both separators) and the keychains of Windows and macOS."""

from __future__ import annotations

import ntpath
import sqlite3

import keyring.backends.macOS
import keyring.backends.Windows
import pytest
from keyring.backends import chainer

from core.models import ProbedImage
from core.runner import _is_within
from core.secrets import KeyStore
from core.store import under_clause
from tests import keyring_backend

# --- Windows paths --------------------------------------------------------------------------

WINDOWS_SEPARATORS = tuple(filter(None, (ntpath.sep, ntpath.altsep)))


@pytest.mark.parametrize("path, root, inside", [
    (r"C:\Photos\a.jpg", r"C:\Photos", True),
    (r"C:\Photos\sub\a.jpg", "C:\\Photos\\", True),
    (r"C:\Photos", r"C:\Photos", True),
    (r"C:\Photos2\a.jpg", r"C:\Photos", False),  # a sibling whose name starts the same
    (r"C:\a.jpg", "C:\\", True),  # the root of a drive
    (r"D:\Photos\a.jpg", r"C:\Photos", False),
    (r"\\server\share\photos\a.jpg", r"\\server\share", True),  # a network share
])  # fmt: skip
def test_what_is_inside_a_folder_with_windows_paths(path, root, inside):
    # Roots are made absolute first, and on Windows that turns every / into \.
    assert _is_within(path, root, ntpath.sep) is inside


def test_the_store_finds_what_is_under_a_folder_with_either_windows_separator():
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE files (path TEXT)")
    paths = [r"C:\Photos", r"C:\Photos\a.jpg", "C:\\Photos/b.jpg", r"C:\Photos\sub\c.jpg", r"C:\Photos2\d.jpg", r"C:\Photo"]
    db.executemany("INSERT INTO files VALUES (?)", [(p,) for p in paths])
    for root in (r"C:\Photos", "C:\\Photos\\", "C:\\Photos/"):
        where, params = under_clause("path", root, separators=WINDOWS_SEPARATORS)
        found = sorted(p for (p,) in db.execute(f"SELECT path FROM files WHERE {where}", params))
        assert found == sorted(paths[:4]), root


@pytest.mark.parametrize("path", [r"C:\Users\me\Pictures\IMG_1.JPG", "C:/Users/me/Pictures/IMG_1.JPG", r"\\nas\photos\IMG_1.JPG"])
def test_a_files_name_is_found_in_a_windows_path(path):
    assert ProbedImage(path, 1, 0, "0" * 64, "JPEG", 1, 1).name == "IMG_1.JPG"


# --- the keychains of Windows and macOS -----------------------------------------------------


def on_its_own_system(backend_class, priority):
    """``backend_class`` as keyring finds it on its own system (with the priority it declares
    there), keeping passwords in memory: keyring's real class otherwise, named by its module."""

    # Set in the class body: assigned afterwards, keyring's classproperty would write the
    # priority onto the real class.
    class OnItsSystem(keyring_backend.MemoryKeyring, backend_class):
        __module__ = backend_class.__module__
        locals()["priority"] = priority

    return OnItsSystem()


# keyring 25's priorities: the Credential Locker 5, the macOS Keychain 5.
SYSTEM_KEYRINGS = [
    pytest.param(keyring.backends.Windows.WinVaultKeyring, 5, "Windows keyring", id="Windows Credential Locker"),
    pytest.param(keyring.backends.macOS.Keyring, 5, "macOS keyring", id="macOS Keychain"),
]


@pytest.mark.parametrize("backend_class, priority, described", SYSTEM_KEYRINGS)
def test_the_system_keychain_is_a_secure_store(backend_class, priority, described):
    store = KeyStore(backend=on_its_own_system(backend_class, priority), environ={})
    assert store.secure()
    assert store.backend_description() == described


@pytest.mark.parametrize("backend_class, priority, described", SYSTEM_KEYRINGS)
def test_the_system_keychain_is_chosen_from_keyrings_chain(backend_class, priority, described):
    plaintext = keyring_backend.MemoryKeyring()
    plaintext.priority = 0.5  # as keyrings.alt's files rank themselves

    class Chain(chainer.ChainerBackend):
        viable = False
        backends = (plaintext, on_its_own_system(backend_class, priority))

    assert KeyStore(backend=Chain(), environ={}).backend_description() == described


@pytest.mark.parametrize("backend_class", [keyring.backends.Windows.WinVaultKeyring, keyring.backends.macOS.Keyring])
def test_on_another_system_its_keychain_is_refused_with_the_reason(backend_class):
    # The real class, here on Linux: keyring says it needs its own system.
    store = KeyStore(backend=backend_class(), environ={})
    assert not store.secure()
    assert "cannot be used here" in store.backend_description()
