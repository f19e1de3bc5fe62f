"""Keys that cannot hurt, a layout that holds still, and states that tell the truth (issue 17)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from desktop.main_window import MainWindow
from tests.fakes.cometapi import COMET_ERRORS

from .conftest import WAIT_MS
from .test_main_window import _queue, _start_paid_run, _use_fake_cometapi, make_window, window  # noqa: F401  (fixtures)


def _paid_run_going(qtbot, window: MainWindow, photos, fake) -> None:
    fake.latency = 0.3
    _use_fake_cometapi(window, fake, concurrency=1)
    _queue(qtbot, window, photos)
    _start_paid_run(qtbot, window).accept()
    qtbot.waitUntil(lambda: len(fake.requests) >= 1, timeout=WAIT_MS)


def _activate(qtbot, window: MainWindow) -> None:
    """Window shortcuts (Esc) go to the active window only."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)


def _finish(qtbot, window: MainWindow) -> None:
    """Stop the run (saying yes to the question) and wait for its end."""
    panel = window.run_panel
    if window.session is None:
        return
    panel.stop_action.trigger()
    qtbot.waitUntil(lambda: panel.stop_question is not None, timeout=WAIT_MS)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        panel.stop_yes.click()


def test_esc_clears_the_search_and_never_stops_a_run(qtbot, window, photos, fake_cometapi):
    _paid_run_going(qtbot, window, photos, fake_cometapi)
    search = window.results.filter_bar.search
    _activate(qtbot, window)
    search.setFocus()
    qtbot.keyClicks(search, "obama")
    qtbot.keyClick(search, Qt.Key.Key_Escape)
    assert search.text() == ""
    qtbot.keyClick(search, Qt.Key.Key_Escape)  # an empty search: Esc again
    qtbot.keyClick(window.results.table, Qt.Key.Key_Escape)
    qtbot.wait(300)
    assert window.session is not None and window.run_panel.state == "running"
    _finish(qtbot, window)


def test_esc_closes_the_banner(qtbot, window):
    window.show_error("Something to read.")
    _activate(qtbot, window)
    assert window.banner.isVisible()
    qtbot.keyClick(window.results.table, Qt.Key.Key_Escape)
    assert not window.banner.isVisible()


def test_stopping_a_paid_run_asks_and_keep_running_keeps_it(qtbot, window, photos, fake_cometapi):
    _paid_run_going(qtbot, window, photos, fake_cometapi)
    panel = window.run_panel
    assert [k.toString() for k in panel.stop_action.shortcuts()] == ["Ctrl+."]
    panel.stop_action.trigger()
    qtbot.waitUntil(lambda: panel.stop_question is not None and panel.stop_question.isVisible(), timeout=WAIT_MS)
    panel.stop_question.reject()  # "Keep running" (and Esc) are the escape button
    qtbot.waitUntil(lambda: panel.stop_question is None, timeout=WAIT_MS)
    sent = len(fake_cometapi.requests)
    qtbot.waitUntil(lambda: len(fake_cometapi.requests) > sent, timeout=WAIT_MS)
    assert panel.state == "running"
    _finish(qtbot, window)
    assert panel.last_summary.cancelled


def test_a_free_run_stops_without_a_question(qtbot, window, photos):
    _queue(qtbot, window, photos)
    panel = window.run_panel
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        panel.start_action.trigger()
        panel.stop_action.trigger()
    assert panel.stop_question is None


def test_help_lists_the_shortcuts(qtbot, window):
    window.shortcuts_action.trigger()
    rows = dict((what, keys) for keys, what in window.shortcuts_dialog.rows())
    assert rows["Stop"] == "Ctrl+." and rows["Start"] == "Ctrl+R, F5" and "Esc" in rows.values()
    assert "never stops a run" in next(what for keys, what in window.shortcuts_dialog.rows() if keys == "Esc")
    window.shortcuts_dialog.close()
    menu_texts = [a.text() for a in window.menuBar().actions()[-1].menu().actions() if a.text()]
    assert menu_texts == ["&Keyboard shortcuts", "Open &data folder", "Open &log file", "&About Kling Preflight"]


def test_pause_does_not_move_the_buttons_and_hides_rate_and_eta(qtbot, window, photos, fake_cometapi):
    _paid_run_going(qtbot, window, photos, fake_cometapi)
    panel = window.run_panel
    qtbot.waitUntil(lambda: "ETA" in panel.stats_label.text(), timeout=WAIT_MS)
    from PySide6.QtWidgets import QToolButton

    pause_button = next(b for b in panel.findChildren(QToolButton) if b.defaultAction() is panel.pause_action)
    before = pause_button.mapTo(window, QPoint(0, 0))
    panel.pause_action.trigger()
    qtbot.waitUntil(lambda: panel.state == "paused", timeout=WAIT_MS)
    qtbot.wait(50)
    assert panel.waiting_label.isVisible()
    assert pause_button.mapTo(window, QPoint(0, 0)) == before
    assert "ETA" not in panel.stats_label.text() and "/s" not in panel.stats_label.text()
    panel.pause_action.trigger()
    assert pause_button.mapTo(window, QPoint(0, 0)) == before
    _finish(qtbot, window)
    assert pause_button.mapTo(window, QPoint(0, 0)) == before


def test_quitting_mid_run_asks_and_keep_running_keeps_the_window(qtbot, window, photos, fake_cometapi):
    _paid_run_going(qtbot, window, photos, fake_cometapi)
    window.close()
    assert window.quit_question is not None and window.isVisible()
    window.quit_question.reject()
    qtbot.waitUntil(lambda: window.quit_question is None, timeout=WAIT_MS)
    qtbot.wait(200)
    assert window.isVisible() and window.session is not None and window.run_panel.state == "running"
    _finish(qtbot, window)


def _run_with_a_rejected_key(qtbot, window: MainWindow, photos, fake) -> None:
    _use_fake_cometapi(window, fake)
    fake.enqueue("recognize", COMET_ERRORS["bad_token"])
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        _start_paid_run(qtbot, window).accept()


def test_a_rejected_key_changes_the_indicator_and_the_banner_leads_to_settings(qtbot, window, photos, fake_cometapi):
    _run_with_a_rejected_key(qtbot, window, photos, fake_cometapi)
    assert window.run_panel.provider_indicator().startswith("● Key rejected")
    banner = window.banner.text()
    assert banner.startswith("CometAPI") and "could not be used" in banner and "Stopped" not in banner
    assert window.banner.action_button.isVisible() and window.banner.action_button.text() == "Open Settings"
    window.banner.action_button.click()
    assert window.settings_dialog is not None
    window.settings_dialog.reject()
    assert not window.statusBar().currentMessage().startswith("Checking with")


def test_new_settings_clear_the_rejected_state(qtbot, window, photos, fake_cometapi):
    _run_with_a_rejected_key(qtbot, window, photos, fake_cometapi)
    window._on_settings_saved()
    assert window.run_panel.provider_indicator().startswith("● Ready")


def test_an_unreachable_address_is_told_at_once_before_anything_is_planned(qtbot, window, photos):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = window.context
    context.keystore.set("cometapi", "sk-test-unreachable")
    context.save_settings(context.settings.with_provider_value("cometapi", "base_url", f"http://127.0.0.1:{port}"))
    window.run_panel.refresh_providers()
    window.run_panel.select_provider("cometapi")
    _queue(qtbot, window, photos)
    assert window.start_run()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=WAIT_MS)
    assert window.session is None and window.run_panel.plan_dialog is None
    assert "could not be used" in window.banner.text() and "Nothing was sent." in window.banner.text()
    assert window.run_panel.provider_indicator().startswith("● Unreachable")
    assert window.run_panel.start_action.isEnabled()
