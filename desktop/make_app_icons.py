"""Render the app icon for every platform from resources/icons/kling-preflight.svg.

    QT_QPA_PLATFORM=offscreen python -m desktop.make_app_icons

Writes, beside the SVG: ``kling-preflight.png`` (256 px, for Linux's .desktop file and the
window icon), ``kling-preflight.ico`` (16 to 256 px, for the Windows executables) and
``kling-preflight.icns`` (16 to 1024 px, for the macOS app bundle). build.spec picks the one
its platform needs. Run it again after changing the SVG, and commit the results: a build must
not need Qt's SVG renderer to make its icon.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QBuffer, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SOURCE = ICONS / "kling-preflight.svg"
ICO_SIZES = [(n, n) for n in (16, 24, 32, 48, 64, 128, 256)]
LARGEST = 1024


def render(svg: Path, side: int) -> Image.Image:
    """The SVG drawn on a transparent square of ``side`` pixels, as a Pillow RGBA image."""
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not an SVG Qt can draw")
    canvas = QImage(side, side, QImage.Format.Format_ARGB32_Premultiplied)
    canvas.fill(Qt.GlobalColor.transparent)
    painter = QPainter(canvas)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    canvas.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGBA")


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (Qt needs one)
    standard = render(SOURCE, 256)
    standard.save(ICONS / "kling-preflight.png", optimize=True)
    standard.save(ICONS / "kling-preflight.ico", sizes=ICO_SIZES)  # smaller sizes scaled from it
    render(SOURCE, LARGEST).save(ICONS / "kling-preflight.icns")
    for name in ("kling-preflight.png", "kling-preflight.ico", "kling-preflight.icns"):
        print(f"{ICONS / name}: {(ICONS / name).stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
