"""The results as a grid of thumbnails, the table's other face (one toggle, a size slider).

The grid is a QListView over the table's own model (its thumbnail column) and shares the
table's selection model, so the selection, the detail pane, the context menu, Return and
Ctrl+C are the same whichever face shows; arrow keys, Shift and Ctrl select as in the table.
Thumbnails come from the same lazy :class:`~desktop.thumbnails.ThumbnailCache` (a cell asks
only while it is painted), and the view lays out uniform cells without asking the model about
each row, so 100,000 rows scroll as the table does (``bench/gui.py`` measures both).

Each cell shows the status dot and the three verdicts; once the cells are large enough, the
face boxes too. Space or a double-click opens :class:`PreviewDialog`, full size, with next and
previous.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QEvent, QModelIndex, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImageReader, QKeyEvent, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from .face_overlay import FACE_BOX_COLOUR
from .results_model import COLUMN_INDEX, flag_colour, flag_glyph

#: The slider's range and first value: the side of a cell's picture, in pixels.
MIN_CELL, MAX_CELL, FIRST_CELL = 72, 256, 128
#: From this size on, face boxes are drawn on the thumbnails.
FACES_FROM = 160
_CAPTION_LINES = 2
_VERDICTS = ("verdict_avatar", "verdict_tryon", "verdict_asset")
_ON_DARK = QPalette(QColor("#202020"))


class _CellDelegate(QStyledItemDelegate):
    """Paints one photo: the thumbnail fitted into a square, the status dot, the verdicts and
    the file name, and, when large, the face boxes."""

    def __init__(self, grid: "ResultsGrid") -> None:
        super().__init__(grid)
        self._grid = grid

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802 - Qt's name
        return self._grid.cell_size()

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        model = index.model()
        row = model.painting_row(index.row())  # never waits for SQLite while painting
        style = option.widget.style()
        opt = QStyleOptionViewItem(option)
        opt.text, opt.features = "", opt.features & ~QStyleOptionViewItem.ViewItemFeature.HasDecoration
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, option.widget)
        side = self._grid.picture_side()
        square = QRect(option.rect.x() + (option.rect.width() - side) // 2, option.rect.y() + 4, side, side)
        icon = index.data(Qt.ItemDataRole.DecorationRole)
        picture = QRect()
        if icon is not None and not icon.isNull():
            pixmap = icon.pixmap(QSize(side, side), option.widget.devicePixelRatioF())
            size = pixmap.deviceIndependentSize().toSize().scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio)
            picture = QRect(0, 0, size.width(), size.height())
            picture.moveCenter(square.center())
            painter.drawPixmap(picture, pixmap)
        if row is None:
            return
        if side >= FACES_FROM and picture.isValid():
            self._paint_faces(painter, picture, row)
        status_icon = model.index(index.row(), COLUMN_INDEX["status"]).data(Qt.ItemDataRole.DecorationRole)
        if status_icon is not None:
            status_icon.paint(painter, QRect(square.left() + 2, square.top() + 2, 16, 16))
        self._paint_verdicts(painter, square, row)
        text_rect = QRect(option.rect.left() + 4, square.bottom() + 4, option.rect.width() - 8, option.fontMetrics.height())
        name = option.fontMetrics.elidedText(row.get("file") or "", Qt.TextElideMode.ElideMiddle, text_rect.width())
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(option.palette.color(option.palette.ColorRole.HighlightedText if selected else option.palette.ColorRole.Text))
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, name)

    def _paint_verdicts(self, painter: QPainter, square: QRect, row: dict[str, Any]) -> None:
        """Three small badges in the top right corner: avatar, try-on, subject."""
        badge = 16
        x = square.right() - len(_VERDICTS) * (badge + 2)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for key in _VERDICTS:
            rect = QRectF(x, square.top() + 2, badge, badge)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 140))
            painter.drawRoundedRect(rect, 3, 3)
            painter.setPen(flag_colour(row.get(key), _ON_DARK))  # the badge is dark on any theme
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, flag_glyph(row.get(key)))
            x += badge + 2
        painter.restore()

    def _paint_faces(self, painter: QPainter, picture: QRect, row: dict[str, Any]) -> None:
        width, height = row.get("width") or 0, row.get("height") or 0
        faces = row.get("faces") or ()
        if not (width and height and faces):
            return
        # Boxes are in stored pixels; the thumbnail is upright. A turned photo (its upright
        # aspect the other way round) would need its EXIF orientation, which the row lacks:
        # its boxes are left to the detail pane rather than drawn in the wrong place.
        if (width > height) != (picture.width() > picture.height()) and abs(width - height) > 2:
            return
        sx, sy = picture.width() / width, picture.height() / height
        painter.save()
        painter.setPen(QPen(FACE_BOX_COLOUR, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for face in faces:
            box = QRectF(picture.left() + face["x"] * sx, picture.top() + face["y"] * sy, face["width"] * sx, face["height"] * sy)
            painter.drawRect(box)
        painter.restore()


class ResultsGrid(QListView):
    """Thumbnails in rows that wrap; see the module's docstring.

    Signals: ``preview_requested()`` (Space on the grid).
    """

    preview_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._side = FIRST_CELL
        self.setViewMode(QListView.ViewMode.ListMode)  # the static layout: no per-item positions
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)  # one size hint for all: nothing read per row to lay out
        self.setLayoutMode(QListView.LayoutMode.SinglePass)
        self.setSpacing(4)
        self.setMovement(QListView.Movement.Static)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)  # whole rows, as the table
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setItemDelegate(_CellDelegate(self))

    def set_picture_side(self, side: int) -> None:
        self._side = max(MIN_CELL, min(MAX_CELL, side))
        self.setGridSize(self.cell_size() + QSize(self.spacing(), self.spacing()))
        self.doItemsLayout()

    def picture_side(self) -> int:
        return self._side

    def cell_size(self) -> QSize:
        return QSize(self._side + 12, self._side + 8 + self.fontMetrics().height() * (_CAPTION_LINES - 1) + 8)

    def event(self, event: QEvent) -> bool:
        # Space is Pause's key elsewhere in the window; here it opens the preview.
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) and event.key() == Qt.Key.Key_Space:
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Space and not event.modifiers():
            self.preview_requested.emit()
            return
        super().keyPressEvent(event)


class PreviewDialog(QDialog):
    """One photo at full size (fitted to the dialog), upright, with previous and next.

    :param step: called with -1 or +1; returns the next photo's path and title, or None at an end.
    """

    def __init__(self, path: str, title: str, step: Callable[[int], tuple[str, str] | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._step = step
        self._pixmap = QPixmap()
        self.image = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(200, 200)
        self.caption = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.previous_button = QPushButton("← Previous")
        self.next_button = QPushButton("Next →")
        self.previous_button.clicked.connect(lambda: self.go(-1))
        self.next_button.clicked.connect(lambda: self.go(1))
        for button in (self.previous_button, self.next_button):
            button.setAutoDefault(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.previous_button)
        buttons.addStretch(1)
        buttons.addWidget(self.caption)
        buttons.addStretch(1)
        buttons.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.image, 1)
        layout.addLayout(buttons)
        self.resize(1000, 760)
        self.show_photo(path, title)

    def show_photo(self, path: str, title: str) -> None:
        reader = QImageReader(path)
        reader.setAutoTransform(True)  # upright, as the detail pane shows it
        image = reader.read()
        self._pixmap = QPixmap.fromImage(image) if not image.isNull() else QPixmap()
        self.setWindowTitle(title)
        self.caption.setText(title if not image.isNull() else f"{title}: {reader.errorString()}")
        self.path = path
        self._fit()

    def go(self, delta: int) -> None:
        found = self._step(delta)
        if found is not None:
            self.show_photo(*found)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Right, Qt.Key.Key_Down):
            self.go(1)
        elif event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Up):
            self.go(-1)
        elif event.key() == Qt.Key.Key_Space:
            self.reject()
        else:
            super().keyPressEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self._pixmap.isNull():
            self.image.setPixmap(QPixmap())
            return
        self.image.setPixmap(self._pixmap.scaled(self.image.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                 Qt.TransformationMode.SmoothTransformation))
