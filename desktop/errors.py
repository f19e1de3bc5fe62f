"""How the app tells the user something went wrong.

Mistakes and refusals (a folder that is gone, a database that is not ours, a provider that
stopped) are sentences in a banner inside the window. Bugs (an exception nobody caught, in
any thread) are logged and shown in a dialog with a report the user can copy; the report is
redacted like the log, so it never holds a key.
"""

from __future__ import annotations

import logging
import platform
import sys
import threading
import traceback
from types import TracebackType
from typing import Callable

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QObject, QRectF, Qt, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core import __version__
from core.logs import Redactor

log = logging.getLogger(__name__)

#: Semantic colours, mixed into the palette's window colour so they read on light and dark.
LEVEL_COLOURS = {"error": QColor("#d93025"), "warning": QColor("#e8a100"), "info": QColor("#1a73e8"), "success": QColor("#1e8e3e")}


def blend(base: QColor, tint: QColor, amount: float) -> QColor:
    """:returns: ``base`` moved ``amount`` (0..1) of the way towards ``tint``."""
    return QColor.fromRgbF(
        base.redF() + (tint.redF() - base.redF()) * amount,
        base.greenF() + (tint.greenF() - base.greenF()) * amount,
        base.blueF() + (tint.blueF() - base.blueF()) * amount,
    )


def tint_text(widget: QWidget, level: str) -> None:
    """Colour a label's text by level (``error``, ``warning``, ``info``, ``success``),
    strong enough to read and mixed with the palette's text colour so it suits light and dark."""
    palette = widget.palette()
    window = palette.color(QPalette.ColorRole.Window)
    text = QGuiApplication.palette().color(QPalette.ColorRole.WindowText)
    colour = blend(text, LEVEL_COLOURS.get(level, LEVEL_COLOURS["info"]), 0.8 if window.lightness() > 128 else 0.6)
    palette.setColor(QPalette.ColorRole.WindowText, colour)
    widget.setPalette(palette)


class MessageBanner(QWidget):
    """A one-sentence message across the top of the window, closed by the user or replaced
    by the next message. Never modal: work goes on while it is shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._level = "info"
        self._on_action = None
        self._icon = QLabel()
        self._text = QLabel()
        self._text.setWordWrap(True)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        #: The message's one way forward ("Open Settings", "Show in folder"), when it has one.
        self.action_button = QPushButton()
        self.action_button.hide()
        self.action_button.clicked.connect(self._run_action)
        close = QToolButton()
        close.setAutoRaise(True)
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self._icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._text, 1)
        layout.addWidget(self.action_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, level: str = "error", action: tuple[str, Callable[[], None]] | None = None) -> None:
        """Show ``text``; ``level`` is ``error``, ``warning``, ``info`` or ``success``;
        ``action`` is a button's words and what it does."""
        self._level = level if level in LEVEL_COLOURS else "info"
        self._text.setText(text)
        self._on_action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        pixmap = {
            "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
            "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
        }.get(self._level, QStyle.StandardPixmap.SP_MessageBoxInformation)
        self._icon.setPixmap(self.style().standardIcon(pixmap).pixmap(18, 18))
        self.update()
        self.show()

    def _run_action(self) -> None:
        if self._on_action is not None:
            self._on_action()

    def text(self) -> str:
        """:returns: the sentence shown (empty when hidden)."""
        return self._text.text() if self.isVisible() else ""

    def level(self) -> str:
        return self._level

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        # Painted from the palette at each paint, so it follows a switch between light and dark.
        window = self.palette().color(QPalette.ColorRole.Window)
        tint = LEVEL_COLOURS[self._level]
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(blend(window, tint, 0.6), 1))
        painter.setBrush(blend(window, tint, 0.16))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)
        painter.end()


class BugReportDialog(QDialog):
    """Shows an unexpected error with a report the user can copy; later bugs are appended."""

    def __init__(self, report: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Something went wrong")
        self.resize(640, 420)
        intro = QLabel(
            "Kling Preflight ran into a bug. The results saved so far are safe.\n"
            "Please copy the report below and send it with a few words on what you were doing. "
            "It holds no keys."
        )
        intro.setWordWrap(True)
        self.report_view = QPlainTextEdit(report)
        self.report_view.setReadOnly(True)
        self.report_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = QPushButton("Copy report")
        copy.clicked.connect(self.copy_report)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.report_view, 1)
        layout.addWidget(buttons)

    def add_report(self, report: str) -> None:
        self.report_view.appendPlainText("\n" + "-" * 60 + "\n" + report)

    def copy_report(self) -> None:
        QGuiApplication.clipboard().setText(self.report_view.toPlainText())


def format_report(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, thread: str) -> str:
    """The text of a bug report: versions, platform, thread and traceback (not yet redacted)."""
    lines = [
        f"Kling Preflight {__version__}",
        f"Python {platform.python_version()}, PySide6 {pyside_version}, {platform.platform()}",
        f"Thread: {thread}",
        "",
        *traceback.format_exception(exc_type, exc, tb),
    ]
    return "\n".join(line.rstrip("\n") for line in lines)


class ExceptionHook(QObject):
    """Catches exceptions nobody handled, in the UI thread and in any other thread.

    Each is logged (the log's handlers redact it) and shown in a :class:`BugReportDialog`
    on the UI thread. :meth:`install` replaces ``sys.excepthook`` and
    ``threading.excepthook``; :meth:`uninstall` puts the previous ones back.
    """

    report_ready = Signal(str)

    def __init__(self, redactor: Redactor, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._redactor = redactor
        self._previous: tuple | None = None
        self.dialog: BugReportDialog | None = None
        # A queued hop: the hook may run on any thread, the dialog must be made on the UI thread.
        self.report_ready.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def install(self) -> None:
        if self._previous is None:
            self._previous = (sys.excepthook, threading.excepthook)
            sys.excepthook = self.handle
            threading.excepthook = self._handle_thread

    def uninstall(self) -> None:
        if self._previous is not None:
            sys.excepthook, threading.excepthook = self._previous
            self._previous = None

    def handle(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        """A ``sys.excepthook``: log the exception and show it in the dialog."""
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        thread = threading.current_thread().name
        log.error("Unexpected error in %s", thread, exc_info=(exc_type, exc, tb))
        self.report_ready.emit(self._redactor.redact(format_report(exc_type, exc, tb, thread)))

    def _handle_thread(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        self.handle(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)

    @Slot(str)
    def _show(self, report: str) -> None:
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.add_report(report)
            return
        self.dialog = BugReportDialog(report)
        self.dialog.show()
