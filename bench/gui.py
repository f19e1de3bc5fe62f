"""Desktop responsiveness: the main window over a results database of 100,000 rows (offscreen).

    python -m bench.gui [--quick] [--rows N] [--data DIR] [--stream-seconds S]

The data: a results database of ``--rows`` files as a scan and earlier runs leave it (about
60 % checked, 4 % rejected or failed, 5 % invalid, the rest not checked yet), in folders of
500. Every row is a real file: a symbolic link to one of the sample photos, under a content
hash of its own, so each row needs its own thumbnail, as in a library opened for the first
time. Measured in the same run, each against a baseline or a bound:

- open: a new main window on the database, until the first rows are on screen (the worst of
  three opens), against counting the rows and reading the first page straight from SQLite,
  and against the 1 s goal;
- scroll: the table's scroll bar moved from top to bottom a screenful at a time, each step
  waiting until every visible row is loaded and painted; against reading every page straight
  from SQLite. The worst single step is reported too; then the same for the thumbnail grid,
  against SQLite and the table;
- stall while results stream in: a thread writes results to the same database at 1,000 a
  second (small batches, as the runner does) and reports them through the app's own
  :class:`~desktop.worker.RunSession` (its mailbox is relayed at most ten times a second) to
  the main window; a 10 ms timer on the UI thread records how late it fires. Against the
  same timer with nothing streaming (the event loop's own noise) and the 50 ms goal.

The stream's writer stands in for the runner only as a source of results: a paced generator
of :class:`~core.events.ImageFinished` events, iterated in the session's thread like the
runner's. Everything downstream of it is the app's code.
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before anything imports Qt

import hashlib  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Iterator, Sequence  # noqa: E402

from bench.common import (  # noqa: E402
    SAMPLES,
    Figure,
    Stopwatch,
    arguments,
    goal_at_most,
    prepared,
    print_machine,
    print_table,
)
from core.events import Finished, ImageFinished, Plan, Progress, Summary  # noqa: E402
from core.models import CheckResult, Constraints, Face, Outcome, ProbedImage, ScannedFile, Status  # noqa: E402
from core.probe import probe_file  # noqa: E402
from core.store import RowFilter, Store  # noqa: E402
from core.validate import is_valid, validate  # noqa: E402

ROWS = 100_000
QUICK_ROWS = 10_000
STREAM_SECONDS = 10.0
QUICK_STREAM_SECONDS = 3.0
FILES_PER_FOLDER = 500
#: Rows written per transaction while building the database.
BUILD_BATCH = 5_000
#: Results a second while streaming, and how many each write carries.
STREAM_RATE = 1_000
STREAM_BATCH = 10
#: The probe timer's interval.
TICK_MS = 10
OPENS = 3
WINDOW_SIZE = (1280, 800)
#: How long any single wait may take before the benchmark gives up on it.
WAIT_LIMIT = 120.0

GOAL_OPEN = 1.0
GOAL_STALL = 0.050

PROVIDER = "local"
#: The sample photos rows point at, with the faces each shows; the last ones break the rules.
GOOD_SAMPLES = {
    "sk_astronaut.png": 1, "sk_camera.png": 1, "mpl_grace_hopper.jpg": 1, "fr_obama.jpg": 1,
    "fr_biden.jpg": 1, "sk_coffee.png": 0, "sk_chelsea.png": 0, "sk_rocket.png": 0, "china.jpg": 0,
    "flower.jpg": 0,
}  # fmt: skip
BAD_SAMPLES = ("astronaut_thumbnail.jpg", "temple_panorama.jpg", "flower.gif", "hopper_truncated.jpg")
#: Shares of the rows, by what is known about them.
INVALID_SHARE, REJECTED_SHARE, FAILED_SHARE, PENDING_SHARE = 0.05, 0.02, 0.02, 0.31


# --- the data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Library:
    """A built database and the rows the stream will write results for, in table order."""

    database: Path
    photos: Path
    rows: int
    #: (sha256, path) of each row not checked yet: plain tuples of text, which the garbage
    #: collector stops walking, so the benchmark's own data does not lengthen its pauses.
    pending: tuple[tuple[str, str], ...]


def fake_sha(seed: int, n: int) -> str:
    """A content hash of this row's own (the files are links to a few samples)."""
    return hashlib.sha256(f"{seed}:{n}".encode()).hexdigest()


def sample_probes() -> dict[str, ProbedImage]:
    """Each sample photo probed as a scan would (deep check included)."""
    probes = {}
    for name in (*GOOD_SAMPLES, *BAD_SAMPLES):
        path = SAMPLES / name
        stat = path.stat()
        probe = probe_file(ScannedFile(str(path), stat.st_size, stat.st_mtime_ns))
        assert probe is not None, f"{name} is not an image"
        probes[name] = probe
    return probes


def checked_outcome(sha256: str, path: str, faces: int) -> Outcome:
    """What the offline provider says about a valid photo with ``faces`` faces."""
    found = tuple(Face(40 * n, 30, 120, 150, 0.93) for n in range(faces))
    result = CheckResult(head_seg=faces > 0, face_seg=faces > 0, cloth_seg=faces > 0, object_seg=True, faces=found)
    return Outcome(sha256, PROVIDER, path, Status.CHECKED, result=result, attempts=1, duration_ms=35)


def make_library(folder: Path, rows: int, seed: int) -> None:
    """Write ``rows`` links to sample photos under ``folder/photos`` and the results database
    ``folder/results.db`` that a scan and earlier runs would have left."""
    rng = random.Random(seed)
    samples = sample_probes()
    constraints = Constraints()
    store = Store(folder / "results.db")
    try:
        probes: list[ProbedImage] = []
        outcomes: list[Outcome] = []
        for n in range(rows):
            roll = rng.random()
            name = rng.choice(BAD_SAMPLES) if roll < INVALID_SHARE else rng.choice(list(GOOD_SAMPLES))
            sample = samples[name]
            link = folder / "photos" / f"shoot_{n // FILES_PER_FOLDER:03d}" / f"IMG_{n:06d}{Path(name).suffix}"
            if n % FILES_PER_FOLDER == 0:
                link.parent.mkdir(parents=True)
            link.symlink_to(SAMPLES / name)
            probe = replace(sample, path=str(link), sha256=fake_sha(seed, n))
            probes.append(probe)
            problems = validate(probe, constraints)
            if not is_valid(problems):
                outcomes.append(Outcome(probe.sha256, PROVIDER, probe.path, Status.INVALID, problems=problems))
            elif roll < INVALID_SHARE + REJECTED_SHARE:
                outcomes.append(
                    Outcome(probe.sha256, PROVIDER, probe.path, Status.REJECTED, error_code="content_policy",
                            error="The provider refused this image.", attempts=1)
                )  # fmt: skip
            elif roll < INVALID_SHARE + REJECTED_SHARE + FAILED_SHARE:
                outcomes.append(
                    Outcome(probe.sha256, PROVIDER, probe.path, Status.FAILED, error_code="timeout",
                            error="No answer within 30 s.", attempts=3)
                )  # fmt: skip
            elif roll < 1 - PENDING_SHARE:
                outcomes.append(checked_outcome(probe.sha256, probe.path, GOOD_SAMPLES[name]))
            if len(probes) == BUILD_BATCH:
                store.save_probes(probes)
                probes = []
            if len(outcomes) == BUILD_BATCH:
                store.save_outcomes(outcomes)
                outcomes = []
        store.save_probes(probes)
        store.save_outcomes(outcomes)
    finally:
        store.close()


def open_library(folder: Path, work: Path) -> Library:
    """A copy of the built database in ``work`` (the stream writes to it) and its pending rows."""
    database = work / "results.db"
    shutil.copyfile(folder / "results.db", database)
    with Store.open_readonly(database) as store:
        rows = store.count_rows()
        pending = tuple(
            (row["sha256"], row["path"])
            for row in store.query_rows(RowFilter(statuses=("pending",)), order_by="folder")
        )
    return Library(database, folder / "photos", rows, pending)


# --- the window -------------------------------------------------------------------------------


def make_context(home: Path):
    """An app context on a private home, with a keychain that holds nothing."""
    from keyring.backends.null import Keyring as NoKeyring

    from core.context import AppContext
    from core.logs import Redactor
    from core.paths import HOME_ENV, AppPaths
    from core.secrets import KeyStore

    environ = {HOME_ENV: str(home)}
    redactor = Redactor()
    keystore = KeyStore(backend=NoKeyring(), environ=environ, redactor=redactor)
    return AppContext(AppPaths(home), environ=environ, redactor=redactor, keystore=keystore)


def quiet_offscreen_warnings() -> None:
    """Drop the line the offscreen platform prints for every window it shows (it has no
    window manager to pass size hints to); other Qt messages still go to stderr."""
    from PySide6.QtCore import qInstallMessageHandler

    def handler(mode, context, message: str) -> None:
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def wait_until(app, condition: Callable[[], bool], what: str) -> None:
    """Run the event loop until ``condition()`` holds (sleeping a little between rounds, so
    background threads get the interpreter).

    :raises SystemExit: it did not hold within :data:`WAIT_LIMIT` seconds.
    """
    deadline = time.monotonic() + WAIT_LIMIT
    app.processEvents()
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"Gave up waiting for {what} after {WAIT_LIMIT:.0f} s.")
        time.sleep(0.0005)
        app.processEvents()


def visible_rows_loaded(table) -> bool:
    """:returns: True when every row in the table's viewport has its data in memory."""
    from desktop.results_model import COLUMN_INDEX

    model = table.model()
    if model.rowCount() == 0:
        return False
    first = table.rowAt(0)
    last = table.rowAt(table.viewport().height() - 1)
    last = model.rowCount() - 1 if last < 0 else last
    column = COLUMN_INDEX["file"]
    return all(model.data(model.index(row, column)) is not None for row in range(first, last + 1))


def open_window(app, context, settings, database: Path):
    """Open a main window on ``database`` and wait until its first rows are painted.

    :returns: the window and the seconds that took.
    """
    from desktop.main_window import MainWindow

    with Stopwatch() as sw:
        window = MainWindow(context, settings, database)
        window.resize(*WINDOW_SIZE)
        window.show()
        table = window.results.table
        wait_until(app, lambda: visible_rows_loaded(table), "the first rows")
        app.processEvents()  # paint them
    return window, sw.wall


def close_window(app, window) -> None:
    window.close()
    window.deleteLater()
    app.processEvents()


# --- open -----------------------------------------------------------------------------------------


def first_page_from_sqlite(database: Path) -> float:
    """The floor of opening: count the rows and read the first page, straight from the store."""
    from desktop.results_model import COLUMN_INDEX, COLUMNS, PAGE_SIZE

    order = COLUMNS[COLUMN_INDEX["folder"]].order_by  # the table's first sort
    with Stopwatch() as sw:
        with Store.open_readonly(database) as store:
            store.count_rows()
            list(store.query_rows(order_by=order, limit=PAGE_SIZE))
    return sw.wall


# --- scroll ----------------------------------------------------------------------------------------


def every_page_from_sqlite(database: Path, rows: int) -> list[float]:
    """The floor of scrolling: every page the table reads, read straight from the store.

    :returns: the seconds each page took.
    """
    from desktop.results_model import COLUMN_INDEX, COLUMNS, PAGE_SIZE

    order = COLUMNS[COLUMN_INDEX["folder"]].order_by
    pages = []
    with Store.open_readonly(database) as store:
        for offset in range(0, rows, PAGE_SIZE):
            with Stopwatch() as sw:
                list(store.query_rows(order_by=order, limit=PAGE_SIZE, offset=offset))
            pages.append(sw.wall)
    return pages


def visible_cells_loaded(grid) -> bool:
    """:returns: True when every cell in the grid's viewport has its row in memory."""
    from PySide6.QtCore import QPoint

    from desktop.results_model import COLUMN_INDEX

    model = grid.model()
    if model.rowCount() == 0:
        return False
    viewport, cell = grid.viewport(), grid.gridSize()
    top = max(grid.indexAt(QPoint(cell.width() // 2, cell.height() // 2)).row(), 0)
    per_line = max(1, viewport.width() // cell.width())
    lines = viewport.height() // cell.height() + 2  # a part line above and below
    last = min(model.rowCount() - 1, top + per_line * lines)
    column = COLUMN_INDEX["file"]
    return all(model.data(model.index(row, column)) is not None for row in range(top, last + 1))


def scroll_to_bottom(app, window, grid: bool = False) -> list[float]:
    """Move the table's (or the grid's) scroll bar a screenful at a time from top to bottom;
    each step ends once the rows it shows are loaded and painted.

    :returns: the seconds of each step.
    """
    table = window.results.grid if grid else window.results.table
    loaded = visible_cells_loaded if grid else visible_rows_loaded
    bar = table.verticalScrollBar()
    bar.setValue(0)
    wait_until(app, lambda: loaded(table), "the top rows")
    steps = []
    value = 0
    while value < bar.maximum():
        value = min(value + bar.pageStep(), bar.maximum())
        with Stopwatch() as sw:
            bar.setValue(value)
            wait_until(app, lambda: loaded(table), f"the rows at {value}")
            app.processEvents()  # paint them
        steps.append(sw.wall)
    return steps


# --- stream ----------------------------------------------------------------------------------------


class PacedResults:
    """Stands in for :class:`core.runner.BatchRunner` as a source of results: writes
    ``STREAM_RATE`` outcomes a second to the store, ``STREAM_BATCH`` per transaction, in its
    own thread (the session's), and yields an :class:`ImageFinished` for each once written."""

    def __init__(self, database: Path, images: Sequence[tuple[str, str]], seconds: float) -> None:
        from core.runner import RunOptions

        self.db_path = database
        self.options = RunOptions()
        self.provider = type("Provider", (), {"id": PROVIDER, "label": "Offline"})()
        self._images = list(images[: int(seconds * STREAM_RATE)])
        self._cancel = threading.Event()
        #: perf_counter of the first write, and how many were written, for the report.
        self.first_write: float | None = None
        self.written = 0
        self.elapsed = 0.0

    def cancel(self) -> None:
        self._cancel.set()

    def pause(self) -> None:
        """Not offered by the benchmark (the run panel's button is never pressed)."""

    resume = pause

    def run(self, roots: Sequence[str]) -> Iterator:
        store = Store(self.db_path)
        try:
            yield Plan(PROVIDER, "Offline", False, len(self._images), len(self._images), 0, 0, to_check=len(self._images))
            yield from self._stream(store)
        finally:
            store.close()

    def _stream(self, store: Store) -> Iterator:
        interval = STREAM_BATCH / STREAM_RATE
        started = time.perf_counter()
        for n, start in enumerate(range(0, len(self._images), STREAM_BATCH)):
            if self._cancel.is_set():
                break
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            batch = [checked_outcome(sha256, path, 1) for sha256, path in self._images[start : start + STREAM_BATCH]]
            store.save_outcomes(batch)
            if self.first_write is None:
                self.first_write = time.perf_counter()
            for outcome in batch:
                self.written += 1
                self.elapsed = time.perf_counter() - started
                progress = Progress(self.written, 0, len(self._images), self.elapsed, self.written / self.elapsed)
                yield ImageFinished(outcome, progress)
        yield Finished(Summary(PROVIDER, checked=self.written, elapsed=self.elapsed))


class LatenessProbe:
    """A ``TICK_MS`` timer on the UI thread that records how late each tick comes."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.lateness: list[float] = []
        self._last = 0.0
        self.on_tick: Callable[[], None] | None = None

    def start(self) -> None:
        self.lateness = []
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        # The timer holds the probe and the probe the timer: untie them, so the timer goes
        # with its last reference on this thread, not in a garbage collection on another.
        self.timer.timeout.disconnect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lateness.append(max(0.0, now - self._last - TICK_MS / 1000))
        self._last = now
        if self.on_tick is not None:
            self.on_tick()


def run_loop_for(app, seconds: float, until: Callable[[], bool] | None = None) -> None:
    """Let the event loop run for ``seconds`` (or until ``until()``), as an idle app would."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    if until is not None:
        check = QTimer()
        check.timeout.connect(lambda: until() and loop.quit())
        check.start(20)
    loop.exec()


@dataclass(frozen=True)
class StreamFigures:
    lateness: list[float]
    written: int
    seconds: float
    refreshes: int
    first_shown: float | None  # seconds from the first write until the table showed it


def watch_the_top(app, window) -> None:
    """Show the top of the table with its first row selected (as a user watching a run has
    it: the selection is kept across refreshes), and wait until its rows and thumbnails are in."""
    table = window.results.table
    table.scrollToTop()
    table.selectRow(0)
    wait_until(app, lambda: visible_rows_loaded(table), "the top rows")
    wait_until(app, lambda: window.results.thumbnails.pending() == 0, "the top thumbnails")
    window.results.detail.wait()  # the selected photo's preview
    app.processEvents()


def stream_results(app, window, library: Library, seconds: float) -> StreamFigures:
    """Stream results into the window's database at ``STREAM_RATE`` a second while the probe
    timer runs; the first visible row not checked yet is watched until it shows its result."""
    from desktop.results_model import COLUMN_INDEX
    from desktop.worker import RunSession

    table = window.results.table
    model = table.model()
    watched = library.pending[0][1]
    watched_row = next(r for r in range(model.rowCount()) if model.row_at(r)["path"] == watched)
    status_column = COLUMN_INDEX["status"]
    assert watched_row <= table.rowAt(table.viewport().height() - 1), "the first pending row is off screen"

    refreshes = 0

    def count_refresh(top_left, bottom_right, roles=()) -> None:
        nonlocal refreshes
        if top_left.row() == 0 and bottom_right.row() == model.rowCount() - 1:
            refreshes += 1

    model.dataChanged.connect(count_refresh)
    runner = PacedResults(library.database, library.pending, seconds)
    shown_at: float | None = None

    def watch() -> None:
        nonlocal shown_at
        if shown_at is None and model.data(model.index(watched_row, status_column)) == "Checked":
            shown_at = time.perf_counter()

    session = RunSession(runner, [str(library.photos)], parent=window)
    session.outcomes.connect(window._on_outcomes)  # the slot MainWindow.start_run connects
    window.run_panel.attach(session)
    probe = LatenessProbe()
    probe.on_tick = watch
    probe.start()
    session.start()
    run_loop_for(app, seconds + WAIT_LIMIT, until=lambda: not session.running)
    probe.stop()
    model.dataChanged.disconnect(count_refresh)
    if not session.running:
        # The run's end refreshes the table at once; the watched row shows its result by now.
        window.results.refresh()
        wait_until(app, lambda: model.data(model.index(watched_row, status_column)) == "Checked", "the streamed results")
        watch()
    session.deleteLater()
    return StreamFigures(probe.lateness, runner.written, runner.elapsed, refreshes, shown_at and shown_at - runner.first_write)


def settle(app, window) -> None:
    """Let background work the scroll left behind (thumbnails, pages) finish first."""
    window.results.thumbnails.clear_requests()
    window.results.thumbnails.wait()
    window.results.model.wait()
    app.processEvents()


def idle_lateness(app, seconds: float) -> list[float]:
    """The probe timer with nothing else to do: the event loop's own noise."""
    probe = LatenessProbe()
    probe.start()
    run_loop_for(app, seconds)
    probe.stop()
    return probe.lateness


# --- the report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:,.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:,.2f} s"


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help=f"rows in the database (default {ROWS:,}; --quick {QUICK_ROWS:,})")
    parser.add_argument("--stream-seconds", type=float, help=f"how long results stream in (default {STREAM_SECONDS:g})")
    args = parser.parse_args(argv)
    rows = args.rows or (QUICK_ROWS if args.quick else ROWS)
    seconds = args.stream_seconds or (QUICK_STREAM_SECONDS if args.quick else STREAM_SECONDS)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from desktop.app import configure_application
    from desktop.results_model import PAGE_SIZE
    from desktop.results_view import REFRESH_INTERVAL_MS
    from desktop.thumbnails import SETTLE_MS
    from desktop.worker import RELAY_INTERVAL

    print_machine()
    quiet_offscreen_warnings()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    app = QApplication.instance() or QApplication(["bench.gui"])
    configure_application(app)
    params = {"rows": rows, "seed": args.seed, "samples": sorted((*GOOD_SAMPLES, *BAD_SAMPLES))}
    with prepared("gui", params, args.data, lambda folder: make_library(folder, rows, args.seed)) as data, \
            tempfile.TemporaryDirectory(prefix="kp-bench-gui-") as temp:  # fmt: skip
        made = "reused" if data.made_in is None else f"made in {data.made_in:.1f} s"
        work = Path(temp)
        library = open_library(data.folder, work)
        print(f"Data: {library.rows:,} rows ({len(library.pending):,} not checked yet), {made}", flush=True)
        context = make_context(work / "home")
        settings = QSettings(str(work / "window.ini"), QSettings.Format.IniFormat)

        sqlite_open = statistics.median(first_page_from_sqlite(library.database) for _ in range(OPENS))
        opens = []
        for n in range(OPENS):
            window, took = open_window(app, context, settings, library.database)
            opens.append(took)
            if n < OPENS - 1:
                close_window(app, window)
        print(f"Opened {OPENS} times: {', '.join(secs(t) for t in opens)}", flush=True)

        sqlite_pages = every_page_from_sqlite(library.database, library.rows)
        with Stopwatch() as scrolled:
            steps = scroll_to_bottom(app, window) or [0.0]  # a table that fits on one screen
        print(f"Scrolled in {len(steps):,} steps: {secs(scrolled.wall)}", flush=True)
        settle(app, window)
        window.results.show_grid(True)  # the thumbnail grid, at its first size
        with Stopwatch() as gridded:
            grid_steps = scroll_to_bottom(app, window, grid=True) or [0.0]
        print(f"Scrolled the grid in {len(grid_steps):,} steps: {secs(gridded.wall)}", flush=True)
        window.results.show_grid(False)
        settle(app, window)

        watch_the_top(app, window)
        idle = idle_lateness(app, seconds)
        stream = stream_results(app, window, library, seconds)
        close_window(app, window)

    worst_open = max(opens)
    worst_stall = max(stream.lateness)
    worst_idle = max(idle)
    figures = [
        Figure(f"open {library.rows:,} rows, first rows shown (worst of {OPENS})", secs(worst_open),
               f"{secs(GOAL_OPEN)} bound; SQLite count + first page {ms(sqlite_open)}",
               f"{worst_open / GOAL_OPEN:.2f}× the bound; {worst_open / sqlite_open:.1f}× SQLite",
               f"≤ {GOAL_OPEN:g} s", goal_at_most(worst_open, GOAL_OPEN)),
        Figure(f"scroll top to bottom ({len(steps):,} screenfuls)", secs(scrolled.wall),
               f"SQLite, every page of {PAGE_SIZE}: {secs(sum(sqlite_pages))}", f"{scrolled.wall / sum(sqlite_pages):.2f}× SQLite"),
        Figure("  worst screenful (median)", f"{ms(max(steps))} ({ms(statistics.median(steps))})",
               f"slowest SQLite page {ms(max(sqlite_pages))}", f"{max(steps) / max(sqlite_pages):.2f}× SQLite"),
        Figure(f"grid: scroll top to bottom ({len(grid_steps):,} screenfuls)", secs(gridded.wall),
               f"the table: {secs(scrolled.wall)}; SQLite, every page: {secs(sum(sqlite_pages))}",
               f"{gridded.wall / sum(sqlite_pages):.2f}× SQLite"),
        Figure("  grid: worst screenful (median)", f"{ms(max(grid_steps))} ({ms(statistics.median(grid_steps))})",
               f"the table's worst {ms(max(steps))}", f"{max(grid_steps) / max(max(steps), 1e-4):.2f}× the table"),
        Figure(f"worst timer lateness, {STREAM_RATE:,} results/s streaming", ms(worst_stall),
               f"{ms(GOAL_STALL)} bound; idle loop {ms(worst_idle)}",
               f"{worst_stall / GOAL_STALL:.2f}× the bound; {worst_stall / max(worst_idle, 1e-4):.1f}× idle",
               f"≤ {GOAL_STALL * 1000:g} ms", goal_at_most(worst_stall, GOAL_STALL)),
        Figure("  99th percentile lateness", ms(percentile(stream.lateness, 0.99)), f"idle loop {ms(percentile(idle, 0.99))}",
               f"{percentile(stream.lateness, 0.99) / max(percentile(idle, 0.99), 1e-4):.1f}× idle"),
        Figure("  results written", f"{stream.written:,} in {secs(stream.seconds)}",
               f"{STREAM_RATE:,}/s asked", f"{stream.written / stream.seconds / STREAM_RATE:.2f}× the rate"),
        Figure("  table refreshes while streaming", f"{stream.refreshes / stream.seconds:.1f}/s",
               f"at most {1000 / REFRESH_INTERVAL_MS:.1f}/s", f"{stream.refreshes / stream.seconds / (1000 / REFRESH_INTERVAL_MS):.2f}× the most"),
        Figure("  first result on screen after its write", ms(stream.first_shown) if stream.first_shown is not None else "never",
               f"relays ≤ {ms(RELAY_INTERVAL)} apart, refreshes ≥ {REFRESH_INTERVAL_MS} ms apart"),
    ]  # fmt: skip
    notes = [
        f"window {WINDOW_SIZE[0]}×{WINDOW_SIZE[1]}, Qt offscreen; the database is in the page cache (warm).",
        f"the 10 ms timer ran {len(stream.lateness):,} times while streaming, {len(idle):,} times idle, "
        f"{seconds:g} s each.",
        f"thumbnails are made once the view has been still for {SETTLE_MS} ms: few while the scroll runs flat out.",
    ]
    if stream.written < seconds * STREAM_RATE:
        notes.append(f"only {stream.written:,} rows were left to check, so the stream lasted {secs(stream.seconds)}.")
    if load is not None:
        notes.append(f"load average when the benchmark started: {load:.2f} on {os.cpu_count()} cores.")
    print_table(f"Desktop: results table over {library.rows:,} rows", figures, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
