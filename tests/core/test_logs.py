import logging
import sys
import threading

import pytest

from core.errors import ProviderStopped
from core.logs import HANDLER_NAMES, LOG_FILE_NAME, RedactingFilter, Redactor, remove_handlers, setup_logging
from core.paths import app_paths
from core.secrets import KeyStore
from tests.keyring_backend import MemoryKeyring

KEY = "sk-live-0123456789abcdef"


@pytest.fixture
def paths(app_home):
    return app_paths()


@pytest.fixture
def logging_to(paths, capsys):
    """Set up the app's logging (stderr bound to capsys); undo it after the test."""
    root = logging.getLogger()
    level = root.level
    redactor = Redactor()
    setups = []

    def setup(verbose=False):
        setups.append(setup_logging(paths, verbose=verbose, redactor=redactor))
        return redactor

    yield setup
    remove_handlers()
    root.setLevel(level)


def log_text(paths):
    for handler in logging.getLogger().handlers:
        handler.flush()
    return (paths.logs / LOG_FILE_NAME).read_text(encoding="utf-8")


def test_a_key_set_in_the_key_store_never_reaches_the_log_file_or_stderr(paths, logging_to, capsys):
    redactor = logging_to()
    KeyStore(MemoryKeyring(), environ={}, redactor=redactor).set("cometapi", KEY)
    log = logging.getLogger("plugins.cometapi")  # a child logger: the filter must sit on the handlers

    log.info("calling with key %s", KEY)
    log.info(f"calling with key {KEY}")
    try:
        try:
            raise ValueError(f"inner failure mentioning {KEY}")
        except ValueError as inner:
            raise ProviderStopped(f"the key {KEY} was refused") from inner
    except ProviderStopped:
        log.exception("the provider stopped")

    text = log_text(paths)
    stderr = capsys.readouterr().err
    assert KEY not in text and KEY not in stderr
    assert text.count("calling with key [redacted]") == 2
    assert "the key [redacted] was refused" in text and "inner failure mentioning [redacted]" in text
    assert "Traceback" in text and "ProviderStopped" in text
    # The terminal gets one line pointing at the log file; the traceback is in the file only.
    assert "the provider stopped" in stderr and "kling-preflight.log" in stderr
    assert "Traceback" not in stderr


def test_a_key_read_from_the_environment_is_redacted_too(paths, logging_to):
    redactor = logging_to()
    KeyStore(MemoryKeyring(), environ={"UA_KEY": "ua-env-secret-4242"}, redactor=redactor).get("useapi", "UA_KEY")
    logging.getLogger("plugins.useapi").warning("request failed: %r", {"token": "ua-env-secret-4242"})
    text = log_text(paths)
    assert "ua-env-secret-4242" not in text and "request failed: {'token': '[redacted]'}" in text


def test_bearer_tokens_and_authorization_values_are_redacted_even_when_unknown(paths, logging_to):
    logging_to()
    log = logging.getLogger("core.http")
    log.warning("sent %s", {"Authorization": "Bearer never-registered-1", "Accept": "application/json"})
    log.warning("curl -H 'Authorization: Basic dXNlcjpwYXNz' https://api.test")
    log.warning("token was bearer abc.DEF-ghi_jkl~m+n/o== in the header")
    text = log_text(paths)
    for leaked in ("never-registered-1", "dXNlcjpwYXNz", "abc.DEF-ghi_jkl~m+n/o=="):
        assert leaked not in text
    assert "'Authorization': '[redacted]', 'Accept': 'application/json'" in text
    assert "Authorization: [redacted]' https://api.test" in text
    assert "bearer [redacted] in the header" in text


def test_stderr_shows_warnings_only_unless_verbose(paths, logging_to, capsys):
    logging_to()
    log = logging.getLogger("core.runner")
    log.info("quiet detail")
    log.warning("loud problem")
    err = capsys.readouterr().err
    assert "loud problem" in err and "quiet detail" not in err
    assert "quiet detail" in log_text(paths)

    logging_to(verbose=True)
    log.info("now shown")
    log.debug("debug detail")
    assert "now shown" in capsys.readouterr().err
    assert "debug detail" in log_text(paths)


def test_setting_up_twice_does_not_duplicate_handlers_or_lines(paths, logging_to):
    logging_to()
    logging_to()
    names = [h.get_name() for h in logging.getLogger().handlers if h.get_name() in HANDLER_NAMES]
    assert sorted(names) == sorted(HANDLER_NAMES)
    logging.getLogger("core").warning("written once")
    assert log_text(paths).count("written once") == 1


def test_filter_survives_arguments_that_do_not_fit_the_message_and_still_redacts():
    # Tested on the filter alone: pytest's own capture handler would raise first in a live tree.
    redactor = Redactor()
    redactor.add(KEY)
    record = logging.getLogger("x").makeRecord("x", logging.WARNING, __file__, 1, "%d files", (KEY,), None)
    assert RedactingFilter(redactor).filter(record) is True
    assert record.getMessage() == "'%d files' with arguments ('[redacted]',)"


def test_redactor_ignores_short_secrets_and_hides_the_longest_match_whole():
    redactor = Redactor()
    redactor.add("abc")
    redactor.add(None)
    redactor.add("secret-1")
    redactor.add("secret-12345")
    assert redactor.redact("abc secret-12345 secret-1") == "abc [redacted] [redacted]"


def test_redactor_keeps_every_secret_added_from_many_threads():
    redactor = Redactor()
    secrets = [f"key-{i:04d}-xyz" for i in range(200)]
    threads = [threading.Thread(target=lambda part=secrets[i::4]: [redactor.add(s) for s in part]) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert redactor.redact(" ".join(secrets)) == " ".join(["[redacted]"] * 200)


def test_filter_redacts_a_record_made_by_hand_before_any_formatter_sees_it():
    redactor = Redactor()
    redactor.add(KEY)
    try:
        raise RuntimeError(KEY)
    except RuntimeError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "k=%s", (KEY,), sys.exc_info())
    assert RedactingFilter(redactor).filter(record) is True
    formatted = logging.Formatter().format(record)
    assert KEY not in formatted and "RuntimeError: [redacted]" in formatted
