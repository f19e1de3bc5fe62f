"""The queue drives the view, hints and the log follow the state, and everyday touches (issue 17)."""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import QSettings
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog

from desktop import main_window as main_window_module
from tests.fakes.cometapi import COMET_ERRORS

from .conftest import WAIT_MS
from .test_main_window import _queue, _start_paid_run, _use_fake_cometapi, make_window, window  # noqa: F401  (fixtures)


def _paths_shown(window) -> set[str]:
    model = window.results.model
    return {model.row_at(n)["path"] for n in range(model.rowCount())}


def test_the_hint_follows_the_queue(qtbot, window, photos):
    assert window.run_panel.stats_label.text() == "Queue photos, then press Start."
    _queue(qtbot, window, photos)
    qtbot.waitUntil(lambda: "queued" in window.run_panel.stats_label.text(), timeout=WAIT_MS)
    assert window.run_panel.stats_label.text() == "16 photos queued (5 invalid). Press Start to check 11."
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    window.queue.clear()
    assert window.run_panel.stats_label.text() == "Queue photos, then press Start."


def test_the_log_has_a_readable_line_per_run_event_and_per_failed_photo(qtbot, window, photos, fake_cometapi, caplog):
    caplog.set_level(logging.INFO)  # as the app's own logging setup does
    _use_fake_cometapi(window, fake_cometapi, concurrency=1)
    fake_cometapi.enqueue("recognize", COMET_ERRORS["plain_500"], COMET_ERRORS["plain_500"])
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        _start_paid_run(qtbot, window).accept()
    qtbot.waitUntil(lambda: "Run ended" in window.log_pane.text(), timeout=WAIT_MS)
    text = window.log_pane.text()
    assert "Summary(" not in text and "provider=" not in text
    assert f"Run started: {window.run_panel.provider_state().label} over {photos}" in text
    assert "Run ended: Finished in" in text
    failed_lines = [line for line in text.splitlines() if " Failed " in line and str(photos) in line]
    assert len(failed_lines) == 2


def test_clicking_a_queued_folder_shows_only_its_photos(qtbot, window, photos, tmp_path, samples):
    other = tmp_path / "other"
    other.mkdir()
    (other / "one.jpg").write_bytes((samples / "fr_obama.jpg").read_bytes())
    _queue(qtbot, window, photos)
    _queue(qtbot, window, other)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    qtbot.waitUntil(lambda: window.results.model.rowCount() == 17, timeout=WAIT_MS)
    view = window.queue.view
    index = window.queue.model.index(1, 0)
    rect = view.visualRect(index)
    qtbot.mouseClick(view.viewport(), __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.MouseButton.LeftButton,
                     pos=rect.center())
    qtbot.waitUntil(lambda: window.results.model.rowCount() == 1, timeout=WAIT_MS)
    assert _paths_shown(window) == {str(other / "one.jpg")}
    chip = window.results.filter_bar.scope_chip
    assert chip.isVisible() and "other" in chip.text()
    chip.click()
    qtbot.waitUntil(lambda: window.results.model.rowCount() == 17, timeout=WAIT_MS)


def test_the_queue_is_remembered_and_clearing_it_can_be_undone(qtbot, make_window, window_settings, photos):
    first = make_window()
    _queue(qtbot, first, photos)
    first.close()
    qtbot.waitUntil(lambda: not first.isVisible(), timeout=WAIT_MS)
    second = make_window(settings=QSettings(window_settings.fileName(), QSettings.Format.IniFormat))
    assert second.queue.roots() == [str(photos)]
    second.queue.clear()
    assert second.queue.roots() == []
    assert "emptied" in second.banner.text() and second.banner.action_button.text() == "Undo"
    second.banner.action_button.click()
    assert second.queue.roots() == [str(photos)] and not second.banner.isVisible()


def test_export_starts_in_the_scanned_folder_and_offers_show_in_folder(qtbot, window, photos, monkeypatch, tmp_path):
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    asked = {}

    def save_name(_parent, _title, suggested, _filters):
        asked["suggested"] = suggested
        return str(tmp_path / "out.csv"), "CSV for Excel (*.csv)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_name)
    revealed = []
    monkeypatch.setattr(main_window_module, "reveal_in_folder", lambda folder, path: revealed.append((folder, path)))
    with qtbot.waitSignal(window.export_finished, timeout=WAIT_MS):
        window.export_all_action.trigger()
    assert os.path.dirname(asked["suggested"]) == str(photos)
    assert window.banner.action_button.text() == "Show in folder"
    window.banner.action_button.click()
    assert revealed == [(str(tmp_path), str(tmp_path / "out.csv"))]


def test_open_says_when_nothing_can_open_the_file(qtbot, window, photos, monkeypatch):
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: False))  # no default app here
    window.results.table.selectRow(0)
    window.results.action_open.trigger()
    assert window.banner.level() == "error" and "Nothing on this computer is set to open the file" in window.banner.text()


def test_search_words_match_separately(qtbot, window, photos):
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    search = window.results.filter_bar.search
    search.setText("obama fr")
    window.results.filter_bar.flush()
    assert _paths_shown(window) == {str(photos / "fr_obama.jpg")}


def test_the_theme_is_chosen_applied_and_remembered(qtbot, make_window, window_settings):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    system = app.palette().color(QPalette.ColorRole.Window)
    first = make_window()
    try:
        first.theme_actions["dark"].trigger()
        assert app.palette().color(QPalette.ColorRole.Window).lightness() < 100
        assert app.style().name().lower() == "fusion"
        first.theme_actions["light"].trigger()
        assert app.palette().color(QPalette.ColorRole.Window).lightness() > 150
        first.theme_actions["dark"].trigger()
        first.close()
        qtbot.waitUntil(lambda: not first.isVisible(), timeout=WAIT_MS)
        first.themes.apply("system")  # as a new launch starts
        second = make_window(settings=QSettings(window_settings.fileName(), QSettings.Format.IniFormat))
        assert second.theme_actions["dark"].isChecked()
        assert app.palette().color(QPalette.ColorRole.Window).lightness() < 100
        second.theme_actions["system"].trigger()
        assert app.palette().color(QPalette.ColorRole.Window) == system
    finally:
        first.themes.apply("system")
