"""Start the desktop app: ``kling-preflight-gui`` (or ``python -m desktop``).

``--db PATH`` shows and writes another results database. ``--self-test`` opens the window
on a throwaway home folder and database, waits until it has painted, closes it and exits 0
(1 when it never painted or a bug was caught on the way): the frozen app's smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QEventLoop, QObject, QSettings, QThreadPool
from PySide6.QtWidgets import QApplication, QWidget

from core import __version__
from core.context import AppContext
from core.logs import setup_logging
from core.paths import HOME_ENV
from core.store import Store

from .errors import ExceptionHook
from .icons import app_icon
from .main_window import MainWindow

ORGANISATION = "kling-preflight"
APPLICATION = "kling-preflight"
DISPLAY_NAME = "Kling Preflight"
#: Seconds the self-test waits for the first paint before it gives up.
SELF_TEST_TIMEOUT = 60.0


def configure_application(app: QApplication) -> None:
    """Names (for QSettings and the desktop), icon and style.

    The palette is the platform's: Qt (6.5+) gives the system's light or dark one and
    follows a switch. Only on Linux without a desktop theme does Qt fall back to its old
    "Windows" style, which ignores the colour scheme; Fusion takes its place there.
    """
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(DISPLAY_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APPLICATION)
    app.setWindowIcon(app_icon())
    if sys.platform.startswith("linux") and app.style().name().lower() == "windows":
        app.setStyle("Fusion")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kling-preflight-gui", description="Kling Preflight, the desktop app.")
    parser.add_argument("paths", nargs="*", metavar="FOLDER_OR_FILE", help="queue these at start (the desktop's \"Open with\")")
    parser.add_argument("--db", metavar="PATH", help="results database to show and write (default: the app's own)")
    parser.add_argument("--self-test", action="store_true", help="open the window, wait for it to paint, exit 0")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    parser.add_argument("--version", action="version", version=f"kling-preflight-gui {__version__}")
    return parser


class _PaintWatcher(QObject):
    """Notices the first paint of a window or anything in it."""

    def __init__(self, window: QWidget) -> None:
        super().__init__()
        self._window = window
        self.painted = False

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint and isinstance(obj, QWidget):
            if obj is self._window or self._window.isAncestorOf(obj):
                self.painted = True
        return False


def _self_test(app: QApplication, window: MainWindow, hook: ExceptionHook) -> int:
    watcher = _PaintWatcher(window)
    app.installEventFilter(watcher)
    try:
        window.show()
        deadline = time.monotonic() + SELF_TEST_TIMEOUT
        while not watcher.painted and time.monotonic() < deadline:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        window.close()
        app.processEvents()
    finally:
        app.removeEventFilter(watcher)
    if hook.dialog is not None:
        _say(f"self-test: a bug was caught:\n{hook.dialog.report_view.toPlainText()}")
        return 1
    if not watcher.painted:
        _say(f"self-test: the window did not paint within {SELF_TEST_TIMEOUT:.0f} s")
        return 1
    _say("self-test: ok")
    return 0


def _say(text: str) -> None:
    if sys.stdout is not None:  # a windowed frozen app has no console
        print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the desktop app.

    :param argv: arguments without the program name (default: ``sys.argv[1:]``); Qt takes
        its own (``-platform offscreen``, ``-style fusion``) before they are parsed.
    :returns: the exit code.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    _parser().parse_known_args(argv)  # --help, --version and mistakes, before Qt needs a display
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0], *argv])
        argv = app.arguments()[1:]  # what Qt left
    args = _parser().parse_args(argv)
    configure_application(app)
    with contextlib.ExitStack() as stack:
        environ = os.environ
        temp: Path | None = None
        if args.self_test:
            temp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kling-preflight-self-test-")))
            if not os.environ.get(HOME_ENV):  # leave the user's own data alone
                environ = {**os.environ, HOME_ENV: str(temp / "home")}
        context = AppContext(environ=environ)
        setup_logging(context.paths, verbose=args.verbose, redactor=context.redactor)
        hook = ExceptionHook(context.redactor)
        hook.install()
        stack.callback(hook.uninstall)
        db_path = Path(args.db).expanduser() if args.db else None
        if temp is not None:
            window_settings = QSettings(str(temp / "window.ini"), QSettings.Format.IniFormat)
            if db_path is None:
                db_path = temp / "results.db"
                Store(db_path).close()
        else:
            window_settings = QSettings()
        window = MainWindow(context, window_settings, db_path)
        if args.self_test:
            code = _self_test(app, window, hook)
        else:
            window.show()
            if args.paths:
                window.add_paths(args.paths)
            code = app.exec()
        QThreadPool.globalInstance().waitForDone(10_000)
        return code


if __name__ == "__main__":
    sys.exit(main())
