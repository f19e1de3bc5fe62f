"""Fixtures for the desktop tests: Qt offscreen, a private app home, an in-memory keyring,
throwaway window settings, a copy of the sample photos, and a leak check after each window."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import shutil  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QSettings, QThread, QThreadPool, QTimer  # noqa: E402

from core.context import AppContext  # noqa: E402
from tests.conftest import make_context  # noqa: E402,F401  (also for the tests here)
from tests.keyring_backend import MemoryKeyring  # noqa: E402

#: How long a test waits for a run, a count or a thread at most (never asserted on).
WAIT_MS = 60_000


@pytest.fixture
def keyring_backend() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def app_context(app_home, keyring_backend) -> AppContext:
    return make_context(app_home, keyring_backend)


@pytest.fixture
def window_settings(tmp_path) -> QSettings:
    """Window state in a file of this test's own, never the user's settings."""
    return QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def photos(tmp_path, samples) -> Path:
    """A copy of the sample photos (16 image files, 5 of them invalid, 5 with a face)."""
    target = tmp_path / "photos"
    shutil.copytree(samples, target)
    return target


def _live_threads() -> set[threading.Thread]:
    # Qt's own threads show up as dummy entries once they run Python code and never leave
    # the list; they are checked through Qt instead. The fakes' threads belong to their fixtures.
    return {
        t for t in threading.enumerate()
        if t.is_alive() and not isinstance(t, threading._DummyThread) and not t.name.startswith("fake-")
    }


def _describe(obj) -> str:
    """``QTimer < ResultsPanel < QSplitter < ...``: where a leaked object hangs."""
    chain = []
    while obj is not None:
        chain.append(obj.objectName() or type(obj).__name__)
        obj = obj.parent()
    return " < ".join(chain)


@pytest.fixture
def no_leaks(qtbot) -> Iterator[list]:
    """Check, after the test, that no thread it started is still alive and no timer of the
    widgets it registered (append them to the yielded list) still runs."""
    baseline = _live_threads()
    widgets: list = []
    yield widgets
    for widget in widgets:
        if widget.isVisible():
            # A main window asks before quitting mid-run; a test that ended there quits without.
            getattr(widget, "quit_now", widget.close)()
            qtbot.waitUntil(lambda w=widget: not w.isVisible(), timeout=WAIT_MS)
    assert QThreadPool.globalInstance().waitForDone(WAIT_MS)
    qtbot.waitUntil(lambda: not (_live_threads() - baseline), timeout=WAIT_MS)
    for widget in widgets:
        running = [t.objectName() or repr(t) for t in widget.findChildren(QThread) if t.isRunning()]
        assert running == [], f"threads still running: {running}"
        active = [_describe(t) for t in widget.findChildren(QTimer) if t.isActive()]
        assert active == [], f"timers still running: {active}"


@pytest.fixture(scope="session")
def template_results_db(tmp_path_factory) -> tuple[Path, list]:
    """The shared 1,000-row database, built once for the whole run; never written to."""
    from tests.desktop.results_data import build_results_db

    path = tmp_path_factory.mktemp("template") / "results.db"
    return path, build_results_db(path)


@pytest.fixture
def results_db(tmp_path, template_results_db) -> tuple[Path, list]:
    """A private copy of the 1,000-row database and its specs: tests may write to it."""
    path = tmp_path / "results.db"
    shutil.copyfile(template_results_db[0], path)
    return path, template_results_db[1]
