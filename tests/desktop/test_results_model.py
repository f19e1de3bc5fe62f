import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QCoreApplication, QModelIndex, Qt  # noqa: E402
from PySide6.QtGui import QIcon  # noqa: E402

from core.models import CheckResult, Face, Outcome, ProbedImage, Problem, Status  # noqa: E402
from core.store import RowFilter, Store  # noqa: E402
from core.worklist import Worklist  # noqa: E402
from desktop.results_model import (  # noqa: E402
    COLUMN_INDEX,
    COLUMNS,
    PAGE_SIZE,
    ResultsModel,
    format_bytes,
    format_dimensions,
)
from desktop.thumbnails import ThumbnailCache  # noqa: E402
from tests.imagefiles import make_jpeg  # noqa: E402

from tests.desktop.results_data import MISMATCH, ROWS, build_results_db, records, spec  # noqa: E402


@pytest.fixture(scope="module")
def tester_db(tmp_path_factory):
    """The model testers walk every cell after each change, so fewer rows than elsewhere;
    paging has its own tests."""
    path = tmp_path_factory.mktemp("tester") / "results.db"
    build_results_db(path, n=150)
    return path


@pytest.fixture
def tester_model(qapp, tester_db, tmp_path):
    path = tmp_path / "results.db"
    shutil.copyfile(tester_db, path)
    with Store.open_readonly(path) as store:
        m = ResultsModel()
        m.set_store(store)
        yield m, path
        m.set_store(None)


@pytest.fixture
def store(results_db):
    with Store.open_readonly(results_db[0]) as s:
        yield s


@pytest.fixture
def model(qapp, store):
    m = ResultsModel()
    m.set_store(store)
    yield m
    m.set_store(None)


def column_text(model, row, key, role=Qt.ItemDataRole.DisplayRole):
    model.row_at(row)  # reads the page now, so data() has it
    return model.data(model.index(row, COLUMN_INDEX[key]), role)


# --- the model contract ----------------------------------------------------------------------


@pytest.mark.qt_log_level_fail("WARNING")
def settle(model):
    """Let the page reads the checks asked for arrive (and be checked in turn)."""
    model.wait()
    QCoreApplication.processEvents()


def test_model_passes_qt_model_tester_through_sort_filter_and_refresh(tester_model, qtmodeltester):
    model, path = tester_model
    qtmodeltester.check(model)  # Qt's C++ tester: it stays attached and checks every signal
    settle(model)
    model.sort(COLUMN_INDEX["size"], Qt.SortOrder.DescendingOrder)
    model.set_filter(RowFilter(statuses=("checked",)))
    settle(model)
    model.set_filter(RowFilter(text="f3/"))
    model.set_filter(RowFilter())
    with Store(path) as writer:  # rows appear and disappear while the model is open
        writer.save_probes(records([spec(i) for i in range(150, 190)])[0])
        model.refresh()
        settle(model)
        Worklist(writer).prune_unseen("/photos/f1")  # a scan that found none of f1
        model.refresh()
        settle(model)


@pytest.mark.parametrize("change", ["none", "sort", "filter"])
def test_model_passes_python_model_tester(tester_model, qtmodeltester, change):
    model, _ = tester_model
    if change == "sort":
        model.sort(COLUMN_INDEX["status"], Qt.SortOrder.DescendingOrder)
    elif change == "filter":
        model.set_filter(RowFilter(has_face=True))
    qtmodeltester.check(model, force_py=True)
    settle(model)


def test_row_count_is_the_store_count_and_children_have_none(model, results_db):
    assert model.rowCount() == ROWS
    assert model.columnCount() == len(COLUMNS)
    assert model.rowCount(model.index(0, 0)) == 0
    assert model.row_at(ROWS) is None and model.row_at(-1) is None


def test_paging_returns_the_rows_of_the_whole_query_in_order(model, store):
    everything = list(store.query_rows(order_by="folder"))  # the default sort, unpaged
    for n in (0, 1, PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE + 1, ROWS - 1):
        assert model.row_at(n) == everything[n]
    assert [model.row_at(n)["path"] for n in range(ROWS)] == [row["path"] for row in everything]


@pytest.mark.parametrize(
    "key, value",
    [
        ("size", lambda r: r["bytes"]),
        ("file", lambda r: r["file"]),
        ("status", lambda r: r["status"]),
        ("faces", lambda r: (r["face_count"] is not None, r["face_count"] or 0)),
    ],
)
def test_sort_orders_every_row_and_pages_agree(model, store, key, value):
    model.sort(COLUMN_INDEX[key], Qt.SortOrder.DescendingOrder)
    expected = list(store.query_rows(order_by=COLUMNS[COLUMN_INDEX[key]].order_by, descending=True))
    for n in (0, PAGE_SIZE - 1, PAGE_SIZE, ROWS - 1):
        assert model.row_at(n) == expected[n]
    values = [value(model.row_at(n)) for n in range(ROWS)]
    assert values == sorted(values, reverse=True)
    model.sort(COLUMN_INDEX[key], Qt.SortOrder.AscendingOrder)
    assert value(model.row_at(0)) == values[-1]
    assert value(model.row_at(ROWS - 1)) == values[0]
    assert model.sort_order() == (COLUMN_INDEX[key], Qt.SortOrder.AscendingOrder)


def test_filter_counts_and_rows_match_the_records(model, results_db):
    specs = results_db[1]
    model.set_filter(RowFilter(statuses=("failed", "rejected")))
    expected = {s.path for s in specs if s.status in ("failed", "rejected")}
    assert model.rowCount() == len(expected)
    assert {model.row_at(n)["path"] for n in range(model.rowCount())} == expected
    model.set_filter(RowFilter(text="IMG_099"))  # case-insensitive part of the path
    assert {model.row_at(n)["path"] for n in range(model.rowCount())} == {s.path for s in specs if "img_099" in s.path}


def test_painting_never_reads_a_page_it_asks_for_it_in_the_background(model, store, qtbot):
    index = model.index(PAGE_SIZE + 7, COLUMN_INDEX["file"])
    with qtbot.waitSignal(model.dataChanged, timeout=10_000) as changed:
        assert model.data(index) is None  # not in memory yet: no text, no waiting
    first, last = changed.args[0], changed.args[1]
    assert (first.row(), last.row()) == (PAGE_SIZE, ROWS - 1)  # the whole page arrived
    expected = list(store.query_rows(order_by="folder", limit=1, offset=PAGE_SIZE + 7))[0]
    assert model.data(index) == expected["file"]


def test_after_a_refresh_old_rows_stay_on_screen_until_fresh_ones_arrive(model, results_db, qtbot):
    row = next(n for n in range(ROWS) if model.row_at(n)["status"] == "checked")
    index = model.index(row, COLUMN_INDEX["status"])
    target = model.row_at(row)
    with Store(results_db[0]) as writer:
        writer.save_outcomes([Outcome(target["sha256"], "local", target["path"], Status.FAILED, error="Gone.")])
    def fresh_page_arrived(first, last, *roles):
        # refresh() itself announces every row; the fresh page is a narrower range.
        return first.row() <= row <= last.row() and last.row() - first.row() < ROWS - 1

    with qtbot.waitSignal(model.dataChanged, timeout=10_000, check_params_cb=fresh_page_arrived):
        model.refresh()
        assert model.data(index) == "Checked"  # the stale copy, no blank row, no waiting
    assert model.data(index) == "Failed"


def test_refresh_inserts_new_rows_with_signals_and_forgets_stale_pages(model, results_db, qtbot):
    path = results_db[0]
    before = model.row_at(0)
    with Store(path) as writer:
        writer.save_probes(records([spec(i) for i in range(ROWS, ROWS + 3)])[0])
        first = spec(1)  # checked: becomes failed
        writer.save_outcomes([Outcome(first.sha, "local", first.path, Status.FAILED, error="Gone.", attempts=1)])
    assert model.rowCount() == ROWS  # nothing happens until asked
    with qtbot.waitSignal(model.rowsInserted) as inserted:
        model.refresh()
    assert inserted.args[1:] == [ROWS, ROWS + 2]
    assert model.rowCount() == ROWS + 3
    row = next(model.row_at(n) for n in range(model.rowCount()) if model.row_at(n)["path"] == first.path)
    assert row["status"] == "failed" and row["error"] == "Gone."
    assert before["path"] in {model.row_at(n)["path"] for n in range(model.rowCount())}


# --- what the cells say ---------------------------------------------------------------------


def test_cells_show_readable_values(tmp_path, qapp):
    path = tmp_path / "one.db"
    portrait = ProbedImage("/p/a_obama.jpg", 273 * 1024 + 100, 1, "a" * 64, "JPEG", 910, 1137, (MISMATCH,))
    panorama = ProbedImage("/p/b_wide.jpg", 5000, 1, "b" * 64, "JPEG", 2048, 600, (MISMATCH,))
    result = CheckResult(head_seg=True, face_seg=True, cloth_seg=False, faces=(Face(1, 2, 3, 4, 0.9),))
    too_wide = Problem("too_wide", "2,048 × 600 is wider than 2.5:1.")
    with Store(path) as writer:
        writer.save_probes([portrait, panorama])
        writer.save_outcomes(
            [
                Outcome("a" * 64, "local", portrait.path, Status.CHECKED, (MISMATCH,), result),
                Outcome("b" * 64, "local", panorama.path, Status.INVALID, (MISMATCH, too_wide)),
            ]
        )
    with Store.open_readonly(path) as store:
        model = ResultsModel()
        model.set_store(store)
        assert column_text(model, 0, "file") == "a_obama.jpg"
        assert column_text(model, 0, "dimensions") == "910 × 1137"
        assert column_text(model, 0, "size") == "273 KB"
        assert column_text(model, 0, "status") == "Checked"
        assert isinstance(column_text(model, 0, "status", Qt.ItemDataRole.DecorationRole), QIcon)
        assert column_text(model, 0, "faces") == "1"
        flags = [column_text(model, 0, k) for k in ("head_seg", "face_seg", "cloth_seg", "object_seg")]
        assert flags == ["✓", "✓", "✗", "?"]
        assert [column_text(model, 0, f"verdict_{w}") for w in ("avatar", "tryon", "asset")] == ["✓", "✗", "?"]
        good, bad = (column_text(model, 0, k, Qt.ItemDataRole.ForegroundRole) for k in ("head_seg", "cloth_seg"))
        assert good != bad
        assert column_text(model, 0, "file", Qt.ItemDataRole.ToolTipRole) == "/p/a_obama.jpg"
        # Blocking problems first; the tooltip lists every one.
        assert column_text(model, 1, "status") == "Invalid"
        assert column_text(model, 1, "problems").startswith("2,048 × 600 is wider")
        tooltip = column_text(model, 1, "problems", Qt.ItemDataRole.ToolTipRole)
        assert tooltip.splitlines() == ["• 2,048 × 600 is wider than 2.5:1.", "• img.jpg holds a PNG image."]
        assert [column_text(model, 1, f"verdict_{w}") for w in ("avatar", "tryon", "asset")] == ["✗", "✗", "✗"]
        model.set_store(None)


def test_headers_have_titles_and_tooltips(model):
    titles = [model.headerData(n, Qt.Orientation.Horizontal) for n in range(model.columnCount())]
    assert titles[COLUMN_INDEX["file"]] == "File" and titles[COLUMN_INDEX["cloth_seg"]] == "Clothing"
    assert all(model.headerData(n, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole) for n in range(len(COLUMNS)))
    assert model.headerData(0, Qt.Orientation.Vertical) is None


@pytest.mark.parametrize(
    "size, text",
    [(0, "0 B"), (1023, "1023 B"), (1024, "1 KB"), (279_655, "273 KB"), (10 * 1024 * 1024, "10.0 MB"), (None, "")],
)
def test_format_bytes(size, text):
    assert format_bytes(size) == text


def test_format_dimensions():
    assert format_dimensions(910, 1137) == "910 × 1137"
    assert format_dimensions(None, 5) == ""


def test_a_database_that_fails_to_read_reports_a_sentence(qapp, tmp_path, qtbot):
    path = tmp_path / "results.db"
    build_results_db(path, n=10)
    store = Store.open_readonly(path)
    model = ResultsModel()
    model.set_store(store)
    store.close()  # reads now fail
    with qtbot.waitSignal(model.read_failed) as failed:
        model.set_filter(RowFilter(has_face=True))
    assert failed.args[0].startswith("The results could not be read")
    assert model.rowCount() == 0
    model.set_store(None)


# --- thumbnails in the table ----------------------------------------------------------------


def test_thumbnail_cell_shows_a_placeholder_then_the_thumbnail_and_only_that_cell_changes(qapp, qtbot, tmp_path):
    photo = make_jpeg(tmp_path / "photo.jpg", 400, 300)
    probe = ProbedImage(str(photo), photo.stat().st_size, 1, "b" * 64, "JPEG", 400, 300)
    with Store(tmp_path / "results.db") as writer:
        writer.save_probes([probe])
    cache = ThumbnailCache(tmp_path / "thumbs")
    with Store.open_readonly(tmp_path / "results.db") as store:
        model = ResultsModel(cache)
        model.set_store(store)
        model.row_at(0)
        index = model.index(0, COLUMN_INDEX["thumbnail"])
        with qtbot.waitSignal(model.dataChanged, timeout=10_000) as changed:
            first = model.data(index, Qt.ItemDataRole.DecorationRole)
        assert first.cacheKey() == cache.placeholder().cacheKey()
        top_left, bottom_right = changed.args[0], changed.args[1]
        assert (top_left.row(), top_left.column()) == (bottom_right.row(), bottom_right.column()) == (0, index.column())
        assert changed.args[2] == [Qt.ItemDataRole.DecorationRole]
        second = model.data(index, Qt.ItemDataRole.DecorationRole)
        assert second.cacheKey() not in (cache.placeholder().cacheKey(), cache.broken().cacheKey())
        model.set_store(None)
    cache.shutdown()


def test_index_of_invalid_parent_is_ignored(model):
    assert not model.index(0, 0, model.index(0, 0)).isValid()
    assert model.data(QModelIndex()) is None
