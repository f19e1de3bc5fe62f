"""The results table's model: rows from the store, read a page at a time.

Only the row count and a few pages of rows are in memory, so a database of 100,000 images
opens as fast as one of ten. Sorting and filtering are done by SQLite
(:meth:`core.store.Store.query_rows`), never by Qt.

Painting never waits for SQLite: a page the view needs is read on a background thread (a
page deep into a sorted 100,000 rows takes a few hundred milliseconds) and its rows appear
when it arrives. After a refresh the rows already in memory stay on screen until their fresh
copies arrive, so a table that refreshes during a run does not flicker. Explicit lookups
(:meth:`ResultsModel.row_at`, for the selection and the context menu) read synchronously.

During a run the table refreshes a few times a second: :meth:`ResultsModel.refresh_in_background`
counts the rows and reads the pages on screen on the background thread too (counting 100,000
rows takes some 70 ms, too long a pause for the UI thread), then applies them at once.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRectF,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap

from core.store import RowFilter, RowKey, RowPage, Store, StoreError
from core.words import FLAG_LABELS, STATUS_HELP, STATUS_LABELS, VERDICT_LABELS  # noqa: F401  (the detail pane's too)

from .thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

#: Rows fetched per query. A page next to one in memory, or the last, is found by key
#: (:class:`PageAnchor`) in the same time at any size when the sort has an index; a jump
#: into the middle is read by offset.
PAGE_SIZE = 500
#: Pages kept in memory.
CACHED_PAGES = 12
#: Page reads waiting for the background thread beyond this are forgotten, oldest first:
#: while the scroll bar is dragged, only where it stops matters. The pages either side of
#: one being painted are read ahead, after every page needed now.
MAX_PENDING_PAGES = 3

AnyIndex = QModelIndex | QPersistentModelIndex

#: The roles :meth:`ResultsModel.data` answers. Painting asks for seven roles of every cell;
#: the others (font, background, check state) are turned away before any lookup.
_ANSWERED_ROLES = frozenset(
    {
        Qt.ItemDataRole.DisplayRole,
        Qt.ItemDataRole.ToolTipRole,
        Qt.ItemDataRole.DecorationRole,
        Qt.ItemDataRole.ForegroundRole,
        Qt.ItemDataRole.TextAlignmentRole,
    }
)


@dataclass(frozen=True)
class Column:
    """One column of the table: its id (kept in settings), header, and the store column
    it sorts by."""

    key: str
    title: str
    order_by: str
    width: int
    tooltip: str
    align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter


_CENTRE = Qt.AlignmentFlag.AlignCenter
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter

COLUMNS: tuple[Column, ...] = (
    # What a user decides on comes first (status, faces, verdicts); where the file is, last.
    Column("thumbnail", "", "path", 68, "Thumbnail"),
    Column("file", "File", "file", 150, "The file's name"),
    Column("status", "Status", "status", 104, "Checked, invalid (never sent), rejected or failed"),
    Column("faces", "Faces", "face_count", 48, "Faces found", _CENTRE),
    Column("verdict_avatar", "Avatar", "verdict_avatar", 52, "Ready for an avatar", _CENTRE),
    Column("verdict_tryon", "Try-on", "verdict_tryon", 52, "Ready for virtual try-on", _CENTRE),
    Column("verdict_asset", "Asset", "verdict_asset", 52, "Ready as a subject or asset", _CENTRE),
    Column("problems", "Problems", "problems", 260, "Why the file cannot be sent, or notes about it"),
    Column("head_seg", "Head", "head_seg", 56, "A head was found (✓), not found (✗), or cannot be told (?)", _CENTRE),
    Column("face_seg", "Face", "face_seg", 56, "A face was found (✓), not found (✗), or cannot be told (?)", _CENTRE),
    Column("cloth_seg", "Clothing", "cloth_seg", 68, "Clothing was found (✓), not found (✗), or cannot be told (?)", _CENTRE),
    Column("object_seg", "Subject", "object_seg", 64, "A main subject was found (✓), not found (✗), or cannot be told (?)", _CENTRE),
    Column("dimensions", "Dimensions", "width", 104, "Width × height in pixels", _RIGHT),
    Column("size", "Size", "bytes", 72, "Size of the file", _RIGHT),
    Column("folder", "Folder", "folder", 220, "The folder the file is in"),
    Column("provider", "Provider", "provider", 90, "Which provider checked it"),
    Column("error", "Error", "error", 240, "Why the check failed or was rejected"),
    Column("ready_copy", "Ready copy", "ready_copy", 220, "A copy made by Make ready copies that a check passed"),
)
COLUMN_INDEX: Mapping[str, int] = {column.key: n for n, column in enumerate(COLUMNS)}


# Status -> semantic colour kind.
_STATUS_KINDS: Mapping[str, str] = {
    "checked": "good",
    "invalid": "warn",
    "rejected": "bad",
    "failed": "bad",
    "pending": "neutral",
}

# Semantic colours, each in a variant for light and for dark palettes, chosen to keep
# enough contrast against the window colour of either.
_SEMANTIC: Mapping[str, tuple[str, str]] = {
    "good": ("#1e8c45", "#4cc97a"),
    "warn": ("#b86e00", "#f0a73a"),
    "bad": ("#c62f36", "#ff6b6b"),
    "neutral": ("#7a7a7a", "#9a9a9a"),
}

# Verdict and flag values -> glyph and semantic kind.
_GLYPHS: Mapping[Any, tuple[str, str]] = {
    True: ("✓", "good"),
    False: ("✗", "bad"),
    None: ("?", "neutral"),
    "yes": ("✓", "good"),
    "no": ("✗", "bad"),
    "unknown": ("?", "neutral"),
    "review": ("!", "warn"),
}


def is_dark(palette: QPalette) -> bool:
    """:returns: True when the palette draws light text on a dark window."""
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def semantic_colour(kind: str, palette: QPalette | None = None) -> QColor:
    """A colour that means something (``good``, ``warn``, ``bad``, ``neutral``), in the
    variant readable on ``palette`` (the application's by default)."""
    light, dark = _SEMANTIC[kind]
    return QColor(dark if is_dark(palette or QGuiApplication.palette()) else light)


def format_bytes(size: int | None) -> str:
    """``273 KB``, ``1.4 MB``; binary units, as the 10 MB limit counts them."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{round(size / 1024):,} KB"
    if size < 1024**3:
        return f"{size / 1024**2:,.1f} MB"
    return f"{size / 1024**3:,.1f} GB"


def format_dimensions(width: int | None, height: int | None) -> str:
    """``910 × 1137``, or empty when unknown."""
    if width is None or height is None:
        return ""
    return f"{width} × {height}"


def flag_glyph(value: Any) -> str:
    """✓, ✗ or ? for a flag (True/False/None) or a verdict (yes/no/unknown)."""
    return _GLYPHS.get(value, _GLYPHS[None])[0]


def flag_colour(value: Any, palette: QPalette | None = None) -> QColor:
    return semantic_colour(_GLYPHS.get(value, _GLYPHS[None])[1], palette)


def status_colour(status: str, palette: QPalette | None = None) -> QColor:
    return semantic_colour(_STATUS_KINDS.get(status, "neutral"), palette)


def problem_sentences(row: Mapping[str, Any]) -> list[str]:
    """The row's problems as sentences, blocking ones first."""
    problems = sorted(row.get("problems") or (), key=lambda p: not p.get("blocking", True))
    return [p["message"] for p in problems]


def row_key(row: Mapping[str, Any]) -> tuple[str, str | None]:
    """What identifies a row across re-queries: its path and provider."""
    return row["path"], row.get("provider")


def is_row(key: tuple[str, str | None], row: Mapping[str, Any]) -> bool:
    """:returns: True when ``row`` is the row ``key`` was taken from, perhaps since checked:
    a file not checked yet has no provider, and gets one when its result arrives."""
    path, provider = key
    return row["path"] == path and (provider is None or row.get("provider") in (provider, None))


@dataclass(frozen=True)
class PageAnchor:
    """Where a page is found by key rather than by counting off the rows before it
    (:meth:`core.store.Store.query_page`): after the last row of the page before, before the
    first row of the page after, or (``backwards`` without a key) at the end."""

    after: RowKey | None = None
    before: RowKey | None = None
    backwards: bool = False
    rows: int = PAGE_SIZE


@dataclass(frozen=True)
class PageQuery:
    """One page of rows to read: everything a thread needs to read it with its own store."""

    database: Path
    row_filter: RowFilter
    order_by: str
    descending: bool
    page_no: int
    generation: int  # the model's filter and sort when asked (changes on reset)
    version: int  # the model's refresh when asked
    anchor: PageAnchor | None = None  # None: by offset (a jump, or a refresh)


@dataclass(frozen=True)
class PageAnswer:
    query: PageQuery
    page: RowPage
    error: str = ""


@dataclass(frozen=True)
class RefreshQuery:
    """A refresh to read in the background: the row count and some pages, from one snapshot."""

    database: Path
    row_filter: RowFilter
    order_by: str
    descending: bool
    page_numbers: tuple[int, ...]
    generation: int
    version: int


@dataclass(frozen=True)
class RefreshAnswer:
    query: RefreshQuery
    count: int
    pages: dict[int, RowPage]
    providers: list[str]  # ids of the providers with results
    seconds: float  # how long the reading took
    error: str = ""


def page_rows(store: Store, query: PageQuery | RefreshQuery, page_no: int) -> RowPage:
    """The rows of page ``page_no`` under ``query``'s filter and order, read from ``store``:
    by ``query``'s anchor when it has one for this page, else by offset.

    :raises StoreError, sqlite3.Error: the database cannot be read.
    """
    anchor = query.anchor if isinstance(query, PageQuery) and page_no == query.page_no else None
    if anchor is None:
        anchor, offset = PageAnchor(), page_no * PAGE_SIZE
    else:
        offset = 0
    return store.query_page(
        query.row_filter,
        order_by=query.order_by,
        descending=query.descending,
        limit=anchor.rows,
        after=anchor.after,
        before=anchor.before,
        backwards=anchor.backwards,
        offset=offset,
    )


def read_page(query: PageQuery) -> RowPage:
    """Read one page with a read-only store of its own (a store belongs to one thread).

    :raises StoreError, sqlite3.Error: the database cannot be read.
    """
    with Store.open_readonly(query.database) as store:
        return page_rows(store, query, query.page_no)


def read_refresh(query: RefreshQuery) -> tuple[int, dict[int, RowPage], list[str]]:
    """Count the rows and read the pages of ``query``, and list the providers with results,
    all in one read transaction, with a read-only store of its own.

    :returns: the row count, page number -> rows, and the providers' ids.
    :raises StoreError, sqlite3.Error: the database cannot be read.
    """
    with Store.open_readonly(query.database) as store, store.db.atomic():
        count = store.count_rows(query.row_filter)
        pages = {
            page_no: page_rows(store, query, page_no)
            for page_no in query.page_numbers
            if page_no * PAGE_SIZE < count
        }
        providers = store.providers()
    return count, pages, providers


class _PageRequests:
    """Pages asked for and not yet started, newest first. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: OrderedDict[int, PageQuery] = OrderedDict()

    def push(self, query: PageQuery, *, ahead: bool = False) -> list[int]:
        """Queue ``query``; :returns: page numbers dropped to make room.

        :param ahead: a page read ahead of need: it goes last (and is dropped first), and a
            page already waiting keeps its place.
        """
        with self._lock:
            if ahead and query.page_no in self._waiting:
                return []
            self._waiting[query.page_no] = query
            self._waiting.move_to_end(query.page_no, last=not ahead)
            dropped = []
            while len(self._waiting) > MAX_PENDING_PAGES:
                page_no, _ = self._waiting.popitem(last=False)
                dropped.append(page_no)
            return dropped

    def pop_newest(self) -> PageQuery | None:
        with self._lock:
            return self._waiting.popitem(last=True)[1] if self._waiting else None

    def clear(self) -> None:
        with self._lock:
            self._waiting.clear()


class _PageRelay(QObject):
    """Carries pages from the pool thread to the UI thread (queued signals)."""

    answered = Signal(object)  # PageAnswer
    refreshed = Signal(object)  # RefreshAnswer


class _PageJob(QRunnable):
    """Reads the newest requested page (not necessarily the one that started it)."""

    def __init__(self, requests: _PageRequests, relay: _PageRelay) -> None:
        super().__init__()
        self._requests = requests
        self._relay = relay

    def run(self) -> None:
        query = self._requests.pop_newest()
        if query is None:
            return
        try:
            answer = PageAnswer(query, read_page(query))
        except (sqlite3.Error, StoreError) as exc:
            answer = PageAnswer(query, RowPage([], None, None), str(exc))
        except Exception as exc:  # a bug costs this page, never the pool thread
            log.exception("Reading page %s failed", query.page_no)
            answer = PageAnswer(query, RowPage([], None, None), str(exc))
        self._relay.answered.emit(answer)


class _RefreshJob(QRunnable):
    """Reads a refresh (the count, some pages, the providers) and hands it to the UI thread."""

    def __init__(self, query: RefreshQuery, relay: _PageRelay) -> None:
        super().__init__()
        self._query = query
        self._relay = relay

    def run(self) -> None:
        started = time.perf_counter()
        try:
            count, pages, providers = read_refresh(self._query)
            answer = RefreshAnswer(self._query, count, pages, providers, time.perf_counter() - started)
        except (sqlite3.Error, StoreError) as exc:
            answer = RefreshAnswer(self._query, 0, {}, [], time.perf_counter() - started, str(exc))
        except Exception as exc:  # a bug costs this refresh, never the pool thread
            log.exception("Refreshing the results failed")
            answer = RefreshAnswer(self._query, 0, {}, [], time.perf_counter() - started, str(exc))
        self._relay.refreshed.emit(answer)


@dataclass
class _Page:
    rows: list[dict[str, Any]]
    version: int  # the refresh it was read at; older ones are shown until replaced
    shas: dict[str, list[int]]  # sha256 -> row numbers, for thumbnail updates
    first_key: RowKey | None = None  # where the pages either side are found (PageAnchor)
    last_key: RowKey | None = None


class ResultsModel(QAbstractTableModel):
    """Rows of :meth:`Store.query_rows` for one filter and sort, loaded lazily.

    :param thumbnails: where the thumbnail column's pictures come from; None shows none.
    """

    #: A page could not be read; the argument is a sentence for the user.
    read_failed = Signal(str)
    #: A :meth:`refresh_in_background` was applied: the seconds its reading took, and the ids
    #: of the providers with results (read with the rows, for the filter bar).
    refreshed = Signal(float, list)

    def __init__(self, thumbnails: ThumbnailCache | None = None, parent=None) -> None:
        super().__init__(parent)
        self._store: Store | None = None
        self._filter = RowFilter()
        # Folder by folder, then by path: the order a scan found them in.
        self._sort_column = COLUMN_INDEX["folder"]
        self._order_by = COLUMNS[self._sort_column].order_by
        self._descending = False
        self._count = 0
        self._generation = 0  # bumped when rows are reset (store, filter, sort)
        self._version = 0  # bumped by refresh(): cached pages become stale
        self._pages: OrderedDict[int, _Page] = OrderedDict()
        self._requested: dict[int, int] = {}  # page -> version asked for in the background
        self._requests = _PageRequests()
        # Created before the relay: children are destroyed in order, and the pool's
        # destructor waits for its jobs, which still use the relay.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._relay = _PageRelay(self)
        self._relay.answered.connect(self._on_page, Qt.ConnectionType.QueuedConnection)
        self._relay.refreshed.connect(self._on_refreshed, Qt.ConnectionType.QueuedConnection)
        self._refreshing: RefreshQuery | None = None  # the background refresh under way
        self._thumbnails = thumbnails
        self._status_icons: dict[tuple[str, bool], QIcon] = {}
        if thumbnails is not None:
            thumbnails.ready.connect(self._on_thumbnail_ready)

    # --- what is shown -----------------------------------------------------------------

    def set_store(self, store: Store | None) -> None:
        """Show the rows of ``store`` (the caller keeps ownership and closes it).

        None empties the model and waits for background reads to finish (shutdown).
        """
        self.beginResetModel()
        self._store = store
        self._drop_pages()
        if store is None:
            self._pool.waitForDone()
        self._count = self._counted()
        self.endResetModel()

    def wait(self, msecs: int = -1) -> bool:
        """Block until no page is being read in the background (tests, shutdown).

        :returns: True when idle, False when ``msecs`` ran out first.
        """
        return self._pool.waitForDone(msecs)

    def row_filter(self) -> RowFilter:
        return self._filter

    def set_filter(self, row_filter: RowFilter) -> None:
        if row_filter == self._filter:
            return
        self.beginResetModel()
        self._filter = row_filter
        self._drop_pages()
        self._count = self._counted()
        self.endResetModel()

    def sort_order(self) -> tuple[int, Qt.SortOrder]:
        """:returns: the column sorted by and the direction."""
        order = Qt.SortOrder.DescendingOrder if self._descending else Qt.SortOrder.AscendingOrder
        return self._sort_column, order

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:  # noqa: D102
        if not 0 <= column < len(COLUMNS):
            return
        descending = order == Qt.SortOrder.DescendingOrder
        if (column, descending) == (self._sort_column, self._descending):
            return
        self.beginResetModel()
        self._sort_column = column
        self._order_by = COLUMNS[column].order_by
        self._descending = descending
        self._drop_pages()
        self.endResetModel()

    def refresh(self) -> None:
        """Read the row count again; rows in memory stay on screen until fresh copies,
        read in the background, replace them. Rows keep their numbers, so selections stay put."""
        if self._store is None:
            return
        count = self._counted()
        self._version += 1
        self._renew(count)

    def refresh_in_background(self, rows: Iterable[int] = ()) -> bool:
        """:meth:`refresh` without reading on this thread: the row count and the pages that
        hold ``rows`` are read on the background thread from one snapshot and applied together
        when they arrive; then :attr:`refreshed` is emitted. Meanwhile everything stays as it was.

        An answer that arrives after a reset or a :meth:`refresh` is dropped (theirs is newer).

        :param rows: row numbers wanted fresh at once (those on screen, the selection).
        :returns: False when nothing was started: no store, or a refresh is still under way.
        """
        if self._store is None or self._refreshing is not None:
            return False
        pages = tuple(sorted({row // PAGE_SIZE for row in rows if 0 <= row < self._count}))
        query = RefreshQuery(
            self._store.path, self._filter, self._order_by, self._descending, pages, self._generation, self._version
        )
        self._refreshing = query
        self._pool.start(_RefreshJob(query, self._relay))
        return True

    def loaded_row(self, row: int) -> dict[str, Any] | None:
        """:returns: row number ``row`` if it is in memory, perhaps stale (no query), or None."""
        page = self._pages.get(row // PAGE_SIZE) if 0 <= row < self._count else None
        offset = row % PAGE_SIZE
        return page.rows[offset] if page is not None and offset < len(page.rows) else None

    def row_at(self, index: AnyIndex | int) -> dict[str, Any] | None:
        """:returns: the row (keys of :data:`core.store.ROW_COLUMNS`) at ``index`` (a model
        index or a row number), or None when there is none."""
        row = index.row() if isinstance(index, (QModelIndex, QPersistentModelIndex)) else index
        if not 0 <= row < self._count:
            return None
        page_no, offset = divmod(row, PAGE_SIZE)
        page = self._pages.get(page_no)
        if page is None or page.version < self._version:
            page = self._read_now(page_no)
        self._pages.move_to_end(page_no)
        return page.rows[offset] if offset < len(page.rows) else None

    def painting_row(self, row: int) -> dict[str, Any] | None:
        """:returns: row number ``row`` if it is in memory, else None and it is read in the
        background (for painting, as :meth:`data` does: never waits for SQLite)."""
        return self._row_for_painting(row)

    def find_loaded(self, key: tuple[str, str | None]) -> int | None:
        """:returns: the row number of the row with ``key`` among fresh rows in memory
        (no query), or None."""
        for page_no, page in self._pages.items():
            if page.version < self._version:
                continue
            for offset, row in enumerate(page.rows):
                if is_row(key, row):
                    return page_no * PAGE_SIZE + offset
        return None

    def any_rows(self) -> bool:
        """:returns: whether the store holds any row whatever the filter (False without a
        store). One row is read, not a count: this runs on the UI thread."""
        if self._store is None:
            return False
        try:
            return self._store.has_rows()
        except (sqlite3.Error, StoreError) as exc:
            self._report(exc)
            return False

    # --- QAbstractTableModel --------------------------------------------------------------

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        column = COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return column.tooltip
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(column.align)
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in _ANSWERED_ROLES or not index.isValid() or index.column() >= len(COLUMNS):
            return None
        row = self._row_for_painting(index.row())
        if row is None:
            return None
        key = COLUMNS[index.column()].key
        if role == Qt.ItemDataRole.DisplayRole:
            return _display(key, row)
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(key, row)
        if role == Qt.ItemDataRole.DecorationRole:
            if key == "thumbnail" and self._thumbnails is not None:
                icon = self._thumbnails.get(row["sha256"], row["path"])
                return icon if icon is not None else self._thumbnails.placeholder()
            if key == "status":
                return self._status_icon(row["status"])
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if key in FLAG_LABELS or key.startswith("verdict_"):
                return flag_colour(row[key])
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(COLUMNS[index.column()].align)
        return None

    # --- internals ----------------------------------------------------------------------

    def _counted(self) -> int:
        if self._store is None:
            return 0
        try:
            return self._store.count_rows(self._filter)
        except (sqlite3.Error, StoreError) as exc:
            self._report(exc)
            return 0

    def _renew(self, count: int) -> None:
        """Take ``count`` as the row count (rows come and go at the end; rows keep their
        numbers) and announce every row as changed."""
        if count > self._count:
            self.beginInsertRows(QModelIndex(), self._count, count - 1)
            self._count = count
            self.endInsertRows()
        elif count < self._count:
            self.beginRemoveRows(QModelIndex(), count, self._count - 1)
            self._count = count
            self.endRemoveRows()
        if self._count:
            self.dataChanged.emit(self.index(0, 0), self.index(self._count - 1, len(COLUMNS) - 1))

    def _row_for_painting(self, row: int) -> dict[str, Any] | None:
        """The row if it is in memory (perhaps stale); a missing or stale page is asked for
        in the background. Never reads the database."""
        if not 0 <= row < self._count:
            return None
        page_no, offset = divmod(row, PAGE_SIZE)
        page = self._pages.get(page_no)
        if (page is None or page.version < self._version) and self._requested.get(page_no) != self._version:
            self._request(page_no)
        if page is None:
            return None
        # Read the pages either side before the view gets there: one of them is where a
        # scroll goes next (the one it came from is usually still in memory).
        for ahead in (page_no + 1, page_no - 1):
            if ahead not in self._pages and ahead not in self._requested and 0 <= ahead * PAGE_SIZE < self._count:
                self._request(ahead, ahead=True)
        return page.rows[offset] if offset < len(page.rows) else None

    def _query(self, page_no: int) -> PageQuery | None:
        if self._store is None:
            return None
        return PageQuery(
            self._store.path, self._filter, self._order_by, self._descending, page_no, self._generation, self._version,
            self._anchor(page_no),
        )  # fmt: skip

    def _anchor(self, page_no: int) -> PageAnchor | None:
        """How to find page ``page_no`` by key: next to a fresh page in memory, or at the end.
        None for a jump into the middle, read by offset."""
        before = self._pages.get(page_no - 1)
        if before is not None and before.version == self._version and before.last_key is not None:
            if len(before.rows) == PAGE_SIZE:
                return PageAnchor(after=before.last_key)
        after = self._pages.get(page_no + 1)
        if after is not None and after.version == self._version and after.first_key is not None:
            return PageAnchor(before=after.first_key, backwards=True)
        rows = self._count - page_no * PAGE_SIZE
        if page_no > 0 and 0 < rows <= PAGE_SIZE:
            return PageAnchor(backwards=True, rows=rows)
        return None

    def _request(self, page_no: int, *, ahead: bool = False) -> None:
        query = self._query(page_no)
        if query is None:
            return
        self._requested[page_no] = self._version
        for dropped in self._requests.push(query, ahead=ahead):
            self._requested.pop(dropped, None)
        self._pool.start(_PageJob(self._requests, self._relay))

    def _read_now(self, page_no: int) -> _Page:
        found = RowPage([], None, None)
        query = self._query(page_no)
        if query is not None:
            try:
                found = page_rows(self._store, query, page_no)
            except (sqlite3.Error, StoreError) as exc:
                self._report(exc)
        return self._keep(page_no, found, self._version)

    def _keep(self, page_no: int, found: RowPage, version: int) -> _Page:
        rows = found.rows
        shas: dict[str, list[int]] = {}
        for offset, row in enumerate(rows):
            if row["sha256"]:
                shas.setdefault(row["sha256"], []).append(page_no * PAGE_SIZE + offset)
        page = _Page(rows, version, shas, found.first_key, found.last_key)
        self._pages[page_no] = page
        self._pages.move_to_end(page_no)
        while len(self._pages) > CACHED_PAGES:
            self._pages.popitem(last=False)
        return page

    @Slot(object)
    def _on_page(self, answer: PageAnswer) -> None:
        query = answer.query
        if query.generation != self._generation:
            return  # read for another filter or sort
        if self._requested.get(query.page_no) == query.version:
            del self._requested[query.page_no]
        if answer.error:
            self._report_text(answer.error)
        current = self._pages.get(query.page_no)
        if current is not None and current.version >= query.version:
            return  # a synchronous read got there first
        self._keep(query.page_no, answer.page, query.version)
        first = query.page_no * PAGE_SIZE
        last = min(self._count, first + PAGE_SIZE) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))

    @Slot(object)
    def _on_refreshed(self, answer: RefreshAnswer) -> None:
        query = answer.query
        if query is not self._refreshing:
            return  # asked for before a reset
        self._refreshing = None
        if query.generation != self._generation or query.version != self._version:
            return  # a reset or a synchronous refresh read newer rows meanwhile
        if answer.error:
            self._report_text(answer.error)
            return
        self._version += 1
        for page_no, found in answer.pages.items():
            self._keep(page_no, found, self._version)
        self._renew(answer.count)
        self.refreshed.emit(answer.seconds, answer.providers)

    def _drop_pages(self) -> None:
        """Forget every row: what follows is another filter, sort or database."""
        self._generation += 1
        self._refreshing = None
        self._pages.clear()
        self._requested.clear()
        self._requests.clear()
        if self._thumbnails is not None:
            self._thumbnails.clear_requests()

    def _report(self, exc: Exception) -> None:
        self._report_text(str(exc))

    def _report_text(self, error: str) -> None:
        log.warning("Reading results failed: %s", error)
        self.read_failed.emit(f"The results could not be read: {error}")

    def _on_thumbnail_ready(self, sha256: str) -> None:
        column = COLUMN_INDEX["thumbnail"]
        for page in list(self._pages.values()):
            for row in page.shas.get(sha256, ()):
                if row < self._count:
                    index = self.index(row, column)
                    self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def _status_icon(self, status: str) -> QIcon:
        dark = is_dark(QGuiApplication.palette())
        icon = self._status_icons.get((status, dark))
        if icon is None:
            icon = QIcon(_chip(status_colour(status)))
            self._status_icons[(status, dark)] = icon
        return icon


def _chip(colour: QColor, side: int = 24) -> QPixmap:
    """A round colour chip with a slightly darker rim, drawn at 2× for sharp HiDPI."""
    pixmap = QPixmap(QSize(side, side))
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(colour.darker(130))
        painter.setBrush(colour)
        painter.drawEllipse(QRectF(side * 0.2, side * 0.2, side * 0.6, side * 0.6))
    finally:
        painter.end()
    return pixmap


def _display(key: str, row: Mapping[str, Any]) -> str | None:
    if key == "thumbnail":
        return None
    if key == "dimensions":
        return format_dimensions(row["width"], row["height"])
    if key == "size":
        return format_bytes(row["bytes"])
    if key == "status":
        return STATUS_LABELS.get(row["status"], row["status"])
    if key == "problems":
        # A failed or rejected check says why here too: the Error column is hidden at first.
        return " ".join(problem_sentences(row)) or (row.get("error") or "")
    if key == "faces":
        return "" if row["face_count"] is None else str(row["face_count"])
    if key in FLAG_LABELS or key.startswith("verdict_"):
        return flag_glyph(row[key])
    value = row.get(key)
    return "" if value is None else str(value)


def _tooltip(key: str, row: Mapping[str, Any]) -> str | None:
    if key in ("thumbnail", "file"):
        return row["path"]
    if key == "folder":
        return row["folder"]
    if key == "status":
        return STATUS_HELP.get(row["status"])
    if key == "problems":
        sentences = problem_sentences(row)
        return "\n".join(f"• {s}" for s in sentences) if sentences else None
    if key == "faces" and row["face_count"] is None:
        return "This provider does not locate faces." if row["status"] == "checked" else None
    if key in FLAG_LABELS:
        value = row[key]
        state = "found" if value else "not found" if value is False else "cannot be told"
        return f"{FLAG_LABELS[key]}: {state}"
    if key.startswith("verdict_"):
        workflow = VERDICT_LABELS[key.removeprefix("verdict_")]
        reasons = "".join(f"\n• {w['message']}" for w in row.get("warnings") or ()) if row[key] == "review" else ""
        return f"Ready for {workflow}: {row[key] or 'unknown'}{reasons}"
    if key == "error":
        if not row["error"]:
            return None
        return f"{row['error']} ({row['error_code']})" if row["error_code"] else row["error"]
    return None
