"""The main window, driven as a user would: queue, run, pause, stop, retry, export, settings."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import subprocess
import sys
import shutil
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QFileDialog

from core.store import RowFilter, Store
from desktop.errors import ExceptionHook
from desktop.main_window import MainWindow
from desktop.queue_panel import QueueCounts
from tests.conftest import read_export_csv
from tests.fakes.cometapi import COMET_ERRORS, kling_error

from .conftest import WAIT_MS

ROOT = Path(__file__).resolve().parents[2]
FACES = {"sk_astronaut.png", "sk_camera.png", "mpl_grace_hopper.jpg", "fr_obama.jpg", "fr_biden.jpg"}


@pytest.fixture
def make_window(qtbot, app_context, window_settings, no_leaks):
    def make(context=app_context, settings=window_settings, db_path=None) -> MainWindow:
        window = MainWindow(context, settings, db_path)
        qtbot.addWidget(window)
        no_leaks.append(window)
        window.show()
        return window

    return make


@pytest.fixture
def window(make_window) -> MainWindow:
    return make_window()


def _queue(qtbot, window: MainWindow, folder: Path) -> QueueCounts:
    window.add_paths([folder])
    qtbot.waitUntil(lambda: (window.queue.counts_for(str(folder)) or QueueCounts()).complete, timeout=WAIT_MS)
    return window.queue.counts_for(str(folder))


def _use_fake_cometapi(window: MainWindow, fake, **values) -> None:
    context = window.context
    context.keystore.set("cometapi", fake.key)
    settings = context.settings.with_provider_value("cometapi", "base_url", fake.base_url)
    for name, value in values.items():
        settings = settings.with_provider_value("cometapi", name, value)
    context.save_settings(settings)
    window.run_panel.refresh_providers()
    window.run_panel.select_provider("cometapi")


def _start_paid_run(qtbot, window: MainWindow, action=None):
    """Press Start (or ``action``) and wait for the confirmation; :returns: the dialog."""
    (action or window.run_panel.start_action).trigger()
    qtbot.waitUntil(lambda: window.run_panel.plan_dialog is not None and window.run_panel.plan_dialog.isVisible(),
                    timeout=WAIT_MS)
    return window.run_panel.plan_dialog


def _rows(window: MainWindow, provider: str) -> list[dict]:
    with Store.open_readonly(window.db_path) as store:
        return list(store.query_rows(RowFilter(provider=provider)))


def _sent_shas(fake) -> list[str]:
    return [hashlib.sha256(base64.b64decode(r.json["image"])).hexdigest() for r in fake.requests]


def test_a_new_user_sees_where_to_start(window, app_context):
    assert window.windowTitle() == "Kling Preflight"
    assert window.queue.empty_state.isVisible()
    assert window.run_panel.provider_id() == "local"  # no key anywhere: the free one
    assert window.run_panel.provider_state().availability.ready
    assert not window.run_panel.start_action.isEnabled()  # nothing queued yet
    combo = window.run_panel.provider_box
    labels = [combo.itemText(n) for n in range(combo.count())]
    assert "CometAPI (Kling image recognition) (needs a key)" in labels
    shortcuts = {a.text(): [k.toString() for k in a.shortcuts()] for a in (
        window.add_folder_action, window.run_panel.start_action, window.run_panel.pause_action,
        window.run_panel.stop_action, window.export_filter_action, window.settings_action, window.log_action)}
    assert shortcuts == {
        "Add &folder…": ["Ctrl+O"], "&Start": ["Ctrl+R", "F5"], "&Pause": ["Space", "Ctrl+P"],
        "S&top": ["Ctrl+."], "&Export current filter…": ["Ctrl+E"], "&Settings…": ["Ctrl+,"], "&Log": ["Ctrl+L"],
    }
    assert str(app_context.paths.database) in window.db_label.text()


def test_add_folder_queues_it_with_counts_and_remembers_it(qtbot, window, photos, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(photos))
    window.add_folder_action.trigger()
    assert window.queue.roots() == [str(photos)]
    qtbot.waitUntil(lambda: (window.queue.counts_for(str(photos)) or QueueCounts()).complete, timeout=WAIT_MS)
    counts = window.queue.counts_for(str(photos))
    assert (counts.images, counts.invalid, counts.checked) == (16, 5, 0)
    assert window.run_panel.start_action.isEnabled()
    assert not window.run_panel.retry_action.isEnabled()  # nothing failed
    assert window.context.settings.recent_folders[0] == str(photos)
    window._fill_recent_menu()
    assert [a.text() for a in window.recent_menu.actions()] == [str(photos)]


def test_a_folder_dropped_on_the_window_is_queued(qtbot, window, photos):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photos))])
    centre = window.rect().center()
    # QPoint, not QPointF: PySide6 6.11 has only that overload (6.12 deprecates it).
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert window.queue.roots() == [str(photos)]
    qtbot.waitUntil(lambda: (window.queue.counts_for(str(photos)) or QueueCounts()).complete, timeout=WAIT_MS)


def test_a_drag_of_something_that_is_not_a_file_is_refused(window):
    mime = QMimeData()
    mime.setText("just words")
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    enter.ignore()
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


def test_an_offline_run_finds_the_faces_and_exports_csv(qtbot, window, photos, monkeypatch, tmp_path):
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    summary = window.run_panel.last_summary
    assert (summary.checked, summary.invalid, summary.failed) == (11, 5, 0)
    assert window.run_panel.stats_label.text().startswith("Finished in")
    rows = _rows(window, "local")
    assert {row["file"] for row in rows if row["face_count"]} == FACES
    assert all(row["verdict_avatar"] == "yes" for row in rows if row["file"] in FACES)
    qtbot.waitUntil(lambda: window.results.model.rowCount() == 16, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.queue.counts_for(str(photos)).checked == 11, timeout=WAIT_MS)

    everything = tmp_path / "everything.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(everything), "CSV for Excel (*.csv)"))
    with qtbot.waitSignal(window.export_finished, timeout=WAIT_MS) as exported:
        window.export_all_action.trigger()
    assert exported.args == [str(everything), 16]
    table = read_export_csv(everything)
    assert len(table) == 16
    assert {row["file"] for row in table if row["face_count"] not in ("", "0")} == FACES

    # "Export current filter" exports what the table shows: here, the photos with a face.
    window.results.filter_bar.set_quick("face")
    window.results.filter_bar.flush()
    faces_only = tmp_path / "faces"  # no suffix: the chosen format's is added
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(faces_only), "JSON (*.json)"))
    with qtbot.waitSignal(window.export_finished, timeout=WAIT_MS) as exported:
        window.export_filter_action.trigger()
    assert exported.args == [str(faces_only) + ".json", 5]


def test_a_paid_run_shows_its_plan_first_then_checks_with_cometapi(qtbot, window, photos, fake_cometapi):
    _use_fake_cometapi(window, fake_cometapi)
    _queue(qtbot, window, photos)
    dialog = _start_paid_run(qtbot, window)
    assert dialog.rows["send"] == "11 images"
    assert dialog.rows["invalid"].startswith("5 images (")
    assert dialog.rows["known"] == "0 images"
    assert dialog.rows["provider"] == "CometAPI (Kling image recognition)"
    assert fake_cometapi.requests == []  # nothing is sent before the answer

    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        dialog.accept()
    rows = [row for row in _rows(window, "cometapi") if row["status"] == "checked"]
    assert len(rows) == 11 == len(fake_cometapi.requests)
    for row in rows:
        expected = fake_cometapi.flags_for(row["sha256"])
        assert {name: row[name] for name in expected} == expected
        assert row["cost"] == "0.2"


def test_the_run_summary_counts_faces_and_cost_as_the_command_line_does(qtbot, window, photos, fake_cometapi):
    """CometAPI locates no face, it flags one; copies cost nothing more. The window's
    summary says what ``export --has-face`` and the store's cost per content say."""
    shutil.copyfile(photos / "fr_obama.jpg", photos / "obama_copy.jpg")
    _use_fake_cometapi(window, fake_cometapi)
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        _start_paid_run(qtbot, window).accept()
    rows = _rows(window, "cometapi")
    with_face = [row for row in rows if row["face_seg"]]
    assert len(with_face) >= 2 and all(row["face_count"] is None for row in with_face)
    cost = sum({row["sha256"]: Decimal(row["cost"]) for row in rows if row["cost"]}.values())
    assert len(fake_cometapi.requests) == 11 and cost == Decimal("2.2")
    label = window.run_panel.stats_label
    expected = f"{len(with_face):,} images with a face; cost reported by the provider: 2.2."
    qtbot.waitUntil(lambda: expected in label.text(), timeout=WAIT_MS)


def test_cancelling_the_plan_sends_nothing(qtbot, window, photos, fake_cometapi):
    _use_fake_cometapi(window, fake_cometapi)
    _queue(qtbot, window, photos)
    dialog = _start_paid_run(qtbot, window)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        dialog.reject()
    assert fake_cometapi.requests == []
    assert window.run_panel.stats_label.text() == "Nothing was sent: you cancelled the paid run."
    assert window.run_panel.start_action.isEnabled()


def test_pause_resume_and_stop_from_the_window(qtbot, window, photos, fake_cometapi):
    fake_cometapi.latency = 0.2
    _use_fake_cometapi(window, fake_cometapi, concurrency=1)
    _queue(qtbot, window, photos)
    panel = window.run_panel
    _start_paid_run(qtbot, window).accept()
    qtbot.waitUntil(lambda: len(fake_cometapi.requests) >= 1, timeout=WAIT_MS)
    assert not panel.start_action.isEnabled() and panel.stop_action.isEnabled()

    panel.pause_action.trigger()
    qtbot.waitUntil(lambda: panel.state == "paused", timeout=WAIT_MS)
    assert panel.pause_action.text() == "&Resume"
    qtbot.waitUntil(lambda: fake_cometapi.in_flight == 0, timeout=WAIT_MS)
    sent = len(fake_cometapi.requests)
    qtbot.wait(600)  # three latencies: a call started now would have been seen
    assert len(fake_cometapi.requests) == sent

    panel.pause_action.trigger()
    assert panel.state == "running"
    qtbot.waitUntil(lambda: len(fake_cometapi.requests) > sent, timeout=WAIT_MS)
    panel.stop_action.trigger()  # a paid run asks first
    qtbot.waitUntil(lambda: panel.stop_question is not None and panel.stop_question.isVisible(), timeout=WAIT_MS)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        panel.stop_yes.click()
    summary = panel.last_summary
    assert summary.cancelled and summary.not_attempted > 0
    assert summary.checked == len([r for r in _rows(window, "cometapi") if r["status"] == "checked"])
    assert panel.stats_label.text().startswith("Stopped by you.")
    assert panel.start_action.isEnabled() and not panel.stop_action.isEnabled()


def test_retry_failed_checks_the_failures_and_nothing_else(qtbot, window, photos, fake_cometapi):
    _use_fake_cometapi(window, fake_cometapi, concurrency=1)
    # A 500 leaves the outcome unknown, and CometAPI may bill a retry: recorded as failed.
    fake_cometapi.enqueue("recognize", COMET_ERRORS["plain_500"], COMET_ERRORS["plain_500"])
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        _start_paid_run(qtbot, window).accept()
    assert (window.run_panel.last_summary.checked, window.run_panel.last_summary.failed) == (9, 2)
    failed = {row["sha256"] for row in _rows(window, "cometapi") if row["status"] == "failed"}
    assert len(failed) == 2

    retry = window.run_panel.retry_action
    qtbot.waitUntil(lambda: retry.isEnabled(), timeout=WAIT_MS)  # once the recount has seen the failures
    assert retry.text() == "&Retry failed (2)"
    fake_cometapi.reset()
    dialog = _start_paid_run(qtbot, window, retry)
    assert (dialog.rows["send"], dialog.rows["known"]) == ("2 images", "9 images")
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        dialog.accept()
    assert set(_sent_shas(fake_cometapi)) == failed and len(fake_cometapi.requests) == 2
    assert {row["status"] for row in _rows(window, "cometapi") if row["valid"]} == {"checked"}
    qtbot.waitUntil(lambda: not retry.isEnabled(), timeout=WAIT_MS)


def test_a_rate_limit_shows_the_wait_and_the_run_goes_on(qtbot, window, photos, fake_cometapi):
    _use_fake_cometapi(window, fake_cometapi, concurrency=1)
    fake_cometapi.enqueue("recognize", kling_error(429, 1303, "parallel task over resource pack limit",
                                                   headers={"Retry-After": "1"}))
    _queue(qtbot, window, photos)
    _start_paid_run(qtbot, window).accept()
    label = window.run_panel.waiting_label
    qtbot.waitUntil(lambda: label.isVisible() and label.text() == "Waiting 1 s: rate limited", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.session is None, timeout=WAIT_MS)
    assert window.run_panel.last_summary.checked == 11


def test_a_provider_that_stops_is_explained_in_the_window(qtbot, window, photos, fake_cometapi):
    _use_fake_cometapi(window, fake_cometapi)
    fake_cometapi.balance_exhausted = True
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        _start_paid_run(qtbot, window).accept()
    summary = window.run_panel.last_summary
    assert summary.halted and summary.not_attempted > 0
    assert window.banner.level() == "error"
    assert summary.halted in window.banner.text() and "The remaining photos were not sent." in window.banner.text()
    assert window.run_panel.stats_label.text().startswith("Stopped by the provider.")


def test_a_path_that_never_existed_does_not_exist_and_a_recent_one_gone_is_no_longer_there(qtbot, window, tmp_path):
    never = tmp_path / "never"
    assert window.add_paths([never]) == []
    assert window.banner.text() == f"{never} does not exist."
    recent = tmp_path / "recent"
    recent.mkdir()
    window.add_paths([recent])
    window.queue.clear()
    recent.rmdir()
    window.add_paths([recent])
    assert window.banner.text() == f"{recent} is no longer there."


def test_a_queued_folder_that_is_gone_by_the_run_is_reported(qtbot, window, photos, tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    _queue(qtbot, window, photos)
    window.add_paths([gone])
    gone.rmdir()
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    assert window.run_panel.last_summary.checked == 11
    assert window.banner.level() == "warning"
    assert window.banner.text() == f"Skipped {gone}: not found."


def test_check_again_from_the_results_runs_just_those_files(qtbot, window, photos):
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.results.check_again_requested.emit([str(photos / "fr_obama.jpg")])
    assert window.run_panel.last_summary.checked == 1


def test_closing_during_a_run_stops_it_first(qtbot, window, photos, fake_cometapi):
    fake_cometapi.latency = 0.3
    _use_fake_cometapi(window, fake_cometapi, concurrency=1)
    _queue(qtbot, window, photos)
    _start_paid_run(qtbot, window).accept()
    qtbot.waitUntil(lambda: len(fake_cometapi.requests) >= 1, timeout=WAIT_MS)
    window.close()
    assert window.isVisible() and window.quit_question is not None  # it asks first
    window.quit_yes.click()
    assert window.isVisible()  # not yet: the run is saving its results
    assert "Stopping the run" in window.banner.text()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)
    assert window.session is None


def test_window_geometry_splitter_and_panels_are_remembered(qtbot, make_window):
    first = make_window()
    # Offscreen the screen is 800 px wide, narrower than the window can be: keep to its minimum width.
    first.resize(first.minimumSizeHint().width(), 700)
    size = first.size()
    first.splitter.setSizes([360, 890])
    first.log_action.trigger()
    first.queue.set_recursive(False)
    qtbot.waitUntil(lambda: first.log_pane.isVisible(), timeout=WAIT_MS)
    sizes = first.splitter.sizes()
    first.close()

    second = make_window()
    assert second.size() == size and size.height() == 700
    assert second.splitter.sizes() == sizes
    assert second.log_pane.isVisibleTo(second)
    assert second.queue.recursive() is False


def test_another_results_database_can_be_opened_and_a_wrong_file_is_explained(qtbot, window, photos, tmp_path, monkeypatch):
    other = tmp_path / "other.db"
    Store(other).close()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(photos / "notes_not_a_photo.jpg"), ""))
    window.open_db_action.trigger()
    assert "notes_not_a_photo.jpg" in window.banner.text()
    assert window.db_path == window.context.paths.database

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(other), ""))
    window.open_db_action.trigger()
    assert window.db_path == other
    assert window.windowTitle() == "other.db — Kling Preflight"


def test_saving_a_key_in_settings_makes_its_provider_ready(qtbot, window):
    window.settings_action.trigger()
    dialog = window.settings_dialog
    dialog.pages["cometapi"].key_edit.setText("sk-test-abcdef123456")
    assert dialog.save()
    window.run_panel.select_provider("cometapi")
    assert window.run_panel.provider_state().availability.ready
    combo = window.run_panel.provider_box
    assert combo.itemText(combo.currentIndex()) == "CometAPI (Kling image recognition)"


def test_the_log_pane_shows_the_log_without_secrets(qtbot, window, app_context):
    app_context.redactor.add("sk-secret-99999")
    logging.getLogger("desktop.test").warning("calling with sk-secret-99999")
    qtbot.waitUntil(lambda: "calling with [redacted]" in window.log_pane.text(), timeout=WAIT_MS)
    assert "sk-secret-99999" not in window.log_pane.text()
    assert not window.log_pane.isVisible()
    window.log_action.trigger()
    assert window.log_pane.isVisible()


def test_a_bug_in_any_thread_is_shown_with_a_copyable_report_without_secrets(qtbot, app_context):
    app_context.redactor.add("sk-secret-12345")
    hook = ExceptionHook(app_context.redactor)
    hook.install()
    try:
        try:
            raise RuntimeError("boom near sk-secret-12345")
        except RuntimeError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        thread = threading.Thread(target=lambda: 1 / 0, name="worker-x")
        thread.start()
        thread.join()
    finally:
        hook.uninstall()
    qtbot.waitUntil(lambda: hook.dialog is not None and "ZeroDivisionError" in hook.dialog.report_view.toPlainText(),
                    timeout=WAIT_MS)
    report = hook.dialog.report_view.toPlainText()
    assert "RuntimeError: boom near [redacted]" in report and "sk-secret-12345" not in report
    assert "Thread: worker-x" in report
    hook.dialog.copy_report()
    assert QGuiApplication.clipboard().text() == report
    hook.dialog.close()


def test_the_self_test_opens_the_window_and_exits_0(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "KLING_PREFLIGHT_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "desktop", "--self-test"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test: ok" in result.stdout
