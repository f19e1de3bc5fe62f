"""File → Merge results…: another machine's results show in the table."""

from PySide6.QtWidgets import QFileDialog

from core.models import Status
from tests.core.test_merge import build
from tests.desktop.conftest import WAIT_MS
from tests.desktop.test_main_window import make_window  # noqa: F401  (a fixture)


def test_merge_results_from_the_file_menu_shows_the_other_rows(qtbot, make_window, monkeypatch, tmp_path):  # noqa: F811
    mine = build(tmp_path / "mine.db", "/a", [1, 2])
    theirs = build(tmp_path / "theirs.db", "/b", [3, 4, 5], Status.FAILED)
    window = make_window(db_path=mine)
    qtbot.waitUntil(lambda: window.results.model.rowCount() == 2, timeout=WAIT_MS)
    assert "&Merge results…" in [action.text() for action in window.menuBar().actions()[0].menu().actions()]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(theirs)], ""))
    with qtbot.waitSignal(window.merge_finished, timeout=WAIT_MS) as merged:
        window.merge_action.trigger()
    assert merged.args[0][0].startswith(f"From {theirs}: 3 results added")
    qtbot.waitUntil(lambda: window.results.model.rowCount() == 5, timeout=WAIT_MS)


def test_a_refused_merge_says_why(qtbot, make_window, tmp_path):  # noqa: F811
    mine = build(tmp_path / "mine.db", "/a", [1])
    junk = tmp_path / "junk.db"
    junk.write_text("no\n" * 100)
    window = make_window(db_path=mine)
    shown = []
    window.show_error = shown.append
    window.merge_results([junk])
    qtbot.waitUntil(lambda: bool(shown), timeout=WAIT_MS)
    assert "is not a SQLite database" in shown[0]
