"""The log pane: a dock that shows the app's log as it is written, with every secret blanked out.

Records may come from any thread; the handler formats them there and hands the line to the
UI thread through a queued signal, so the pane is only ever touched by the UI thread.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QDockWidget, QPlainTextEdit, QWidget

from core.logs import Redactor, RedactingFilter

#: Lines kept in the pane; older ones scroll away (the log file keeps everything).
MAX_LINES = 5000

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _LineRelay(QObject):
    line = Signal(str)


class QtLogHandler(logging.Handler):
    """A logging handler that redacts each record and emits it as a line of text."""

    def __init__(self, redactor: Redactor, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.relay = _LineRelay()
        self.addFilter(RedactingFilter(redactor))
        self.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.relay.line.emit(self.format(record))
        except RuntimeError:  # the pane is gone (window closed) while a thread still logs
            pass
        except Exception:
            self.handleError(record)


class LogPane(QDockWidget):
    """A dock with the log; attach it to the root logger with :meth:`attach`."""

    def __init__(self, redactor: Redactor, parent: QWidget | None = None) -> None:
        super().__init__("Log", parent)
        self.setObjectName("logPane")
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.setPlaceholderText("Messages about runs, files and providers appear here.")
        self.setWidget(self.view)
        self.handler = QtLogHandler(redactor)
        self.handler.relay.line.connect(self.append_line, Qt.ConnectionType.QueuedConnection)

    def attach(self, logger: logging.Logger | None = None) -> None:
        (logger or logging.getLogger()).addHandler(self.handler)

    def detach(self, logger: logging.Logger | None = None) -> None:
        (logger or logging.getLogger()).removeHandler(self.handler)

    @Slot(str)
    def append_line(self, line: str) -> None:
        self.view.appendPlainText(line)

    def text(self) -> str:
        return self.view.toPlainText()
