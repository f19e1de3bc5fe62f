"""One function for error sentences, one atomic write, one redactor (issue 11, item 5)."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from core.atomic_write import atomic_write
from core.errors import RateLimited, user_sentence
from core.http import scrub
from core.plugins import UnknownProviderError
from core.redact import Redactor
from core.secrets import KeyStoreError
from core.settings import SettingsError
from core.store import StoreError


# -- user_sentence ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, text, mistake",
    [
        (StoreError("x.db is not a results database."), "x.db is not a results database.", True),
        (SettingsError("cometapi base_url: bad.", provider_id="cometapi", setting="base_url"), "cometapi base_url: bad.", True),
        # A KeyError subclass: str() would wrap it in quotes.
        (UnknownProviderError("There is no provider called 'x'."), "There is no provider called 'x'.", True),
        (KeyStoreError("The keychain is locked."), "The keychain is locked.", True),
        (RateLimited("Too many requests."), "Too many requests.", True),
        (sqlite3.DatabaseError("file is not a database"), "The results database could not be used: file is not a database.", False),
        (PermissionError(13, "Permission denied", "/x/y.csv"), "Permission denied (/x/y.csv).", False),
    ],
)
def test_user_sentence_words_what_a_user_can_cause_or_fix(exc, text, mistake):
    sentence = user_sentence(exc)
    assert (sentence.text, sentence.mistake) == (text, mistake)


@pytest.mark.parametrize("exc", [KeyError("x"), ValueError("bad"), TypeError("None"), ZeroDivisionError()])
def test_a_bug_has_no_sentence(exc):
    assert user_sentence(exc) is None


# -- atomic_write -------------------------------------------------------------------------


def test_atomic_write_gives_an_ordinary_file_and_replaces_the_old_one(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    old_umask = os.umask(0o022)
    try:
        with atomic_write(target, newline="") as out:
            out.write("a,b\r\n")
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"a,b\r\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["out.csv"]


def test_atomic_write_private_is_for_the_owner_only(tmp_path):
    with atomic_write(tmp_path / "s.json", private=True) as out:
        out.write("{}")
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o600


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "crop.jpg"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, binary=True) as out:
            out.write(b"half")
            raise RuntimeError("the encoder failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["crop.jpg"]


# -- one redactor ---------------------------------------------------------------------------


def test_the_http_scrub_and_the_log_redactor_hide_the_same_things():
    key = "sk-live-1234567890"
    text = (f"echo {key}; Authorization: Basic dXNlcjpwYXNz\n"
            "bearer tok:with!odd@chars and Bearer abc.DEF-ghi_jkl~m+n/o== end")
    redactor = Redactor()
    redactor.add(key)
    assert scrub(text, key) == redactor.redact(text)
    cleaned = scrub(text, key)
    for secret in (key, "dXNlcjpwYXNz", "tok:with!odd@chars", "abc.DEF"):
        assert secret not in cleaned
    assert cleaned.endswith(" end")


def test_redaction_keeps_the_sentence_around_the_secret():
    redactor = Redactor()
    assert redactor.redact("The server said: bad header Authorization: Bearer abc-123.") == \
        "The server said: bad header Authorization: [redacted]."
    assert redactor.redact("It refused bearer tok:en!9. Try again.") == "It refused bearer [redacted]. Try again."
    assert scrub("echo 'Authorization: Basic dXNl' done", None) == "echo 'Authorization: [redacted]' done"
