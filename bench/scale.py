"""Scale: how the table, filters, exports and re-scans cost as a catalogue grows to a million photos.

    python -m bench.scale [--quick] [--data DIR] [--sizes N,N,...] [--files N]

The data: seeded results databases of 10,000, 100,000 and 1,000,000 rows (``--quick`` stops
at 100,000), built in SQL (one ``INSERT … SELECT`` over a recursive count per table) as a
scan and earlier runs would leave them: about 60 % checked, 2 % rejected, 2 % failed, 5 %
invalid, the rest not checked yet, in folders of 500; and a tree of 250,000 small files
(``--quick``: 25,000) with the database a first scan of it left. Both are made once and
reused with ``--data DIR``.

Each cost at each size, against a bound measured in the same run:

- open: count the rows and read the first page, as the table does when it opens; bound:
  ``COUNT(*)`` of ``files`` and its first 500 rows by the folder index, in plain SQLite;
- page: pages as the table reads them, by key (the first, the last read backwards from the
  end, the next while scrolling), in the table's first order (by folder), by file name, and
  in the slowest sort; a jump into the middle (the scroll bar dragged there) is read by
  offset and reported apart; bound: 500 ``files`` rows read by primary key;
- sort: the first page after sorting on each of the table's columns, both ways (from a
  million rows on: :data:`LARGE_ORDERS`, one way; the worst is reported); bound: sorting every ``mtime_ns`` (no
  index) in plain SQLite;
- filter: count and first page of each quick filter (a status, a verdict, with faces; the
  worst); bound: counting one status through its index;
- search: count and first page of a text search in the paths; bound: ``instr`` over every path;
- desktop memory: the peak RSS of the main window opened on the database, scrolled to the
  bottom, sorted and filtered (a child process each); bound: the same at 100,000 rows;
- export: ``kling-preflight export`` of every row to CSV (a child process: time and peak
  RSS); bound: ``sqlite3 -csv`` on the same columns and join;
- re-scan of the unchanged tree (``scan --dry-run --quick``); bound: ``os.scandir`` + ``stat``
  of every file in it;
- the database's bytes per row.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.common import (
    QUICK_NOTE,
    ROOT,
    FileSpec,
    Figure,
    Stopwatch,
    arguments,
    encode,
    mib,
    print_machine,
    print_table,
    run_child,
    scan_only,
    with_comment,
)

SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
TREE_FILES = 250_000
QUICK_TREE_FILES = 25_000
FILES_PER_FOLDER = 500
PROVIDER = "local"
#: Bumped when the generated databases or tree change, so --data DIR is not reused wrongly.
SCALE_VERSION = 2

GOAL_OPEN = 1.0
GOAL_PAGE = 0.050
GOAL_SORT = 1.0
GOAL_FILTER = 0.300
GOAL_SEARCH = 0.300
GOAL_MEMORY = 1.2
GOAL_EXPORT = 1.5
GOAL_RESCAN = 1.3

QUICK_FILTERS = {
    "failed": {"statuses": ("failed",)},
    "not checked": {"statuses": ("pending",)},
    "avatar yes": {"verdict": "avatar"},
    "with a face": {"has_face": True},
}
#: The sorts measured from a million rows on (see measure()).
LARGE_ORDERS = ("folder", "file", "bytes", "status", "problems", "verdict_avatar", "face_count")
SEARCH = "img_00012"  # a file-name fragment, as a user types it: 100 files at every size


# --- the databases -----------------------------------------------------------------------------

# A pseudo-random number 0..999 per row and seed, in SQL (integer arithmetic stays below 2^63).
_ROLL = "((n * 2654435761 + :seed * 97) % 1000003) % 1000"
_SHA = "printf('%08x%056x', (n * 2246822519 + :seed) % 4294967296, n)"
_PATH = "printf('/photos/shoot_%04d/IMG_%07d.jpg', n / 500, n)"
# Shares per thousand: invalid < 50, rejected < 70, failed < 90, checked < 690, else pending.
_RAW = (
    '{"request_id": "req-%07d", "faces": [{"box": [120, 80, 260, 330], "score": 0.93}], '
    '"model": "yunet-2023mar", "input": {"width": 3024, "height": 4032}, "elapsed_ms": 41}'
)


def build_database(path: Path, rows: int, seed: int) -> None:
    """A results database of ``rows`` file rows as a scan and earlier runs leave it."""
    from core.store import Store

    counted = f"WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < {rows - 1})"
    with Store(path) as store:
        params = {"seed": seed}
        with store.writing():
            store.db.execute(
                f"""{counted}
                INSERT INTO images (sha256, bytes, format, width, height, problems, valid, first_seen_at)
                SELECT {_SHA}, 200000 + {_ROLL} * 3001, 'JPEG',
                       CASE WHEN {_ROLL} < 50 THEN 200 ELSE 3024 END, CASE WHEN {_ROLL} < 50 THEN 200 ELSE 4032 END,
                       CASE WHEN {_ROLL} < 50 THEN '[{{"code": "too_small", "message": "200 × 200 is smaller than 300 px.", "blocking": true}}]' ELSE '[]' END,
                       {_ROLL} >= 50, '2026-01-01T00:00:00.000+00:00'
                FROM c""",
                params,
            )
            store.db.execute(
                f"""{counted}
                INSERT INTO files (path, folder, file, sha256, size, mtime_ns, notes, scanned_at)
                SELECT {_PATH}, printf('/photos/shoot_%04d', n / 500), printf('IMG_%07d.jpg', n), {_SHA},
                       200000 + {_ROLL} * 3001, 1700000000000000000 + n, '[]', '2026-01-01T00:00:00.000+00:00'
                FROM c""",
                params,
            )
            store.db.execute(
                f"""{counted}, rolled(n, roll) AS (SELECT n, {_ROLL} FROM c)
                INSERT INTO results (sha256, provider, status, path, valid, problems, head_seg, face_seg, cloth_seg,
                    object_seg, face_count, faces, result_urls, verdict_avatar, verdict_tryon, verdict_asset, cost,
                    request_id, raw, error_code, error, attempts, duration_ms, checked_at)
                SELECT {_SHA}, '{PROVIDER}',
                       CASE WHEN roll < 50 THEN 'invalid' WHEN roll < 70 THEN 'rejected' WHEN roll < 90 THEN 'failed' ELSE 'checked' END,
                       {_PATH}, roll >= 50,
                       CASE WHEN roll < 50 THEN '[{{"code": "too_small", "message": "200 × 200 is smaller than 300 px.", "blocking": true}}]' ELSE '[]' END,
                       CASE WHEN roll >= 90 THEN roll % 3 > 0 END, CASE WHEN roll >= 90 THEN roll % 3 > 0 END,
                       NULL, CASE WHEN roll >= 90 THEN 1 END,
                       CASE WHEN roll >= 90 THEN roll % 3 END,
                       CASE WHEN roll >= 90 THEN CASE roll % 3 WHEN 0 THEN '[]'
                            WHEN 1 THEN '[{{"x": 120, "y": 80, "width": 140, "height": 250, "confidence": 0.93, "crops": []}}]'
                            ELSE '[{{"x": 120, "y": 80, "width": 140, "height": 250, "confidence": 0.93, "crops": []}}, {{"x": 420, "y": 90, "width": 130, "height": 240, "confidence": 0.88, "crops": []}}]' END END,
                       '{{}}',
                       CASE WHEN roll >= 90 AND roll % 3 > 0 THEN 'yes' WHEN roll < 90 AND roll >= 70 THEN 'unknown' ELSE 'no' END,
                       CASE WHEN roll >= 90 THEN 'unknown' WHEN roll >= 70 THEN 'unknown' ELSE 'no' END,
                       CASE WHEN roll >= 90 THEN 'yes' WHEN roll >= 70 THEN 'unknown' ELSE 'no' END,
                       NULL, CASE WHEN roll >= 50 THEN printf('req-%07d', n) END,
                       CASE WHEN roll >= 90 THEN printf('{_RAW}', n) END,
                       CASE WHEN roll < 50 THEN NULL WHEN roll < 70 THEN 'content_policy' WHEN roll < 90 THEN 'timeout' END,
                       CASE WHEN roll < 50 THEN NULL WHEN roll < 70 THEN 'The provider refused this image.'
                            WHEN roll < 90 THEN 'No answer within 30 s.' END,
                       CASE WHEN roll < 50 THEN 0 WHEN roll < 90 AND roll >= 70 THEN 3 ELSE 1 END,
                       CASE WHEN roll >= 50 THEN 30 + roll % 40 END,
                       printf('2026-01-02T00:%02d:%02d.000+00:00', (n / 60) % 60, n % 60)
                FROM rolled WHERE roll < 690""",
                params,
            )
        store.analyze()
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def database(data_dir: Path, rows: int, seed: int) -> tuple[Path, float | None]:
    """The database of ``rows`` rows in ``data_dir``, built unless an earlier run left it.

    :returns: its path and the seconds building took (None when reused).
    """
    path = data_dir / f"scale-{rows}-{seed}-v{SCALE_VERSION}.db"
    if path.exists():
        return path, None
    part = path.with_suffix(".part")
    for leftover in part.parent.glob(part.name + "*"):
        leftover.unlink()
    with Stopwatch() as sw:
        build_database(part, rows, seed)
    part.rename(path)
    return path, sw.wall


# --- the tree ----------------------------------------------------------------------------------


def tree(data_dir: Path, files: int, seed: int) -> tuple[Path, Path, float | None]:
    """A tree of ``files`` small JPEGs (each with its own comment, so its own content) in
    folders of 500, and the database a first ``scan --dry-run --quick`` of it left.

    :returns: the tree, that database, and the seconds making both took (None when reused).
    """
    folder = data_dir / f"scale-tree-{files}-{seed}-v{SCALE_VERSION}"
    scanned = folder.with_name(folder.name + ".db")
    if scanned.exists():
        return folder, scanned, None
    shutil.rmtree(folder, ignore_errors=True)
    with Stopwatch() as sw:
        picture = encode(FileSpec((), 64, 48, "JPEG", seed, quality=70, texture=seed))
        for i in range(files):
            sub = folder / f"day_{i // FILES_PER_FOLDER:04d}"
            if i % FILES_PER_FOLDER == 0:
                sub.mkdir(parents=True)
            name = f"IMG_{i:07d}.jpg"
            (sub / name).write_bytes(with_comment(picture, "JPEG", name.encode()))
        part = scanned.with_suffix(".part")
        scan_only([folder], part, deep=False)
        shutil.move(part, scanned)
    return folder, scanned, sw.wall


def scandir_and_stat(folder: Path) -> int:
    """The bound of a re-scan: every entry listed and every file stat'ed, nothing more."""
    count = 0
    stack = [str(folder)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    os.stat(entry.path)
                    count += 1
    return count


# --- the measurements -------------------------------------------------------------------------


def best(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of ``repeats`` timings of ``fn``: the least disturbed by other work."""
    times = []
    for _ in range(repeats):
        with Stopwatch() as sw:
            fn()
        times.append(sw.wall)
    return min(times)


def sqlite_floor(db: Path, sql: str, params: tuple = ()) -> Callable[[], object]:
    import sqlite3

    def run() -> object:
        conn = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    return run


def table_open(db: Path) -> Callable[[], object]:
    """What the table does on opening: a store, the row count, the first page."""
    from core.store import RowFilter, Store
    from desktop.results_model import COLUMN_INDEX, COLUMNS, PageQuery, page_rows

    def run() -> object:
        with Store.open_readonly(db) as store:
            store.count_rows()
            query = PageQuery(db, RowFilter(), COLUMNS[COLUMN_INDEX["folder"]].order_by, False, 0, 0, 0)
            return page_rows(store, query, 0)

    return run


def page_reader(db: Path, order_by: str, descending: bool, page_no: int, anchor=None) -> Callable[[], object]:
    """One page as the table's background thread reads it (its own read-only store):
    by ``anchor`` (a :class:`desktop.results_model.PageAnchor`), or by offset without one."""
    from core.store import RowFilter
    from desktop.results_model import PageQuery, read_page

    query = PageQuery(db, RowFilter(), order_by, descending, page_no, 0, 0, anchor)
    return lambda: read_page(query)


def page_reads(db: Path, rows: int, order_by: str, descending: bool, repeats: int) -> dict[str, float]:
    """The pages as the table reads them: the first, the last (backwards from the end), the
    next while scrolling from the middle (by the key of the page before), and a jump into the
    middle (the scroll bar dragged there: by offset)."""
    from desktop.results_model import PAGE_SIZE, PageAnchor

    last, middle = last_page(rows), last_page(rows) // 2
    before = page_reader(db, order_by, descending, middle - 1)()
    return {
        "first": best(repeats, page_reader(db, order_by, descending, 0)),
        "last": best(repeats, page_reader(db, order_by, descending, last, PageAnchor(backwards=True, rows=rows - last * PAGE_SIZE))),
        "next": best(repeats, page_reader(db, order_by, descending, middle, PageAnchor(after=before.last_key))),
        "jump": best(repeats, page_reader(db, order_by, descending, middle)),
    }


def filtered(db: Path, **fields) -> Callable[[], object]:
    """A filter as the table applies it: count the rows, then read the first page."""
    from core.store import RowFilter, Store
    from desktop.results_model import COLUMN_INDEX, COLUMNS, PageQuery, page_rows

    row_filter = RowFilter(**fields)

    def run() -> object:
        with Store.open_readonly(db) as store:
            store.count_rows(row_filter)
            query = PageQuery(db, row_filter, COLUMNS[COLUMN_INDEX["folder"]].order_by, False, 0, 0, 0)
            return page_rows(store, query, 0)

    return run


def sort_orders() -> list[str]:
    from desktop.results_model import COLUMNS

    return list(dict.fromkeys(column.order_by for column in COLUMNS))


def last_page(rows: int) -> int:
    from desktop.results_model import PAGE_SIZE

    return (rows - 1) // PAGE_SIZE


def export_columns_sql() -> str:
    """The bound's query: the export's columns from the same join, in the same order."""
    return """
    SELECT f.path, f.file, f.folder, f.size, i.format, i.width, i.height, r.provider, r.status, r.valid,
           r.problems, r.head_seg, r.face_seg, r.cloth_seg, r.object_seg, r.face_count, r.faces,
           r.verdict_avatar, r.verdict_tryon, r.verdict_asset, r.cost, r.request_id, r.attempts,
           r.duration_ms, r.error_code, r.error, r.checked_at, f.sha256
    FROM files AS f LEFT JOIN images AS i ON i.sha256 = f.sha256 LEFT JOIN results AS r ON r.sha256 = f.sha256
    ORDER BY f.path, r.provider
    """


def timed_child(argv: list[str], out: Path) -> tuple[float, int]:
    """Run ``argv`` with standard output to ``out``; :returns: seconds and its peak RSS."""
    with open(out, "wb") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=sink, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024


def export_figures(db: Path, work: Path) -> dict[str, float]:
    sqlite = shutil.which("sqlite3")
    if sqlite is None:
        raise SystemExit("The export bound needs the sqlite3 command line tool (Debian: apt-get install sqlite3).")
    ours = work / "export.csv"
    home = work / "home"
    env_home = {"KLING_PREFLIGHT_HOME": str(home)}
    os.environ.update(env_home)
    bound_s, _ = timed_child([sqlite, "-csv", "-header", f"file:{db}?mode=ro", export_columns_sql()], work / "bound.csv")
    export_s, export_rss = timed_child(
        [sys.executable, "-m", "core.cli", "export", "--db", str(db), "--out", str(ours)], work / "stdout.txt"
    )
    ours.unlink(missing_ok=True)
    (work / "bound.csv").unlink(missing_ok=True)
    return {"export_s": export_s, "export_bound_s": bound_s, "export_rss": export_rss}


def desktop_memory(db: Path) -> int:
    """Peak RSS of the main window on ``db`` (in a child process of its own)."""
    return run_child("bench.scale", ["--desktop-child", str(db)], timeout=1800)["peak_rss"]


def desktop_child(db: Path) -> None:
    """In a child process: open the main window on ``db``, go to the bottom, sort, filter."""
    from bench.common import report_to_parent
    from bench.gui import make_context, open_window, quiet_offscreen_warnings, visible_rows_loaded, wait_until

    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtWidgets import QApplication

    from core.store import RowFilter
    from desktop.results_model import COLUMN_INDEX

    app = QApplication.instance() or QApplication([])
    quiet_offscreen_warnings()
    home = Path(tempfile.mkdtemp(prefix="kp-bench-scale-home-"))
    try:
        settings = QSettings(str(home / "window.ini"), QSettings.Format.IniFormat)
        window, _ = open_window(app, make_context(home), settings, db)
        table = window.results.table
        model = window.results.model
        bar = table.verticalScrollBar()
        bar.setValue(bar.maximum())
        wait_until(app, lambda: visible_rows_loaded(table), "the bottom rows")
        model.sort(COLUMN_INDEX["status"], Qt.SortOrder.DescendingOrder)
        wait_until(app, lambda: visible_rows_loaded(table), "the sorted rows")
        model.set_filter(RowFilter(statuses=("checked",)))
        wait_until(app, lambda: visible_rows_loaded(table), "the filtered rows")
        model.wait()
        window.close()
        app.processEvents()
        report_to_parent({})
    finally:
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Row:
    """One size's figures: seconds (or bytes) and each one's bound."""

    rows: int
    built: float | None
    values: dict[str, float]


def measure(db: Path, rows: int, work: Path, repeats: int) -> dict[str, float]:
    from desktop.results_model import PAGE_SIZE

    v: dict[str, float] = {}
    v["bytes_per_row"] = db.stat().st_size / rows
    v["open_s"] = max(best(repeats, table_open(db)) for _ in range(1))
    v["open_bound_s"] = best(repeats, sqlite_floor(
        db, "SELECT (SELECT COUNT(*) FROM files), * FROM (SELECT * FROM files ORDER BY folder, path LIMIT ?)", (PAGE_SIZE,)))  # fmt: skip
    orders = sort_orders()
    sorts = {}
    # From a million rows on, each sort takes seconds: the indexed orders and the results'
    # columns that were slowest at 100,000, one way (both ways cost the same), keep the run
    # under an hour.
    if rows >= 1_000_000:
        orders = [order for order in orders if order in LARGE_ORDERS]
    for order in orders:
        for descending in (False, True) if rows < 1_000_000 else (True,):
            sorts[(order, descending)] = best(repeats, page_reader(db, order, descending, 0))
    (v_order, v_desc), v["sort_s"] = max(sorts.items(), key=lambda kv: kv[1])
    v["sort_worst"] = f"{v_order}{' desc' if v_desc else ''}"  # type: ignore[assignment]
    # mtime_ns has no index: SQLite reads and sorts every row of one table.
    v["sort_bound_s"] = best(repeats, sqlite_floor(db, "SELECT * FROM (SELECT path FROM files ORDER BY mtime_ns DESC LIMIT ?)", (PAGE_SIZE,)))
    pages = {}
    for order, descending in [("folder", False), ("file", True), (v_order, v_desc)]:
        for which, seconds in page_reads(db, rows, order, descending, repeats).items():
            pages[(order, descending, which)] = seconds
    by_key = {k: t for k, t in pages.items() if k[2] != "jump"}
    worst_page, v["page_s"] = max(by_key.items(), key=lambda kv: kv[1])
    v["page_worst"] = f"{worst_page[2]} page by {worst_page[0]}{' desc' if worst_page[1] else ''}"  # type: ignore[assignment]
    v["page_table_order_s"] = max(t for k, t in by_key.items() if k[0] == "folder")
    jumps = {k: t for k, t in pages.items() if k[2] == "jump"}
    worst_jump, v["jump_s"] = max(jumps.items(), key=lambda kv: kv[1])
    v["jump_worst"] = f"by {worst_jump[0]}{' desc' if worst_jump[1] else ''}"  # type: ignore[assignment]
    middle = f"/photos/shoot_{rows // 2 // FILES_PER_FOLDER:04d}/"
    v["page_bound_s"] = best(repeats, sqlite_floor(db, "SELECT * FROM files WHERE path >= ? ORDER BY path LIMIT ?", (middle, PAGE_SIZE)))
    filters = {name: best(repeats, filtered(db, **fields)) for name, fields in QUICK_FILTERS.items()}
    worst_filter, v["filter_s"] = max(filters.items(), key=lambda kv: kv[1])
    v["filter_worst"] = worst_filter  # type: ignore[assignment]
    v["filter_bound_s"] = best(repeats, sqlite_floor(db, "SELECT COUNT(*) FROM results WHERE status = 'failed'"))
    v["search_s"] = best(repeats, filtered(db, text=SEARCH))
    v["search_bound_s"] = best(repeats, sqlite_floor(db, "SELECT COUNT(*) FROM files WHERE instr(lower(path), ?) > 0", (SEARCH,)))
    v.update(export_figures(db, work))
    v["memory"] = desktop_memory(db)
    return v


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def growth_table(results: list[Row]) -> list[tuple[str, ...]]:
    """Per figure: its value at each size with its ratio to that size's bound."""
    lines = []
    spec = [
        ("open the table + first rows", "open_s", "open_bound_s", ms),
        ("read a page by key, table's order (first/next/last)", "page_table_order_s", "page_bound_s", ms),
        ("read a page by key, worst order (first/next/last)", "page_s", "page_bound_s", ms),
        ("jump into the middle (offset), worst order", "jump_s", "page_bound_s", ms),
        ("sort, first page (worst column)", "sort_s", "sort_bound_s", ms),
        ("quick filter, count + first page (worst)", "filter_s", "filter_bound_s", ms),
        ("text search, count + first page", "search_s", "search_bound_s", ms),
        ("export to CSV", "export_s", "export_bound_s", ms),
    ]
    for name, key, bound, fmt in spec:
        cells = [f"{fmt(r.values[key])} ({r.values[key] / r.values[bound]:.1f}× bound {fmt(r.values[bound])})" for r in results]
        lines.append((name, *cells))
    lines.append(("export peak memory", *(mib(r.values["export_rss"]) for r in results)))
    lines.append(("desktop peak memory", *(mib(r.values["memory"]) for r in results)))
    lines.append(("database bytes per row", *(f"{r.values['bytes_per_row']:,.0f} B" for r in results)))
    return lines


def print_growth(results: list[Row], tree_line: tuple[str, str] | None) -> None:
    header = ("figure", *(f"{r.rows:,} rows" for r in results))
    lines = growth_table(results)
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]
    print()
    print("## How each cost grows")
    print()
    for line in [header, tuple("-" * w for w in widths), *lines]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths)) + " |")
    if tree_line:
        print(f"- {tree_line[0]}: {tree_line[1]}")
    sys.stdout.flush()


def goals(results: list[Row], rescan: dict[str, float] | None) -> list[Figure]:
    top = results[-1]
    v = top.values
    at = f"at {top.rows:,} rows"
    def under(name: str, key: str, bound: str, goal: float) -> Figure:
        """A time with a goal of less than ``goal`` seconds, against its bound's label."""
        seconds = v[key]
        goal_text = f"< {goal:.0f} s" if goal >= 1 else f"< {goal * 1000:.0f} ms"
        return Figure(name, ms(seconds), bound, f"{seconds / goal:.2f}× the goal", goal_text, seconds < goal)

    by_key = f"500 rows by key {ms(v['page_bound_s'])}"
    figures = [
        under(f"open + first rows {at}", "open_s", f"SQLite floor {ms(v['open_bound_s'])}", GOAL_OPEN),
        under(f"any page by key, table's order {at}", "page_table_order_s", by_key, GOAL_PAGE),
        under(f"any page by key {at} (worst: {v['page_worst']})", "page_s", by_key, GOAL_PAGE),
        under(f"jump into the middle {at} (worst: {v['jump_worst']})", "jump_s", by_key, GOAL_PAGE),
        under(f"sort {at} (worst: {v['sort_worst']})", "sort_s", f"SQLite sort {ms(v['sort_bound_s'])}", GOAL_SORT),
        under(f"quick filter {at} (worst: {v['filter_worst']})", "filter_s", f"indexed count {ms(v['filter_bound_s'])}", GOAL_FILTER),
        under(f"text search {at}", "search_s", f"instr over paths {ms(v['search_bound_s'])}", GOAL_SEARCH),
    ]
    ratio = v["export_s"] / v["export_bound_s"]
    figures.append(Figure(f"export to CSV {at}", ms(v["export_s"]), f"sqlite3 -csv {ms(v['export_bound_s'])}",
                          f"{ratio:.2f}× the bound", f"≤ {GOAL_EXPORT}×", ratio <= GOAL_EXPORT))  # fmt: skip
    smallest = results[0].values["export_rss"]
    growth = v["export_rss"] / smallest
    figures.append(Figure(f"export peak memory {at}", mib(v["export_rss"]), f"{mib(smallest)} at {results[0].rows:,}",
                          f"{growth:.2f}× (streamed: flat)", "≤ 1.2×", growth <= 1.2))  # fmt: skip
    by_rows = {r.rows: r for r in results}
    if 100_000 in by_rows and top.rows > 100_000:
        base = by_rows[100_000].values["memory"]
        growth = v["memory"] / base
        figures.append(Figure(f"desktop peak memory {at}", mib(v["memory"]), f"{mib(base)} at 100,000",
                              f"{growth:.2f}×", f"≤ {GOAL_MEMORY}×", growth <= GOAL_MEMORY))  # fmt: skip
    else:
        base = results[0].values["memory"]
        growth = v["memory"] / base
        figures.append(Figure(f"desktop peak memory {at}", mib(v["memory"]), f"{mib(base)} at {results[0].rows:,}",
                              f"{growth:.2f}×", f"≤ {GOAL_MEMORY}× (stated 1M vs 100k)", growth <= GOAL_MEMORY))  # fmt: skip
    if rescan is not None:
        ratio = rescan["rescan_s"] / rescan["bound_s"]
        figures.append(Figure(f"re-scan of {rescan['files']:,.0f} unchanged files", ms(rescan["rescan_s"]),
                              f"scandir + stat {ms(rescan['bound_s'])}", f"{ratio:.2f}× the bound",
                              f"≤ {GOAL_RESCAN}×", ratio <= GOAL_RESCAN))  # fmt: skip
    figures.append(Figure(f"database size {at}", f"{v['bytes_per_row']:,.0f} B a row",
                          f"{top.values['bytes_per_row'] * top.rows / 2**20:,.0f} MiB in all"))  # fmt: skip
    return figures


def measure_rescan(data_dir: Path, files: int, seed: int, work: Path, repeats: int) -> dict[str, float]:
    folder, scanned, made = tree(data_dir, files, seed)
    if made is not None:
        print(f"Tree: {files:,} files and their first scan made in {made:.0f} s", flush=True)
    scandir_and_stat(folder)  # warm the cache, so both start equal
    bound = best(repeats, lambda: scandir_and_stat(folder))
    times = []
    for i in range(repeats):
        db = work / f"rescan{i}.db"
        shutil.copyfile(scanned, db)
        with Stopwatch() as sw:
            plan = scan_only([folder], db, deep=False)
        times.append(sw.wall)
        if plan is None or plan.files_found != files:
            raise SystemExit(f"The re-scan found {getattr(plan, 'files_found', 0)} files, not {files}.")
        db.unlink()
    return {"files": files, "bound_s": bound, "rescan_s": min(times)}


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="rows of each database, comma-separated (default 10000,100000,1000000)")
    parser.add_argument("--files", type=int, help=f"files in the re-scanned tree (default {TREE_FILES:,}, --quick {QUICK_TREE_FILES:,}; 0 skips it)")
    parser.add_argument("--desktop-child", type=Path, help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.desktop_child:
        desktop_child(args.desktop_child)
        return 0
    # --sizes "" measures the re-scan alone.
    sizes = tuple(int(s) for s in args.sizes.split(",") if s) if args.sizes is not None else (QUICK_SIZES if args.quick else SIZES)
    files = args.files if args.files is not None else (QUICK_TREE_FILES if args.quick else TREE_FILES)
    repeats = 2 if args.quick else 3
    print_machine()
    temp = Path(tempfile.mkdtemp(prefix="kp-bench-scale-"))
    data_dir = args.data or temp
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        results = []
        for rows in sizes:
            db, built = database(data_dir, rows, args.seed)
            made = "reused" if built is None else f"built in {built:.1f} s"
            print(f"Database: {rows:,} rows, {db.stat().st_size / 2**20:,.0f} MiB ({made})", flush=True)
            work = temp / f"work-{rows}"
            work.mkdir()
            # A million rows: each figure takes seconds, so the neighbours' noise weighs less.
            results.append(Row(rows, built, measure(db, rows, work, repeats if rows < 1_000_000 else 1)))
            print(json.dumps({"rows": rows, **results[-1].values}), flush=True)
        rescan = measure_rescan(data_dir, files, args.seed, temp, repeats) if files else None
        tree_line = None
        if rescan is not None:
            tree_line = (f"re-scan of {files:,} unchanged files",
                         f"{ms(rescan['rescan_s'])} ({rescan['rescan_s'] / rescan['bound_s']:.2f}× scandir + stat {ms(rescan['bound_s'])})")  # fmt: skip
        if results:
            print_growth(results, tree_line)
            print_table("Goals", goals(results, rescan), [QUICK_NOTE] if args.quick else [])
        elif tree_line:
            print(f"- {tree_line[0]}: {tree_line[1]}")
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
