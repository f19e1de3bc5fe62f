"""Live updates during a run: the background refresh, the page read-ahead and the
thumbnails that wait for a still view (the levers bench/gui.py measured)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QCoreApplication  # noqa: E402

from core.models import Outcome, ProbedImage, Status  # noqa: E402
from core.store import RowFilter, Store  # noqa: E402
from desktop.results_model import COLUMN_INDEX, PAGE_SIZE  # noqa: E402
from desktop.thumbnails import ThumbnailCache  # noqa: E402
from tests.desktop.results_data import ROWS, records, spec  # noqa: E402
from tests.desktop.test_results_model import model, store  # noqa: E402,F401
from tests.desktop.test_results_view import context, make_panel, panel, select_rows  # noqa: E402,F401
from tests.imagefiles import make_jpeg  # noqa: E402


def test_a_background_refresh_changes_nothing_until_its_rows_arrive_then_all_at_once(model, results_db, qtbot):
    path = results_db[0]
    first = next(model.row_at(n) for n in range(ROWS) if model.row_at(n)["status"] == "checked")
    with Store(path) as writer:
        writer.save_probes(records([spec(i) for i in range(ROWS, ROWS + 3)])[0])
        writer.save_outcomes([Outcome(first["sha256"], "other", first["path"], Status.FAILED, error="Gone.", attempts=1)])
    with qtbot.waitSignal(model.refreshed, timeout=10_000) as refreshed:
        assert model.refresh_in_background([0])
        assert not model.refresh_in_background([0])  # one at a time
        assert model.rowCount() == ROWS  # nothing read on this thread
    # Three new files, and a second provider's result for a checked image is a row more.
    assert model.rowCount() == ROWS + 4
    assert refreshed.args[1] == ["local", "other"]
    with Store.open_readonly(path) as fresh:
        assert model.loaded_row(0) == next(fresh.query_rows(order_by="folder", limit=1))


def test_a_background_refresh_overtaken_by_a_new_filter_is_dropped(model, results_db, qtbot):
    refreshed = []
    model.refreshed.connect(lambda *args: refreshed.append(args))
    assert model.refresh_in_background([0])
    model.set_filter(RowFilter(statuses=("failed",)))
    failed = model.rowCount()
    model.wait()
    QCoreApplication.processEvents()
    assert refreshed == [] and model.rowCount() == failed


def test_painting_a_page_reads_the_next_one_ahead(model, qtbot):
    model.row_at(0)  # page 0 in memory
    index = model.index(3, COLUMN_INDEX["file"])
    with qtbot.waitSignal(model.dataChanged, timeout=10_000) as changed:
        assert model.data(index) is not None
    assert changed.args[0].row() == PAGE_SIZE  # page 1 arrived without being painted
    assert model.loaded_row(PAGE_SIZE) is not None


def test_noted_outcomes_refresh_in_the_background_and_keep_the_selection(panel, results_db, qtbot):
    select_rows(panel, 3)
    chosen = panel.model.row_at(3)["path"]
    with Store(results_db[0]) as writer:  # two files that sort before it
        writer.save_probes([ProbedImage(f"/photos/f0/aaa_{n}.jpg", 100, 1, f"{n:x}" * 64, "JPEG", 400, 400) for n in (10, 11)])
    with qtbot.waitSignal(panel.model.refreshed, timeout=10_000):
        panel.note_outcomes(["x"])
    assert panel.model.rowCount() == ROWS + 2
    assert [r["path"] for r in panel.selected_rows()] == [chosen]
    assert panel.detail.row()["path"] == chosen


def test_thumbnails_wait_until_the_view_is_still(qapp, qtbot, tmp_path):
    cache = ThumbnailCache(tmp_path / "thumbs")
    photos = [make_jpeg(tmp_path / f"p{n}.jpg", 320, 240) for n in range(3)]
    for n, photo in enumerate(photos):
        assert cache.get(f"{n:064x}", str(photo)) is None
    assert cache.wait(0) and cache.pending() == 3  # asked for, none started yet
    with qtbot.waitSignals([cache.ready] * 3, timeout=10_000):
        pass
    assert all(cache.get(f"{n:064x}", str(p)) is not None for n, p in enumerate(photos))
    cache.shutdown()
