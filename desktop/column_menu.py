"""The results table's header menu: which columns show, and how wide Status must be.

Right-clicking a column header lists every column with a check box, Provider among them, so
no column is ever hidden for good.
"""

from __future__ import annotations

from typing import Callable, Sequence

from PySide6.QtWidgets import QMenu, QTableView, QWidget

from core.words import STATUS_LABELS

#: Room around a cell's text: the status dot, the style's margins and the header's sort arrow.
_CELL_PADDING = 56


def status_width(widget: QWidget) -> int:
    """:returns: the width at which every status word ("Not checked") shows whole in ``widget``'s font."""
    metrics = widget.fontMetrics()
    return max(metrics.horizontalAdvance(label) for label in STATUS_LABELS.values()) + _CELL_PADDING


def header_menu(table: QTableView, columns: Sequence, on_change: Callable[[], None]) -> QMenu:
    """A menu with a check box per titled column of ``table``; the last visible one cannot be unchecked.

    :param columns: the model's columns (``key``, ``title``), in model order.
    :param on_change: called after the user shows or hides a column.
    """
    menu = QMenu(table)
    visible = [n for n in range(len(columns)) if not table.isColumnHidden(n) and columns[n].title]
    for n, column in enumerate(columns):
        if not column.title:
            continue  # the thumbnail has no name to tick
        action = menu.addAction(column.title)
        action.setObjectName(column.key)
        action.setCheckable(True)
        action.setChecked(not table.isColumnHidden(n))
        action.setEnabled(not (len(visible) == 1 and visible[0] == n))

        def toggle(checked: bool, n: int = n) -> None:
            table.setColumnHidden(n, not checked)
            if checked and table.columnWidth(n) < 20:
                table.setColumnWidth(n, columns[n].width)
            on_change()

        action.toggled.connect(toggle)
    return menu
