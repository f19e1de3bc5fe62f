"""The queue: the folders and files the next run will look at, each with its counts.

Counts (images found, invalid, already checked with the selected provider) come from a
background count per queued item, :func:`core.preview.count_images`, which decides as a
run would; this module only shows them. The count reports every ``CHUNK`` files, so a big
folder fills in progressively, and it never writes to the store (the runner's thread is
its only writer).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Iterable

from PySide6.QtCore import QModelIndex, QObject, QRect, QRectF, QSize, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QFont, QIcon, QKeySequence, QPainter, QPalette, QPen, QShortcut, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.context import AppContext
from core.models import Constraints
from core.preview import CHUNK, CountJob, ProbeCache, QueueCounts, count_images  # noqa: F401  (CHUNK: tests)

from .icons import icon

log = logging.getLogger(__name__)


PATH_ROLE = Qt.ItemDataRole.UserRole + 1
COUNTS_ROLE = Qt.ItemDataRole.UserRole + 2


class _CountRelay(QObject):
    counted = Signal(int, object)  # job id, QueueCounts


class _QueueItemDelegate(QStyledItemDelegate):
    """Two lines per item: the name in bold, then the counts (or the folder it is in) dimmed."""

    PADDING = 6

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        height = option.fontMetrics.height()
        return QSize(200, height * 2 + self.PADDING * 2 + 2)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        self.initStyleOption(option, index)
        style = option.widget.style() if option.widget else QApplication.style()
        text_option = QStyleOptionViewItem(option)
        text_option.text = ""
        text_option.icon = QIcon()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, text_option, painter, option.widget)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        group = QPalette.ColorGroup.Active if option.state & QStyle.StateFlag.State_Active else QPalette.ColorGroup.Inactive
        fg = option.palette.color(group, QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        dim = option.palette.color(group, QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.PlaceholderText)
        rect = option.rect.adjusted(self.PADDING, self.PADDING, -self.PADDING, -self.PADDING)
        icon_size = 20
        option.icon.paint(painter, QRect(rect.left(), rect.top() + 2, icon_size, icon_size),
                          mode=QIcon.Mode.Selected if selected else QIcon.Mode.Normal)
        text_rect = rect.adjusted(icon_size + 8, 0, 0, 0)
        line = option.fontMetrics.height()
        painter.save()
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(fg)
        name = index.data(Qt.ItemDataRole.DisplayRole)
        painter.drawText(QRect(text_rect.left(), text_rect.top(), text_rect.width(), line), Qt.AlignmentFlag.AlignVCenter,
                         painter.fontMetrics().elidedText(name, Qt.TextElideMode.ElideMiddle, text_rect.width()))
        painter.setFont(option.font)
        painter.setPen(dim)
        counts: QueueCounts | None = index.data(COUNTS_ROLE)
        detail = counts.describe() if counts else "Counting…"
        painter.drawText(QRect(text_rect.left(), text_rect.top() + line + 2, text_rect.width(), line), Qt.AlignmentFlag.AlignVCenter,
                         option.fontMetrics.elidedText(detail, Qt.TextElideMode.ElideRight, text_rect.width()))
        painter.restore()


class _EmptyState(QWidget):
    """What a new user sees: where to drop photos, and a button for those who would rather click."""

    def __init__(self, add_folder_action, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        picture = QLabel()
        picture.setPixmap(icon("add-folder").pixmap(48, 48, QIcon.Mode.Disabled))
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel("Drop a folder of photos here")
        title_font = title.font()
        title_font.setPointSizeF(title_font.pointSizeF() * 1.15)
        title_font.setBold(True)
        title.setFont(title_font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title.setWordWrap(True)
        hint = QLabel("Kling Preflight checks every photo in it against Kling's rules before you spend credits.")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)
        hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.add_button = QPushButton(add_folder_action.icon(), "Add folder…")
        self.add_button.clicked.connect(add_folder_action.trigger)
        button_row = QHBoxLayout()
        button_row.addStretch(1)
        button_row.addWidget(self.add_button)
        button_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.addStretch(1)
        layout.addWidget(picture)
        layout.addSpacing(6)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addSpacing(10)
        layout.addLayout(button_row)
        layout.addStretch(1)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(self.palette().color(QPalette.ColorRole.Mid), 2, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(1, 1, -1, -1), 10, 10)
        painter.end()


class QueuePanel(QWidget):
    """The list of queued folders and files, with the recursive toggle and each item's counts.

    Signals: ``changed()`` when items are added or removed or the toggle flips;
    ``counts_changed()`` whenever a count moves.
    """

    changed = Signal()
    counts_changed = Signal()
    #: The user clicked a queued item: its path (show only its photos).
    item_chosen = Signal(str)
    #: The queue was emptied: the paths it held (so it can be undone).
    cleared = Signal(list)

    def __init__(self, app_context: AppContext, add_folder_action, add_files_action,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._context = app_context
        self._db_path = app_context.paths.database
        self._provider_id = app_context.default_provider_id()
        self._cache = ProbeCache()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._relay = _CountRelay(self)
        self._relay.counted.connect(self._on_counted)
        self._job_ids = itertools.count(1)
        self._jobs: dict[str, tuple[int, threading.Event]] = {}  # path -> current job

        self.model = QStandardItemModel(self)
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setItemDelegate(_QueueItemDelegate(self.view))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setUniformItemSizes(True)
        self.view.selectionModel().selectionChanged.connect(self._update_buttons)
        self.view.clicked.connect(lambda index: self.item_chosen.emit(index.data(PATH_ROLE)))
        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.view)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(self.remove_selected)

        self.empty_state = _EmptyState(add_folder_action)
        self._stack = QStackedWidget()
        self._stack.addWidget(self.empty_state)
        self._stack.addWidget(self.view)

        title = QLabel("Queue")
        title_font = title.font()
        title_font.setBold(True)
        title.setFont(title_font)
        self.remove_button = self._tool_button("remove", "Remove the selected items from the queue (Delete)", self.remove_selected)
        self.clear_button = self._tool_button("clear", "Empty the queue", self.clear)
        header = QHBoxLayout()
        header.setSpacing(2)
        header.addWidget(title)
        header.addStretch(1)
        for action in (add_folder_action, add_files_action):
            button = QToolButton()
            button.setDefaultAction(action)
            button.setAutoRaise(True)
            header.addWidget(button)
        header.addWidget(self.remove_button)
        header.addWidget(self.clear_button)

        self.recursive_box = QCheckBox("Include subfolders")
        self.recursive_box.setChecked(True)
        self.recursive_box.setToolTip("Also look inside the folders within each queued folder.")
        self.recursive_box.toggled.connect(self._on_recursive_toggled)

        self.totals_label = QLabel()
        self.totals_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.totals_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self._stack, 1)
        layout.addWidget(self.recursive_box)
        layout.addWidget(self.totals_label)
        self._refresh_view()

    def _tool_button(self, icon_name: str, tip: str, slot) -> QToolButton:
        button = QToolButton()
        button.setIcon(icon(icon_name))
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.clicked.connect(slot)
        return button

    # -- the queue ------------------------------------------------------------------------

    def add_paths(self, paths: Iterable[str | os.PathLike]) -> list[str]:
        """Queue folders and files; ones already queued or gone are left out.

        :param paths: folders or files.
        :returns: the paths added (absolute).
        """
        added = []
        queued = set(self.roots())
        for raw in paths:
            path = os.path.abspath(os.fspath(raw))
            if path in queued or not os.path.exists(path):
                continue
            queued.add(path)
            is_folder = os.path.isdir(path)
            item = QStandardItem(Path(path).name or path)
            item.setData(path, PATH_ROLE)
            item.setData(None, COUNTS_ROLE)
            item.setIcon(icon("folder" if is_folder else "image"))
            item.setToolTip(path)
            self.model.appendRow(item)
            self._start_count(item)
            added.append(path)
        if added:
            self._refresh_view()
            self.changed.emit()
        return added

    def roots(self) -> list[str]:
        """:returns: the queued paths, in the order they were added."""
        return [self.model.item(row).data(PATH_ROLE) for row in range(self.model.rowCount())]

    def recursive(self) -> bool:
        return self.recursive_box.isChecked()

    def set_recursive(self, recursive: bool) -> None:
        self.recursive_box.setChecked(recursive)

    def remove_selected(self) -> None:
        rows = sorted({index.row() for index in self.view.selectionModel().selectedIndexes()}, reverse=True)
        for row in rows:
            self._cancel(self.model.item(row).data(PATH_ROLE))
            self.model.removeRow(row)
        if rows:
            self._refresh_view()
            self.changed.emit()

    def clear(self) -> None:
        if not self.model.rowCount():
            return
        emptied = self.roots()
        for path in emptied:
            self._cancel(path)
        self.model.clear()
        self._cache.clear()
        self._refresh_view()
        self.changed.emit()
        self.cleared.emit(emptied)

    def counts_for(self, path: str) -> QueueCounts | None:
        """:returns: the counts of a queued path so far, or None before the first report."""
        item = self._item(os.path.abspath(path))
        return item.data(COUNTS_ROLE) if item else None

    def totals(self) -> QueueCounts:
        """:returns: the counts of every item added up (``complete`` once every count is)."""
        total = QueueCounts(complete=True)
        for row in range(self.model.rowCount()):
            total = total + (self.model.item(row).data(COUNTS_ROLE) or QueueCounts())
        return total

    # -- what the counts are measured against ---------------------------------------------

    def set_provider(self, provider_id: str) -> None:
        """Count against this provider's rules and results from now on."""
        if provider_id != self._provider_id:
            self._provider_id = provider_id
            self.rescan()

    def set_database(self, db_path: Path) -> None:
        if Path(db_path) != self._db_path:
            self._db_path = Path(db_path)
            self.rescan()

    def rescan(self) -> None:
        """Count every item again (after a run, or when the provider changed)."""
        for row in range(self.model.rowCount()):
            self._start_count(self.model.item(row))

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Abandon every count and wait for the scanning threads to end."""
        for _, cancel in self._jobs.values():
            cancel.set()
        self._jobs.clear()
        self._pool.clear()
        self._pool.waitForDone(timeout_ms)

    # -- background counting ----------------------------------------------------------------

    def _start_count(self, item: QStandardItem) -> None:
        path = item.data(PATH_ROLE)
        self._cancel(path)
        job_id = next(self._job_ids)
        cancel = threading.Event()
        self._jobs[path] = (job_id, cancel)
        cls = self._provider_class()
        job = CountJob(path, self.recursive(), self._db_path, self._provider_id, cls.constraints if cls else Constraints())
        cache, relay = self._cache, self._relay

        def work() -> None:
            def report(counts: QueueCounts) -> None:
                relay.counted.emit(job_id, counts)

            try:
                final = count_images(job, cache, cancel, report)
            except Exception:  # a bug: log it and say so on the item rather than count forever
                log.exception("Counting %s failed", job.root)
                final = QueueCounts(complete=True, error="Could not be counted; see the log.")
            if final is not None:
                report(final)

        self._pool.start(work)

    def _provider_class(self):
        return self._context.registry.providers.get(self._provider_id)

    def _cancel(self, path: str) -> None:
        job = self._jobs.pop(path, None)
        if job is not None:
            job[1].set()

    @Slot(int, object)
    def _on_counted(self, job_id: int, counts: QueueCounts) -> None:
        for path, (current, _) in self._jobs.items():
            if current == job_id:
                item = self._item(path)
                if item is not None:
                    item.setData(counts, COUNTS_ROLE)
                    cls = self._provider_class()
                    label = cls.label if cls else self._provider_id
                    item.setToolTip(f"{path}\n\n{counts.explain(label)}")
                    self._update_totals()
                    self.counts_changed.emit()
                return

    # -- view -------------------------------------------------------------------------------

    def _item(self, path: str) -> QStandardItem | None:
        for row in range(self.model.rowCount()):
            item = self.model.item(row)
            if item.data(PATH_ROLE) == path:
                return item
        return None

    @Slot(bool)
    def _on_recursive_toggled(self, _checked: bool) -> None:
        self.rescan()
        self.changed.emit()

    def _refresh_view(self) -> None:
        empty = self.model.rowCount() == 0
        self._stack.setCurrentWidget(self.empty_state if empty else self.view)
        self._update_buttons()
        self._update_totals()

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(self.view.selectionModel().hasSelection())
        self.clear_button.setEnabled(self.model.rowCount() > 0)

    def _update_totals(self) -> None:
        rows = self.model.rowCount()
        if rows < 2:
            self.totals_label.setText("")
            self.totals_label.setVisible(False)
            return
        self.totals_label.setVisible(True)
        self.totals_label.setText(f"{rows} items: {self.totals().describe()}")
