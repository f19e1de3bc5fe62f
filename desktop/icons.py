"""The app's icons: SVG files drawn in ``currentColor``, painted in the palette's text colour.

Each toolbar icon is rendered from its SVG at whatever size and pixel ratio Qt asks for, so it
is sharp on HiDPI screens, and in the colour of the current palette at paint time, so it
follows a switch between light and dark without being reloaded.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from PySide6.QtCore import QByteArray, QPoint, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QIconEngine, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

APP_ICON = "kling-preflight"


def icons_dir() -> Path:
    """:returns: the folder holding the SVG files (inside a frozen app, its bundle)."""
    if getattr(sys, "frozen", False):
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "resources" / "icons"
    return Path(__file__).resolve().parent.parent / "resources" / "icons"


@functools.lru_cache(maxsize=None)
def _svg_text(name: str) -> str:
    return (icons_dir() / f"{name}.svg").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=256)
def _tinted_renderer(name: str, color: str) -> QSvgRenderer:
    """The SVG ``name`` drawn in ``color``, parsed once: Qt keeps no pixmaps of a custom
    engine, so every paint of every icon asks again. Keyed by colour, a palette switch
    just takes other entries."""
    svg = _svg_text(name).replace("currentColor", color)
    return QSvgRenderer(QByteArray(svg.encode("utf-8")))


class _TintedSvgEngine(QIconEngine):
    """Paints one SVG with ``currentColor`` replaced by the palette colour for the mode."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    def _renderer(self, mode: QIcon.Mode) -> QSvgRenderer:
        palette = QGuiApplication.palette()
        if mode == QIcon.Mode.Disabled:
            color = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
        elif mode == QIcon.Mode.Selected:
            color = palette.color(QPalette.ColorRole.HighlightedText)
        else:
            color = palette.color(QPalette.ColorRole.WindowText)
        return _tinted_renderer(self._name, color.name())

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        self._renderer(mode).render(painter, QRectF(rect))

    def scaledPixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State, scale: float) -> QPixmap:
        pixmap = QPixmap(size * scale)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        self.paint(painter, QRect(QPoint(0, 0), pixmap.size()), mode, state)
        painter.end()
        pixmap.setDevicePixelRatio(scale)
        return pixmap

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        return self.scaledPixmap(size, mode, state, 1.0)

    def clone(self) -> "_TintedSvgEngine":
        return _TintedSvgEngine(self._name)

    def key(self) -> str:
        return "kling-preflight-tinted-svg"


def icon(name: str) -> QIcon:
    """A toolbar or list icon in the palette's colours.

    :param name: the SVG file's stem in ``resources/icons``, e.g. ``"start"``.
    :returns: the icon.
    :raises FileNotFoundError: there is no such SVG.
    """
    _svg_text(name)  # fail here, not later at paint time
    return QIcon(_TintedSvgEngine(name))


def app_icon() -> QIcon:
    """:returns: the full-colour application icon (SVG, with the 256 px PNG as a fallback)."""
    result = QIcon()
    png = icons_dir() / f"{APP_ICON}.png"
    if png.exists():
        result.addFile(str(png), QSize(256, 256))
    result.addFile(str(icons_dir() / f"{APP_ICON}.svg"))
    return result
