"""The thumbnail grid: one toggle with the table, the same selection and keys, badges, face
boxes when zoomed, and a full-size preview with next and previous (issue 17)."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QColor

from desktop.face_overlay import FACE_BOX_COLOUR
from desktop.results_model import COLUMN_INDEX

from .conftest import WAIT_MS
from .test_main_window import _queue, make_window, window  # noqa: F401  (fixtures)
from .test_results_view import context, make_panel, panel, select_rows  # noqa: F401  (fixtures)


def test_the_grid_shares_the_tables_selection_and_keys(qtbot, panel):
    panel.show()
    select_rows(panel, 3)
    panel.show_grid(True)
    assert panel._left.currentWidget() is panel.grid and panel.filter_bar.size_slider.isVisible()
    assert panel.grid.currentIndex().row() == 3
    with qtbot.waitSignal(panel.selection_changed) as changed:
        qtbot.keyClick(panel.grid, Qt.Key.Key_Right)
    assert changed.args[0]["path"] == panel.model.row_at(4)["path"]
    qtbot.keyClick(panel.grid, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert [r["path"] for r in panel.selected_rows()] == [panel.model.row_at(n)["path"] for n in (4, 5)]
    panel.show_grid(False)
    assert panel._left.currentWidget() is panel.table
    assert sorted(i.row() for i in panel.table.selectionModel().selectedRows()) == [4, 5]


def test_the_size_slider_sizes_the_cells_and_the_choice_is_remembered(qtbot, panel, make_panel, results_db, tmp_path):
    panel.show_grid(True)
    before = panel.grid.cell_size()
    panel.filter_bar.size_slider.setValue(200)
    assert panel.grid.cell_size().width() > before.width() and panel.grid.picture_side() == 200
    settings = QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat)
    panel.save_state(settings)
    settings.sync()
    again = make_panel()
    again.set_database(results_db[0])
    again.restore_state(QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat))
    assert again.grid_shown() and again.grid.picture_side() == 200


def test_space_opens_the_preview_and_arrows_go_to_the_next_photo(qtbot, panel):
    panel.show()
    select_rows(panel, 2)
    panel.show_grid(True)
    panel.grid.setFocus()
    qtbot.keyClick(panel.grid, Qt.Key.Key_Space)
    preview = panel.preview
    assert preview is not None and preview.path == panel.model.row_at(2)["path"]
    qtbot.keyClick(preview, Qt.Key.Key_Right)
    assert preview.path == panel.model.row_at(3)["path"]
    assert panel.table.currentIndex().row() == 3  # the grid follows
    preview.previous_button.click()
    assert preview.path == panel.model.row_at(2)["path"]
    preview.reject()
    qtbot.waitUntil(lambda: panel.preview is None, timeout=WAIT_MS)


def test_zoomed_thumbnails_show_their_face_boxes(qtbot, window, photos):
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    results = window.results
    model = results.model
    qtbot.waitUntil(lambda: model.rowCount() == 16, timeout=WAIT_MS)
    target = next(n for n in range(model.rowCount()) if model.row_at(n)["file"] == "fr_obama.jpg")
    results.show_grid(True)

    def boxes_drawn(side: int) -> int:
        results.filter_bar.size_slider.setValue(side)
        index = model.index(target, COLUMN_INDEX["thumbnail"])
        results.grid.scrollTo(index)
        qtbot.waitUntil(lambda: results.thumbnails.get(model.row_at(target)["sha256"], str(photos / "fr_obama.jpg")) is not None,
                        timeout=WAIT_MS)
        image = results.grid.viewport().grab(results.grid.visualRect(index)).toImage()
        return sum(1 for x in range(image.width()) for y in range(image.height())
                   if QColor(image.pixel(x, y)) == FACE_BOX_COLOUR)

    assert boxes_drawn(100) == 0  # small: no boxes
    assert boxes_drawn(220) > 20  # zoomed in: the face's box
