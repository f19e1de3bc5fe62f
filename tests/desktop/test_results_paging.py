"""The table finds pages by key, not by counting off every row before them (OFFSET)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from core.store import Store  # noqa: E402
from desktop.results_model import COLUMN_INDEX, PAGE_SIZE, ResultsModel  # noqa: E402
from tests.desktop.results_data import ROWS  # noqa: E402


@pytest.fixture
def traced(qapp, results_db):
    """A model on the 1,000-row database, and the row queries its store runs (with their values)."""
    with Store.open_readonly(results_db[0]) as store:
        statements: list[str] = []
        store.db.conn.set_trace_callback(statements.append)
        model = ResultsModel()
        model.set_store(store)
        yield model, store, statements
        model.set_store(None)


def key_queries(statements):
    return [s for s in statements if "result_rowid, " in s and " LIMIT " in s]


@pytest.mark.parametrize("column", ["folder", "status", "faces"])
def test_pages_next_to_one_in_memory_and_the_last_page_are_found_by_key(traced, column):
    model, store, statements = traced
    model.sort(COLUMN_INDEX[column], Qt.SortOrder.DescendingOrder)
    expected = list(store.query_rows(order_by=_order_by(column), descending=True))
    assert ROWS // PAGE_SIZE == 2  # two pages: the last, then the one before it
    statements.clear()
    assert model.row_at(ROWS - 1) == expected[-1]  # the last page, backwards from the end
    assert model.row_at(0) == expected[0]  # before the first row of the last page
    reads = key_queries(statements)
    assert len(reads) == 2
    assert all(read.rstrip().endswith("OFFSET 0") for read in reads)  # nothing skipped
    # A descending sort read backwards: ascending, from the end, then before a key.
    assert "WHERE (k0, " not in reads[0] and "DESC" not in reads[0][reads[0].rindex("ORDER BY") :]
    assert "WHERE (k0, " in reads[1] and "DESC" not in reads[1][reads[1].rindex("ORDER BY") :]
    statements.clear()
    model.sort(COLUMN_INDEX[column], Qt.SortOrder.AscendingOrder)
    model.row_at(0)
    model.row_at(PAGE_SIZE)  # after the last row of the first page
    reads = key_queries(statements)
    assert "WHERE (k0, " in reads[-1] and reads[-1].rstrip().endswith("OFFSET 0")
    # Every row, through pages found by key, is the unpaged query's.
    assert [model.row_at(n) for n in range(ROWS)] == list(store.query_rows(order_by=_order_by(column)))


def _order_by(column):
    from desktop.results_model import COLUMNS

    return COLUMNS[COLUMN_INDEX[column]].order_by
