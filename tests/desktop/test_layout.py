"""A layout that holds at 1280×800 and with big fonts (issue 17): every quick filter in
sight, Problems stretching, Status whole, columns chosen from the header, the detail pane
read from its top, the SHA-256 copied whole."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHeaderView, QToolButton

from core.models import CheckResult, Outcome, Status
from core.store import Store
from core.words import STATUS_LABELS
from desktop.results_model import COLUMN_INDEX
from desktop.results_view import QUICK_FILTERS

from .results_data import build_results_db
from .test_detail_pane import pane, stored_row  # noqa: F401  (fixture)
from .test_main_window import make_window, window  # noqa: F401  (fixtures)


def _two_providers(path) -> None:
    specs = build_results_db(path, n=40)
    with Store(path) as writer:
        writer.save_outcomes([Outcome(s.sha, "cometapi", s.path, Status.CHECKED, result=CheckResult(head_seg=True))
                              for s in specs if s.status == "checked"][:4])


def _chips_in_sight(window) -> list[str]:
    bar = window.results.filter_bar
    shown = []
    for chip in bar.quick_row.findChildren(QToolButton):
        rect = QRect(chip.mapTo(window, QPoint(0, 0)), chip.size())
        if chip.isVisible() and window.rect().contains(rect):
            shown.append(chip.defaultAction().data())
    return shown


def test_every_quick_filter_is_in_sight_with_two_providers_and_at_150_percent(qtbot, window, tmp_path):
    db = tmp_path / "two.db"
    _two_providers(db)
    window.resize(1280, 800)
    window.set_database(db)
    qtbot.wait(50)
    assert not window.results.filter_bar.provider.isHidden()
    assert sorted(_chips_in_sight(window)) == sorted(QUICK_FILTERS)
    font = window.font()
    font.setPointSizeF(font.pointSizeF() * 1.5)  # what 150 % scaling does to the text
    window.setFont(font)
    qtbot.wait(50)
    assert sorted(_chips_in_sight(window)) == sorted(QUICK_FILTERS)


def test_problems_stretches_and_status_is_never_elided(qtbot, window, tmp_path):
    window.resize(1280, 800)
    window.set_database(_db(tmp_path))
    header = window.results.table.horizontalHeader()
    problems = COLUMN_INDEX["problems"]
    assert header.sectionResizeMode(problems) == QHeaderView.ResizeMode.Stretch
    assert not header.stretchLastSection()
    qtbot.wait(50)
    # Not cut off by the edge: it ends inside the table, with room for a few words (elided
    # beyond, the whole text in its tooltip and the detail pane).
    viewport = window.results.table.viewport().width()
    assert header.sectionViewportPosition(problems) + header.sectionSize(problems) <= viewport
    assert header.sectionSize(problems) >= 100
    metrics = window.results.table.fontMetrics()
    widest = max(metrics.horizontalAdvance(word) for word in STATUS_LABELS.values())
    assert header.sectionSize(COLUMN_INDEX["status"]) >= widest + 40  # the dot and the margins too


def test_the_header_menu_shows_and_hides_columns_provider_among_them(qtbot, window, tmp_path):
    window.set_database(_db(tmp_path))
    table = window.results.table
    assert table.isColumnHidden(COLUMN_INDEX["provider"])
    window.results._show_header_menu(QPoint(10, 5))
    menu = window.results.header_menu
    entries = {a.objectName(): a for a in menu.actions()}
    assert "provider" in entries and not entries["provider"].isChecked()
    entries["provider"].trigger()
    assert not table.isColumnHidden(COLUMN_INDEX["provider"])
    window.results._update_providers()  # a refresh keeps the user's choice
    assert not table.isColumnHidden(COLUMN_INDEX["provider"])
    entries["status"].trigger()
    assert table.isColumnHidden(COLUMN_INDEX["status"])
    menu.close()


def _db(tmp_path):
    path = tmp_path / "one.db"
    build_results_db(path, n=40)
    return path


def test_the_detail_pane_starts_at_the_top_for_each_new_photo(qtbot, pane, tmp_path):
    pane.resize(320, 300)  # short: the content scrolls
    rows = []
    for n in range(2):
        path = tmp_path / f"p{n}.png"
        Image.new("RGB", (400, 400), (n * 80, 90, 90)).save(path)
        rows.append(stored_row(tmp_path, path))
    pane.show_row(rows[0])
    bar = pane.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    bar.setValue(bar.maximum())
    pane.show_row(rows[1])
    assert bar.value() == 0


def test_the_sha256_has_a_copy_button(qtbot, pane, tmp_path):
    path = tmp_path / "p.png"
    Image.new("RGB", (400, 400), (90, 90, 90)).save(path)
    row = stored_row(tmp_path, path)
    pane.show_row(row)
    field = pane.facts["sha256"]
    copy = next(a for a in field.actions() if a.objectName() == "copy")
    QGuiApplication.clipboard().clear()
    copy.trigger()
    assert QGuiApplication.clipboard().text() == row["sha256"]
