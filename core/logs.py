"""Logging for the app: a rotating file, warnings on stderr, and no secret in either.

The app makes ONE :class:`Redactor` per process and hands it to everything that learns a
secret (the key store registers each key it reads or stores). The redacting filter sits on
the handlers, not on a logger: a logger's filters never see records from its child loggers,
while a handler sees every record it is about to write.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path
import sys

from .paths import AppPaths
from .redact import Redactor

LOG_FILE_NAME = "kling-preflight.log"
LOG_FILE_BYTES = 1024 * 1024
LOG_FILE_BACKUPS = 3
#: Names of the handlers :func:`setup_logging` installs, so a second call can replace them.
HANDLER_NAMES = ("kling-preflight-file", "kling-preflight-stderr")


_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
_TRACEBACK_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """A handler filter that redacts a record's message, traceback and stack before output.

    The message is formatted first (``msg % args``) so a secret passed as an argument is
    caught too; the traceback is rendered and redacted here, and the exception object
    dropped from the record, so no formatter downstream can render it again unredacted.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad arguments for the format: logging would report it, we must not raise
            message = f"{record.msg!r} with arguments {record.args!r}"
        record.msg = self._redactor.redact(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)
        return True


class _TerminalFormatter(logging.Formatter):
    """For the terminal: one line per record; tracebacks go to the log file only."""

    def __init__(self, log_file: Path) -> None:
        super().__init__("%(levelname)s: %(message)s")
        self.log_file = log_file

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        return f"{line} (details in {self.log_file})" if saved[1] or saved[0] else line


def remove_handlers() -> None:
    """Take off and close the handlers :func:`setup_logging` installed (others stay)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() in HANDLER_NAMES:
            root.removeHandler(handler)
            handler.close()


def setup_logging(paths: AppPaths, *, verbose: bool = False, redactor: Redactor) -> logging.Logger:
    """Send the whole process's logging to a rotating file and warnings to stderr, redacted.

    Calling it again replaces the handlers it installed before instead of adding more.

    :param paths: where the app keeps its files; the log goes in ``paths.logs``.
    :param verbose: also show information messages on stderr, and debug ones in the file.
    :param redactor: the process's redactor; both handlers redact through it.
    :returns: the root logger, which now carries the handlers.
    """
    root = logging.getLogger()
    remove_handlers()
    redacting = RedactingFilter(redactor)
    formatter = logging.Formatter(_FORMAT)
    paths.logs.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        paths.logs / LOG_FILE_NAME, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
    )
    file_handler.set_name(HANDLER_NAMES[0])
    file_handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    handlers: list[logging.Handler] = [file_handler]
    # A windowed frozen app has no stderr at all.
    if sys.stderr is not None:
        stderr_handler = logging.StreamHandler(sys.stderr)
        stderr_handler.set_name(HANDLER_NAMES[1])
        stderr_handler.setLevel(logging.INFO if verbose else logging.WARNING)
        stderr_handler.setFormatter(formatter if verbose else _TerminalFormatter(paths.logs / LOG_FILE_NAME))
        handlers.append(stderr_handler)
    file_handler.setFormatter(formatter)
    for handler in handlers:
        handler.addFilter(redacting)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return root
