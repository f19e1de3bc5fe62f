"""Face boxes on a preview: where a box stored in file pixels lands once the image is shown
upright, and a widget that shows the upright image with its boxes.

Providers give face boxes in pixels of the file as stored. A photo whose EXIF orientation is
not 1 is displayed rotated or mirrored, so each box goes through the same transformation as
the pixels (``core.orientation``).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

# The mapping is Qt-free and shared with the offline provider; the detail pane imports it from here.
from core.orientation import Box, displayed_box, normal_orientation, upright_size  # noqa: F401

#: The colour of face boxes: a saturated yellow-green that stands out on skin, sky and shadow.
FACE_BOX_COLOUR = QColor(0x3D, 0xF5, 0x5A)
FACE_BOX_WIDTH = 3
# A dark halo under the box keeps it visible on light backgrounds.
_HALO_COLOUR = QColor(0, 0, 0, 150)
_HALO_WIDTH = FACE_BOX_WIDTH + 2
#: Tallest the preview asks to be, so the facts under it stay in reach.
MAX_HEIGHT = 460


@dataclass(frozen=True)
class FaceMark:
    """One face to draw: its box in upright pixels of the full-size image, and a caption."""

    box: Box
    caption: str


class FacePreview(QWidget):
    """An upright image scaled to fit, with its face boxes drawn on top.

    The image may be a reduced copy: boxes are in pixels of the full-size upright image, and
    both are scaled to the same on-screen rectangle.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._full_size = QSize()
        self._marks: tuple[FaceMark, ...] = ()
        self._message = ""
        self._scaled: QPixmap | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(160)

    def set_image(self, image: QImage, full_size: tuple[int, int], marks: tuple[FaceMark, ...]) -> None:
        """Show ``image`` (upright) whose full size is ``full_size``, with ``marks`` on it."""
        self._image = image
        self._full_size = QSize(*full_size)
        self._marks = marks
        self._message = ""
        self._scaled = None
        self.updateGeometry()
        self.update()

    def set_message(self, message: str) -> None:
        """Show a sentence instead of an image (loading, or why there is nothing to show)."""
        self._image = None
        self._marks = ()
        self._message = message
        self._scaled = None
        self.updateGeometry()
        self.update()

    def marks(self) -> tuple[FaceMark, ...]:
        return self._marks

    def message(self) -> str:
        return self._message

    def has_image(self) -> bool:
        return self._image is not None

    def image_rect(self) -> QRectF:
        """:returns: where the image is drawn in this widget: scaled to fit, centred,
        never enlarged beyond its full size."""
        if self._image is None or self._full_size.isEmpty():
            return QRectF()
        full_w, full_h = self._full_size.width(), self._full_size.height()
        scale = min(self.width() / full_w, self.height() / full_h, 1.0)
        w, h = round(full_w * scale), round(full_h * scale)
        return QRectF((self.width() - w) // 2, (self.height() - h) // 2, w, h)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        if self._image is None or self._full_size.isEmpty():
            return 200
        height = round(width * self._full_size.height() / self._full_size.width())
        return max(160, min(height, self._full_size.height(), MAX_HEIGHT))

    def sizeHint(self) -> QSize:
        return QSize(360, self.heightForWidth(360))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self._scaled = None  # re-scaled from the source on the next paint
        super().resizeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        try:
            if self._image is None:
                self._paint_message(painter)
                return
            target = self.image_rect()
            if self._scaled is None or self._scaled.size() != target.size().toSize():
                self._scaled = QPixmap.fromImage(
                    self._image.scaled(
                        target.size().toSize(),
                        Qt.AspectRatioMode.IgnoreAspectRatio,
                        Qt.TransformationMode.SmoothTransformation,
                    )
                )
            painter.drawPixmap(target.topLeft(), self._scaled)
            self._paint_marks(painter, target)
        finally:
            painter.end()

    def _paint_message(self, painter: QPainter) -> None:
        painter.setPen(self.palette().placeholderText().color())
        painter.drawText(self.rect().adjusted(12, 12, -12, -12), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message)

    def _paint_marks(self, painter: QPainter, target: QRectF) -> None:
        scale = target.width() / self._full_size.width()
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        for mark in self._marks:
            x, y, w, h = mark.box
            # Whole pixels and no antialiasing: the outline is crisp at any scale.
            rect = QRectF(
                round(target.x() + x * scale), round(target.y() + y * scale), round(w * scale), round(h * scale)
            )
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(_HALO_COLOUR, _HALO_WIDTH, Qt.PenStyle.SolidLine, Qt.PenCapStyle.SquareCap, Qt.PenJoinStyle.MiterJoin))
            painter.drawRect(rect)
            painter.setPen(QPen(FACE_BOX_COLOUR, FACE_BOX_WIDTH, Qt.PenStyle.SolidLine, Qt.PenCapStyle.SquareCap, Qt.PenJoinStyle.MiterJoin))
            painter.drawRect(rect)
            if mark.caption:
                self._paint_caption(painter, metrics, rect, mark.caption)

    def _paint_caption(self, painter: QPainter, metrics, rect: QRectF, caption: str) -> None:
        """A small tag on the box's top edge (inside it when the box touches the top)."""
        pad = 3
        width = metrics.horizontalAdvance(caption) + 2 * pad
        height = metrics.height()
        top = rect.top() - height - FACE_BOX_WIDTH
        if top < 0:
            top = rect.top() + FACE_BOX_WIDTH
        tag = QRectF(rect.left() - 1, top, width, height)
        painter.fillRect(tag, FACE_BOX_COLOUR)
        painter.setPen(QColor(0, 0, 0))
        painter.drawText(tag.translated(QPointF(pad, 0)), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, caption)
