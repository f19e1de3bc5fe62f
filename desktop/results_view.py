"""The results side of the main window: a filter bar, the results table and the detail pane.

The table reads the store a page at a time (:class:`ResultsModel`). During a run the main
window reports finished images with :meth:`ResultsPanel.note_outcomes`; the panel refreshes
at most a few times a second, and less often when a refresh is slow (a big database), so the
window stays responsive however fast results arrive. Those refreshes read in the background
(the selection is put back once the fresh rows are in), so the UI thread never waits for
SQLite while results stream in.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPoint,
    QProcess,
    QSettings,
    QSize,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QIcon, QKeySequence, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSlider,
    QSplitter,
    QStyle,
    QStackedWidget,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.scan import file_path
from core.store import RowFilter, Store, StoreError

from .column_menu import header_menu, status_width
from .detail_pane import DetailPane
from .flow_layout import FlowLayout
from .opener import open_path
from .results_grid import FIRST_CELL, MAX_CELL, MIN_CELL, PreviewDialog, ResultsGrid
from .results_model import COLUMN_INDEX, COLUMNS, ResultsModel, is_row, row_key
from .thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

#: The quick filters, in the order of their buttons: key -> (label, filter fields).
QUICK_FILTERS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "all": ("All", {}),
    "passed": ("Passed", {"statuses": ("checked",)}),
    "invalid": ("Invalid", {"statuses": ("invalid",)}),
    "errors": ("Errors", {"statuses": ("failed", "rejected")}),
    "face": ("Has a face", {"has_face": True}),
    "no_face": ("No face", {"has_face": False}),
    "avatar": ("Ready for avatar", {"verdict": "avatar"}),
    "tryon": ("Ready for try-on", {"verdict": "tryon"}),
    "asset": ("Ready as subject", {"verdict": "asset"}),
    "review": ("Needs review", {"review": True}),
    "disagree": ("Providers disagree", {"disagree": True}),
}
QUICK_FILTER_TIPS: Mapping[str, str] = {
    "all": "Every file",
    "passed": "Checked by the provider",
    "invalid": "Files that break the input rules and were not sent",
    "errors": "Checks that failed or that the provider rejected",
    "face": "Photos where a face was found",
    "no_face": "Photos where no face was found",
    "avatar": "Photos ready for an avatar: head and face found",
    "tryon": "Photos ready for virtual try-on: head and clothing found",
    "asset": "Photos ready as a subject or asset: a main subject found",
    "review": "Usable, but a person should look first: a small or cut-off face, several faces, blur, bad exposure",
    "disagree": "Photos where one provider found a face and another found none",
}

#: Empty states: a headline and what to do next.
EMPTY_DATABASE = ("No results yet.", "Drop a folder of photos here, then press Start.")
EMPTY_FILTER = ("No photos match this filter.", "Change the search or the quick filter, or show everything.")
#: Wait after the last keystroke before searching.
SEARCH_DEBOUNCE_MS = 250
#: Shortest time between two refreshes during a run; longer when refreshes are slow.
REFRESH_INTERVAL_MS = 300
#: At most this share of the time goes to refreshing during a run (of the UI thread's and of
#: the thread that reads pages).
REFRESH_SHARE = 0.2
#: Opening more files than this at once is surely a slip of the mouse.
MAX_OPEN = 10
#: Selections larger than this are not restored by key after a refresh (rows keep their numbers).
MAX_RESTORED = 200
ROW_HEIGHT = 60
#: Columns hidden until the user shows them (right-click the header), so that at 1280 pixels
#: wide the Problems column has room; the detail pane shows all of them for the selected photo.
#: Columns a user turns on from the header's menu; the rest fit a 1280-pixel window with the
#: detail pane open, so Problems never hides behind a horizontal scroll bar.
HIDDEN_AT_FIRST = (
    "head_seg", "face_seg", "cloth_seg", "object_seg", "dimensions", "size", "folder", "provider", "error", "ready_copy",
)
THUMBNAIL_SIZE = QSize(52, 52)


def row_filter_for(quick: str, text: str = "", provider: str | None = None) -> RowFilter:
    """The store filter for a quick filter, a search text and a provider.

    :param quick: a key of :data:`QUICK_FILTERS`.
    :param text: part of the path to look for; blank for any.
    :param provider: a provider id, or None for all.
    :raises KeyError: an unknown quick filter.
    """
    _, fields = QUICK_FILTERS[quick]
    return RowFilter(provider=provider, text=text.strip() or None, **fields)


class FilterBar(QWidget):
    """Search text, quick filter buttons and (with several providers) a provider picker."""

    #: The filter changed (the text after a short pause).
    changed = Signal()
    #: Table or grid was chosen.
    view_changed = Signal()
    export_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search names and folders")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(180)
        self.search.setMaximumWidth(420)
        # A folder dropped here must reach the window (to be queued), not become search text.
        self.search.setAcceptDrops(False)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.changed)
        self.search.textChanged.connect(self._debounce.start)
        self.search.returnPressed.connect(self.flush)

        # Their own row, wrapping onto a second line when the width runs out: every quick
        # filter stays in sight at any width and scaling (an overflow menu hid them).
        self.quick_row = QWidget(self)
        chips = FlowLayout(self.quick_row)
        self._quick_group = QActionGroup(self)
        self._quick_group.setExclusive(True)
        self.quick_actions: dict[str, QAction] = {}
        self.quick_chips: dict[str, QToolButton] = {}
        for key, (label, _) in QUICK_FILTERS.items():
            action = QAction(label, self._quick_group)
            action.setToolTip(QUICK_FILTER_TIPS[key])
            action.setCheckable(True)
            action.setData(key)
            chip = QToolButton(self.quick_row)
            chip.setDefaultAction(action)
            chip.setAutoRaise(True)
            chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            chips.addWidget(chip)
            self.quick_actions[key] = action
            self.quick_chips[key] = chip
        self.quick_actions["all"].setChecked(True)
        self._show_quick("disagree", False)  # until a database holds several providers
        self._quick_group.triggered.connect(lambda _: self.changed.emit())

        self.provider = QComboBox(self)
        self.provider.setToolTip("Show the results of one provider")
        # Compact: as wide as a short name, whatever the providers are called.
        self.provider.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.provider.setMinimumContentsLength(12)
        self.provider.addItem("All providers", None)
        self.provider.setVisible(False)
        self.provider.currentIndexChanged.connect(lambda _: self.changed.emit())

        self.scope: str | None = None
        self.scope_chip = QPushButton(self)
        self.scope_chip.setFlat(True)
        self.scope_chip.hide()
        self.scope_chip.clicked.connect(lambda: self.set_scope(None))
        # Table or grid, and the grid's size: the view's own controls, at the end of the row.
        self.table_button = QToolButton(self)
        self.grid_button = QToolButton(self)
        self._view_group = QActionGroup(self)
        for button, text, keys, tip in ((self.table_button, "Table", "Ctrl+1", "Show the results as a table"),
                                        (self.grid_button, "Grid", "Ctrl+2", "Show the results as thumbnails")):
            action = QAction(text, self._view_group)
            action.setCheckable(True)
            action.setShortcut(QKeySequence(keys))
            action.setToolTip(f"{tip} ({keys})")
            button.setDefaultAction(action)
            button.setAutoRaise(True)
        self.table_button.defaultAction().setChecked(True)
        self._view_group.triggered.connect(lambda _: self.view_changed.emit())
        self.size_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.size_slider.setRange(MIN_CELL, MAX_CELL)
        self.size_slider.setValue(FIRST_CELL)
        self.size_slider.setFixedWidth(110)
        self.size_slider.setToolTip("Thumbnail size")
        self.size_slider.hide()
        self.count = QLabel(self)
        self.export = QPushButton("Export…", self)
        self.export.setToolTip("Export the rows this filter shows, as CSV or JSON")
        self.export.clicked.connect(self.export_clicked)

        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.provider)
        top.addWidget(self.scope_chip)
        top.addStretch(0)
        top.addWidget(self.count)
        top.addSpacing(8)
        top.addWidget(self.size_slider)
        top.addWidget(self.table_button)
        top.addWidget(self.grid_button)
        top.addSpacing(8)
        top.addWidget(self.export)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 2)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.quick_row)

    def quick(self) -> str:
        action = self._quick_group.checkedAction()
        return action.data() if action is not None else "all"

    def set_quick(self, key: str) -> None:
        """Check the quick filter ``key`` (without announcing a change)."""
        self.quick_actions[key].setChecked(True)

    def provider_id(self) -> str | None:
        return self.provider.currentData()

    def _show_quick(self, key: str, visible: bool) -> None:
        """Show or hide a quick filter: its action and its chip (a tool button does not follow
        its action's visibility, and a greyed chip for a filter that cannot apply only confuses)."""
        self.quick_actions[key].setVisible(visible)
        self.quick_chips[key].setVisible(visible)

    def set_providers(self, providers: list[tuple[str, str]]) -> None:
        """Offer ``providers`` ([(id, label)]); the picker shows only when there are several."""
        known = [self.provider.itemData(i) for i in range(1, self.provider.count())]
        if known == [pid for pid, _ in providers]:
            return
        chosen = self.provider_id()
        self.provider.blockSignals(True)
        self.provider.clear()
        self.provider.addItem("All providers", None)
        for pid, label in providers:
            self.provider.addItem(label, pid)
        position = self.provider.findData(chosen) if chosen is not None else 0
        self.provider.setCurrentIndex(max(position, 0))
        self.provider.blockSignals(False)
        self.provider.setVisible(len(providers) > 1)
        self._show_quick("disagree", len(providers) > 1)
        if chosen is not None and position < 0:
            self.changed.emit()  # the chosen provider left the database

    def set_provider_id(self, provider: str | None) -> None:
        position = self.provider.findData(provider)
        if position >= 0:
            self.provider.setCurrentIndex(position)

    def row_filter(self) -> RowFilter:
        chosen = row_filter_for(self.quick(), self.search.text(), self.provider_id())
        return replace(chosen, roots=(self.scope,)) if self.scope else chosen

    def set_scope(self, path: str | None) -> None:
        """Show only the photos in ``path`` (a queued folder or file), or everywhere for None."""
        self.scope = path
        self.scope_chip.setText(f"In {os.path.basename(path) or path}  ✕" if path else "")
        self.scope_chip.setToolTip(f"Only the photos in {path}. Click to show every folder." if path else "")
        self.scope_chip.setVisible(bool(path))
        self.changed.emit()

    def cancel_pending(self) -> None:
        """Forget a search text not applied yet (the window is closing)."""
        self._debounce.stop()

    def flush(self) -> None:
        """Apply a pending search text now."""
        if self._debounce.isActive():
            self._debounce.stop()
            self.changed.emit()


class _ThumbnailDelegate(QStyledItemDelegate):
    """Draws the thumbnail centred in its cell, over the usual row background."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        icon = QIcon(opt.icon)
        opt.icon = QIcon()
        opt.features &= ~QStyleOptionViewItem.ViewItemFeature.HasDecoration
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        if not icon.isNull():
            target = QStyle.alignedRect(opt.direction, Qt.AlignmentFlag.AlignCenter, THUMBNAIL_SIZE, opt.rect)
            icon.paint(painter, target, Qt.AlignmentFlag.AlignCenter)


class _SentenceDelegate(QStyledItemDelegate):
    """Elides at the end: a sentence is read from its start (paths keep both ends instead)."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:  # noqa: N802 - Qt's name
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideRight


class _EmptyState(QWidget):
    """A headline, a sentence telling the user what to do, and a way out of an empty filter."""

    show_all = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.headline = QLabel(self)
        self.headline.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.headline.setWordWrap(True)
        font = self.headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.headline.setFont(font)
        self.hint = QLabel(self)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        hint_font = self.hint.font()
        hint_font.setPointSizeF(hint_font.pointSizeF() * 1.15)
        self.hint.setFont(hint_font)
        palette = self.hint.palette()
        palette.setColor(QPalette.ColorRole.WindowText, palette.color(QPalette.ColorRole.PlaceholderText))
        self.hint.setPalette(palette)
        self.button = QPushButton("Show all", self)
        self.button.clicked.connect(self.show_all)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(self.headline)
        layout.addSpacing(6)
        layout.addWidget(self.hint)
        layout.addSpacing(12)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)

    def set_message(self, message: tuple[str, str], offer_show_all: bool) -> None:
        self.headline.setText(message[0])
        self.hint.setText(message[1])
        self.hint.setVisible(bool(message[1]))
        self.button.setVisible(offer_show_all)

    def text(self) -> str:
        """:returns: what the empty state says, as one line."""
        return " ".join(part for part in (self.headline.text(), self.hint.text()) if part)


class ResultsPanel(QWidget):
    """Filter bar, results table and detail pane, over one results database.

    :param app_context: the app's :class:`core.context.AppContext` (paths, providers).
    """

    #: Paths (list of str) the user wants checked again.
    check_again_requested = Signal(list)
    #: A :class:`RowFilter` ("export what this filter shows") or a list of row dicts
    #: ("export the selection").
    export_requested = Signal(object)
    #: The selected row (a dict), or None when nothing is selected.
    selection_changed = Signal(object)
    #: A sentence about a database that cannot be opened or read.
    error = Signal(str)

    def __init__(self, app_context, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._context = app_context
        self._database: Path | None = None
        self._store: Store | None = None
        self._problem = ""
        self._last_emitted: dict[str, Any] | None = None
        self._refresh_cost = 0.0
        self._columns_chosen = False  # the user picked columns (header menu, or a saved header)
        # A refresh under way in the background: the selection (row, key) and current row to put back.
        self._live: tuple[list[tuple[int, tuple]], dict[str, Any] | None] | None = None

        self.thumbnails = ThumbnailCache(app_context.paths.thumbnails, parent=self)
        self.model = ResultsModel(self.thumbnails, self)
        self.model.read_failed.connect(self.error)
        self.model.refreshed.connect(self._on_refreshed)

        self.filter_bar = FilterBar(self)
        self.filter_bar.changed.connect(self._apply_filter)
        self.filter_bar.export_clicked.connect(lambda: self.export_requested.emit(self.current_filter()))

        self.table = self._make_table()
        self.grid = self._make_grid()
        self.preview: PreviewDialog | None = None
        self.empty = _EmptyState(self)
        self.empty.show_all.connect(self._show_all)
        self._left = QStackedWidget(self)
        self._left.addWidget(self.table)
        self._left.addWidget(self.grid)
        self._left.addWidget(self.empty)
        self.filter_bar.view_changed.connect(self._on_view_changed)
        self.filter_bar.size_slider.valueChanged.connect(self.grid.set_picture_side)

        self.detail = DetailPane(self)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self._left)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([1000, 290])  # at 1280 pixels the table needs every one

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.filter_bar)
        layout.addWidget(self.splitter, 1)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.timeout.connect(self._refresh_in_background)

        self._make_actions()
        self.selection_changed.connect(self.detail.show_row)
        self.selection_changed.connect(self._show_answers)
        self._update_empty_state()

    # --- the database ---------------------------------------------------------------------

    def set_database(self, path: Path) -> None:
        """Show the results in the database at ``path``; an empty state until it exists.

        A database that cannot be opened shows why in the panel and through :attr:`error`.
        """
        self._close_store()
        self._database = Path(path)
        self._problem = ""
        self._open_store()
        self._update_providers()
        self.model.set_store(self._store)
        self._update_empty_state()

    def refresh(self) -> None:
        """Read the rows again, keeping the selection and scroll position where possible."""
        self._refresh_timer.stop()
        started = time.perf_counter()
        if self._store is None:
            if self._database is not None and self._database.is_file():
                self.set_database(self._database)
            return
        _selected, before, current_row = self._selection_snapshot(self.model.row_at)
        self._update_providers()
        self.model.refresh()
        if before is not None:
            self._restore_selection(before, current_row)
        self._update_empty_state()
        self._emit_selection()
        self._refresh_cost = time.perf_counter() - started

    def _selection_snapshot(
        self, row_of: Callable[[int], Mapping[str, Any] | None]
    ) -> tuple[list[int], list[tuple[int, tuple]] | None, Mapping[str, Any] | None]:
        """What a refresh needs to put the selection back: the selected row numbers, then
        (looked up with ``row_of``) the keys of those rows and the current row. A huge
        selection (select all) is not put back, as its rows keep their numbers: then None
        and None."""
        selected = [index.row() for index in self.table.selectionModel().selectedRows()]
        if len(selected) > MAX_RESTORED:
            return selected, None, None
        keys = [(n, row_key(row)) for n in selected if (row := row_of(n)) is not None]
        current = self.table.currentIndex()
        return selected, keys, row_of(current.row()) if current.isValid() else None

    def _refresh_in_background(self) -> None:
        """:meth:`refresh` for a run's results: the rows on screen and the selected ones are
        read in the background, and the selection is put back when they arrive."""
        if self._store is None:
            self.refresh()  # the database the run is making: open it
            return
        started = time.perf_counter()
        # Rows as they are in memory now: reading them here is what this refresh avoids.
        selected, before, current_row = self._selection_snapshot(self.model.loaded_row)
        restore = before is not None
        current = self.table.currentIndex()
        first = max(self.table.rowAt(0), 0)
        last = self.table.rowAt(self.table.viewport().height() - 1)
        last = self.model.rowCount() - 1 if last < 0 else last
        wanted = [*range(first, last + 1), *(selected if restore else ()), *([current.row()] if current.isValid() else [])]
        if not self.model.refresh_in_background(wanted):
            self._refresh_timer.start(REFRESH_INTERVAL_MS)  # one is still under way: try again
            return
        self._live = (before or [], current_row)
        self._refresh_cost = time.perf_counter() - started

    @Slot(float, list)
    def _on_refreshed(self, read_seconds: float, providers: list[str]) -> None:
        if self._live is None:
            return
        before, current_row = self._live
        self._live = None
        started = time.perf_counter()
        self._update_providers(providers)
        self._restore_selection(before, current_row)
        self._update_empty_state()
        self._emit_selection()
        self._refresh_cost += read_seconds + time.perf_counter() - started

    def note_outcomes(self, finished: Sequence[object]) -> None:
        """Images finished during a run: refresh soon, batching with whatever follows.

        :param finished: what finished (outcomes, or their hashes), any number at any rate;
            only whether there is any matters.
        """
        if not finished or self._refresh_timer.isActive():
            return
        # Keep refreshing below REFRESH_SHARE of the UI thread's time, however slow a
        # refresh is on this database.
        interval = max(REFRESH_INTERVAL_MS, int(self._refresh_cost * 1000 / REFRESH_SHARE))
        self._refresh_timer.start(interval)

    def shutdown(self) -> None:
        """Stop background work and close the database (the window is closing)."""
        self._refresh_timer.stop()
        self.filter_bar.cancel_pending()
        self.thumbnails.shutdown()
        self.detail.shutdown()
        self.model.set_store(None)
        self._close_store()

    # --- filter and selection -------------------------------------------------------------

    def current_filter(self) -> RowFilter:
        """:returns: the filter the table shows (with any search text still being typed)."""
        return self.filter_bar.row_filter()

    def selected_rows(self) -> list[dict[str, Any]]:
        """:returns: the selected rows, in table order."""
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        return [row for row in (self.model.row_at(n) for n in rows) if row is not None]

    def focus_search(self) -> None:
        self.filter_bar.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_bar.search.selectAll()

    # --- state ----------------------------------------------------------------------------

    def save_state(self, settings: QSettings) -> None:
        """Keep column widths and order, sort, splitter and filter in ``settings``."""
        settings.setValue("results/header", self.table.horizontalHeader().saveState())
        settings.setValue("results/splitter", self.splitter.saveState())
        settings.setValue("results/columns_chosen", self._columns_chosen)
        settings.setValue("results/view", "grid" if self.grid_shown() else "table")
        settings.setValue("results/grid_size", self.filter_bar.size_slider.value())
        settings.setValue("results/quick_filter", self.filter_bar.quick())
        settings.setValue("results/provider", self.filter_bar.provider_id() or "")

    def restore_state(self, settings: QSettings) -> None:
        """Bring back what :meth:`save_state` kept; missing or stale values are ignored."""
        header = self.table.horizontalHeader()
        header_state = settings.value("results/header")
        if header_state is not None and header.restoreState(header_state):
            self._fix_header_modes(header)
            self._columns_chosen = str(settings.value("results/columns_chosen", "false")).lower() == "true"
            self.model.sort(header.sortIndicatorSection(), header.sortIndicatorOrder())
        splitter_state = settings.value("results/splitter")
        if splitter_state is not None:
            self.splitter.restoreState(splitter_state)
        try:
            self.filter_bar.size_slider.setValue(int(settings.value("results/grid_size", FIRST_CELL)))
        except (TypeError, ValueError):
            pass
        self.show_grid(settings.value("results/view") == "grid")
        self.filter_bar.blockSignals(True)
        quick = settings.value("results/quick_filter", "all")
        self.filter_bar.set_quick(quick if quick in QUICK_FILTERS else "all")
        # The search text is not brought back: a word typed last week would hide rows unseen.
        self.filter_bar.set_provider_id(settings.value("results/provider") or None)
        self.filter_bar.flush()
        self.filter_bar.blockSignals(False)
        self._update_providers()  # the saved header may hide or show the provider column
        self._apply_filter()

    # --- building -------------------------------------------------------------------------

    def _make_table(self) -> QTableView:
        table = QTableView(self)
        table.setModel(self.model)
        table.setSortingEnabled(True)
        table.sortByColumn(COLUMN_INDEX["folder"], Qt.SortOrder.AscendingOrder)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        table.setAlternatingRowColors(True)
        table.setShowGrid(False)
        table.setWordWrap(False)
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # keeps both ends of long paths
        table.setIconSize(THUMBNAIL_SIZE)
        table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.customContextMenuRequested.connect(self._show_context_menu)
        table.doubleClicked.connect(lambda _: self._open_files())
        table.setItemDelegateForColumn(COLUMN_INDEX["thumbnail"], _ThumbnailDelegate(table))
        table.setItemDelegateForColumn(COLUMN_INDEX["problems"], _SentenceDelegate(table))
        vertical = table.verticalHeader()
        vertical.setVisible(False)
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(ROW_HEIGHT)
        header = table.horizontalHeader()
        header.setSectionsMovable(True)
        header.setHighlightSections(False)
        # Problems takes the spare width (it holds the sentences); the last column does not.
        header.setStretchLastSection(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for n, column in enumerate(COLUMNS):
            header.resizeSection(n, column.width)
        self._fix_header_modes(header)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._show_header_menu)
        for key in HIDDEN_AT_FIRST:
            table.setColumnHidden(COLUMN_INDEX[key], True)
        table.selectionModel().selectionChanged.connect(lambda *_: self._emit_selection())
        table.selectionModel().currentChanged.connect(lambda *_: self._emit_selection())
        return table

    def _fix_header_modes(self, header: QHeaderView) -> None:
        """The thumbnail column keeps its size, Problems stretches, Status fits its longest word."""
        header.setSectionResizeMode(COLUMN_INDEX["thumbnail"], QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(COLUMN_INDEX["problems"], QHeaderView.ResizeMode.Stretch)
        status = COLUMN_INDEX["status"]
        header.resizeSection(status, max(header.sectionSize(status), status_width(header)))

    @Slot(QPoint)
    def _show_header_menu(self, position: QPoint) -> None:
        menu = header_menu(self.table, COLUMNS, self._on_column_chosen)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.header_menu = menu
        menu.popup(self.table.horizontalHeader().mapToGlobal(position))

    def _on_column_chosen(self) -> None:
        self._columns_chosen = True  # the user's choice now beats showing Provider by itself

    def _make_grid(self) -> ResultsGrid:
        grid = ResultsGrid(self)
        grid.setModel(self.model)
        grid.setModelColumn(COLUMN_INDEX["thumbnail"])
        grid.setSelectionModel(self.table.selectionModel())  # one selection, whichever face shows
        grid.set_picture_side(FIRST_CELL)
        grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        grid.customContextMenuRequested.connect(self._show_context_menu)
        grid.doubleClicked.connect(lambda _: self.open_preview())
        grid.preview_requested.connect(self.open_preview)
        return grid

    def grid_shown(self) -> bool:
        return self.filter_bar.grid_button.defaultAction().isChecked()

    def show_grid(self, grid: bool) -> None:
        """Show the thumbnails (True) or the table (False), keeping the selection."""
        (self.filter_bar.grid_button if grid else self.filter_bar.table_button).defaultAction().setChecked(True)
        self._on_view_changed()

    def _on_view_changed(self) -> None:
        grid = self.grid_shown()
        self.filter_bar.size_slider.setVisible(grid)
        self._update_empty_state()
        view = self.grid if grid else self.table
        current = self.table.currentIndex()
        if current.isValid():
            view.scrollTo(current)
        if self._left.currentWidget() is view:
            view.setFocus(Qt.FocusReason.OtherFocusReason)

    def open_preview(self) -> None:
        """The current photo full size, with next and previous (Space or double-click on the grid)."""
        current = self.table.currentIndex()
        row = self.model.row_at(current.row()) if current.isValid() else None
        if row is None:
            return
        if self.preview is None:
            self.preview = PreviewDialog(row["path"], row["file"], self._step_preview, self)
            self.preview.finished.connect(self._on_preview_closed)
            self.preview.open()
        else:
            self.preview.show_photo(row["path"], row["file"])

    def _step_preview(self, delta: int) -> tuple[str, str] | None:
        current = self.table.currentIndex()
        target = (current.row() if current.isValid() else 0) + delta
        row = self.model.row_at(target) if 0 <= target < self.model.rowCount() else None
        if row is None:
            return None
        index = self.model.index(target, COLUMN_INDEX["thumbnail"])
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.grid.scrollTo(index)
        return row["path"], row["file"]

    def _on_preview_closed(self) -> None:
        preview, self.preview = self.preview, None
        if preview is not None:
            preview.deleteLater()

    def _make_actions(self) -> None:
        def action(text: str, slot, shortcut=None, tip: str = "") -> QAction:
            act = QAction(text, self)
            act.triggered.connect(slot)
            if shortcut is not None:
                act.setShortcut(shortcut)
                act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                self.table.addAction(act)
                self.grid.addAction(act)
            act.setStatusTip(tip)
            return act

        self.action_open = action("Open", self._open_files, QKeySequence(Qt.Key.Key_Return), "Open with the default app")
        self.action_show_in_folder = action("Show in folder", self._show_in_folder, tip="Open the folder that holds it")
        self.action_copy_paths = action("Copy path", self._copy_paths, QKeySequence.StandardKey.Copy, "Copy the full path")
        self.action_check_again = action("Check again", self._check_again, tip="Check with the provider again, even if known")
        self.action_export_selection = action("Export selection…", self._export_selection, tip="Export the selected rows")
        find = QAction("Search", self)
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.triggered.connect(self.focus_search)
        self.addAction(find)

    def context_menu(self) -> QMenu:
        """The table's context menu for the current selection."""
        count = len(self.table.selectionModel().selectedRows())
        plural = count > 1
        self.action_copy_paths.setText("Copy paths" if plural else "Copy path")
        self.action_check_again.setText(f"Check {count:,} again" if plural else "Check again")
        self.action_export_selection.setText(f"Export {count:,} rows…" if plural else "Export selection…")
        for act in (self.action_open, self.action_show_in_folder, self.action_copy_paths,
                    self.action_check_again, self.action_export_selection):  # fmt: skip
            act.setEnabled(count > 0)
        menu = QMenu(self)
        menu.addAction(self.action_open)
        menu.addAction(self.action_show_in_folder)
        menu.addAction(self.action_copy_paths)
        menu.addSeparator()
        menu.addAction(self.action_check_again)
        menu.addAction(self.action_export_selection)
        return menu

    # --- slots ----------------------------------------------------------------------------

    @Slot(QPoint)
    def _show_context_menu(self, position: QPoint) -> None:
        view = self.grid if self.grid_shown() else self.table
        index = view.indexAt(position)
        if index.isValid() and not self.table.selectionModel().isRowSelected(index.row(), QModelIndex()):
            self.table.selectRow(index.row())
        menu = self.context_menu()
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(view.viewport().mapToGlobal(position))

    def _apply_filter(self) -> None:
        row_filter = self.current_filter()
        if row_filter == self.model.row_filter():
            return
        current = self.model.row_at(self.table.currentIndex()) if self.table.currentIndex().isValid() else None
        self.model.set_filter(row_filter)
        self.table.scrollToTop()
        if current is not None:
            self.model.row_at(0)  # the first page, where find_loaded looks
            self._restore_selection([], current)
        self._update_empty_state()
        self._emit_selection()

    def _show_all(self) -> None:
        self.filter_bar.blockSignals(True)
        self.filter_bar.set_quick("all")
        self.filter_bar.search.clear()
        self.filter_bar.set_provider_id(None)
        self.filter_bar.set_scope(None)
        self.filter_bar.flush()
        self.filter_bar.blockSignals(False)
        self._apply_filter()

    def _emit_selection(self) -> None:
        selection = self.table.selectionModel()
        current = self.table.currentIndex()
        row = None
        if current.isValid() and selection.isRowSelected(current.row(), QModelIndex()):
            row = self.model.row_at(current)
        elif selection.hasSelection():
            rows = selection.selectedRows()
            row = self.model.row_at(rows[0]) if rows else None
        if row != self._last_emitted:
            self._last_emitted = row
            self.selection_changed.emit(row)

    def _open_files(self) -> None:
        for row in self.selected_rows()[:MAX_OPEN]:
            problem = open_path(file_path(row["path"]))
            if problem:
                self.error.emit(problem)
                return

    def _show_in_folder(self) -> None:
        folders: dict[str, str] = {}
        for row in self.selected_rows():
            path = file_path(row["path"])
            folders.setdefault(os.path.dirname(path), path)
        for folder, path in list(folders.items())[:MAX_OPEN]:
            problem = reveal_in_folder(folder, path)
            if problem:
                self.error.emit(problem)
                return

    def _copy_paths(self) -> None:
        paths = [row["path"] for row in self.selected_rows()]
        if paths:
            QGuiApplication.clipboard().setText("\n".join(paths))

    def _check_again(self) -> None:
        paths = list(dict.fromkeys(file_path(row["path"]) for row in self.selected_rows()))
        if paths:
            self.check_again_requested.emit(paths)

    def _export_selection(self) -> None:
        rows = self.selected_rows()
        if rows:
            self.export_requested.emit(rows)

    # --- internals ------------------------------------------------------------------------

    def _show_answers(self, row: Mapping[str, Any] | None) -> None:
        """Every provider's answer for the selected image, for the detail pane to set side by side."""
        rows: list[dict[str, Any]] = []
        if row is not None and row.get("sha256") and self._store is not None:
            found = self._store.query_rows(RowFilter(shas=(row["sha256"],)), order_by="provider")
            rows = list({r["provider"]: r for r in found}.values())
        self.detail.show_answers(rows)

    def _open_store(self) -> None:
        path = self._database
        if path is None or not path.is_file():
            return
        try:
            self._store = Store.open_readonly(path)
        except StoreError:
            # An older schema needs upgrading once, which a read-only store cannot do.
            try:
                Store(path).close()
                self._store = Store.open_readonly(path)
            except StoreError as exc:
                self._problem = str(exc)
                self.error.emit(self._problem)

    def _close_store(self) -> None:
        if self._store is not None:
            self.model.set_store(None)
            self._store.close()
            self._store = None

    def _update_providers(self, ids: list[str] | None = None) -> None:
        """Offer the providers with results: ``ids``, or those in the database when None."""
        providers: list[tuple[str, str]] = []
        if self._store is not None:
            if ids is None:
                try:
                    ids = self._store.providers()
                except sqlite3.Error as exc:
                    log.warning("Listing providers failed: %s", exc)
                    ids = []
            known = self._context.registry.providers
            providers = [(pid, known[pid].label if pid in known else pid) for pid in ids]
        self.filter_bar.set_providers(providers)
        if not self._columns_chosen:
            self.table.setColumnHidden(COLUMN_INDEX["provider"], len(providers) <= 1)

    def _update_empty_state(self) -> None:
        count = self.model.rowCount()
        self.filter_bar.export.setEnabled(count > 0)
        # Nothing to select: the detail pane would only repeat that.
        self.detail.setVisible(count > 0)
        if count:
            self.filter_bar.count.setText(f"{count:,} result{'s' if count != 1 else ''}")
            self._left.setCurrentWidget(self.grid if self.grid_shown() else self.table)
            return
        self.filter_bar.count.setText("")
        if self._problem:
            self.empty.set_message(("The results cannot be shown.", self._problem), offer_show_all=False)
        elif self.current_filter() != RowFilter() and self.model.any_rows():
            self.empty.set_message(EMPTY_FILTER, offer_show_all=True)
        else:
            self.empty.set_message(EMPTY_DATABASE, offer_show_all=False)
        self._left.setCurrentWidget(self.empty)

    def _restore_selection(self, selected: list[tuple[int, tuple]], current: Mapping[str, Any] | None) -> None:
        """Select again the rows with these keys if they moved; rows that did not move stay selected."""
        selection = self.table.selectionModel()
        moved = False
        targets: list[int] = []
        for old_row, key in selected:
            now = self.model.row_at(old_row)
            if now is not None and is_row(key, now):
                targets.append(old_row)
                continue
            moved = True
            found = self.model.find_loaded(key)
            if found is not None:
                targets.append(found)
        if moved:
            chosen = QItemSelection()
            last = self.model.columnCount() - 1
            for row in targets:
                chosen.select(self.model.index(row, 0), self.model.index(row, last))
            selection.select(chosen, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        if current is not None:
            index = self.table.currentIndex()
            now = self.model.row_at(index) if index.isValid() else None
            if now is None or not is_row(row_key(current), now):
                found = self.model.find_loaded(row_key(current))
                if found is not None:
                    flags = QItemSelectionModel.SelectionFlag.NoUpdate
                    if not selected:
                        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
                    selection.setCurrentIndex(self.model.index(found, COLUMN_INDEX["file"]), flags)


def reveal_in_folder(folder: str, path: str) -> str:
    """Show ``path`` in the system's file manager: selected where the platform allows it
    (Finder, Explorer), else its folder opened (:func:`desktop.opener.open_path`).

    :returns: "" when shown, else the sentence saying why not.
    """
    if sys.platform == "darwin" and QProcess.startDetached("open", ["-R", path]):
        return ""
    if sys.platform == "win32" and QProcess.startDetached("explorer", ["/select,", os.path.normpath(path)]):
        return ""
    return open_path(folder)
