"""Help → Keyboard shortcuts: every shortcut the window answers, read from its actions so
the list can never disagree with the keys."""

from __future__ import annotations

from typing import Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

#: Keys that are no action of their own (a QShortcut, or the table's own keys).
EXTRA_SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Esc", "Clear the search, or close the message or pane that is open (never stops a run)"),
    ("Ctrl+F", "Search names and folders"),
    ("Return", "Open the selected photos"),
    ("Ctrl+C", "Copy the selected photos' paths"),
)


def shortcut_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """``(keys, what they do)`` for each action with a shortcut, then the fixed extras."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for action in actions:
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty()]
        if not keys:
            continue
        what = action.text().replace("&", "").rstrip("…")
        if what in seen:
            continue
        seen.add(what)
        rows.append((", ".join(keys), what))
    return rows + list(EXTRA_SHORTCUTS)


class ShortcutsDialog(QDialog):
    def __init__(self, rows: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = QTableWidget(len(rows), 2, self)
        self.table.setHorizontalHeaderLabels(["Keys", "Does"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for n, (keys, what) in enumerate(rows):
            self.table.setItem(n, 0, QTableWidgetItem(keys))
            self.table.setItem(n, 1, QTableWidgetItem(what))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons, 0, Qt.AlignmentFlag.AlignRight)
        self.resize(560, 440)

    def rows(self) -> list[tuple[str, str]]:
        return [(self.table.item(n, 0).text(), self.table.item(n, 1).text()) for n in range(self.table.rowCount())]
