"""Thumbnails for the results table, made in the background and kept on disk.

A thumbnail is named by the image's SHA-256, so it survives restarts, renames and copies.
The UI thread only ever looks in memory: everything else (reading a cached thumbnail,
decoding a photo, writing the cache) happens on the cache's own thread pool, and
:attr:`ThumbnailCache.ready` says when one has arrived.

That work waits until the table has stopped asking for new thumbnails for a moment: while
it scrolls, the rows flying past are not worth decoding, and decoding them would take the
cores the scrolling itself needs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

from PIL import Image, ImageOps
from PySide6.QtCore import QObject, QPointF, QRectF, QRunnable, QSize, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QImage, QPainter, QPainterPath, QPalette, QPen, QPixmap

from core.atomic_write import atomic_write
from core.probe import DECODE_ERRORS
from core.scan import file_path

log = logging.getLogger(__name__)

#: Longest side of a stored thumbnail, in pixels: sharp at 64 px on a 2× screen.
THUMBNAIL_SIDE = 128
#: Thumbnails held in memory (about 64 KB each).
MEMORY_ITEMS = 600
#: Requests waiting for a thread beyond this are forgotten, oldest first: when the user
#: scrolls fast, rows long gone from the screen are not worth decoding.
MAX_PENDING = 256
#: Thumbnails are made once no new one has been asked for this long (the view is still).
SETTLE_MS = 80

# What decoding a file can raise; DecompressionBombError is not an OSError.


def thumbnail_file(folder: Path, sha256: str, side: int = THUMBNAIL_SIDE) -> Path:
    """:returns: where the thumbnail of the content ``sha256`` is cached under ``folder``."""
    return folder / sha256[:2] / f"{sha256}-{side}.webp"


def render_thumbnail(path: str | Path, side: int = THUMBNAIL_SIDE) -> Image.Image:
    """Decode ``path``, turn it upright (EXIF orientation) and shrink it to fit ``side``.

    :returns: an RGB or RGBA image no larger than ``side`` × ``side``.
    :raises OSError, ValueError, SyntaxError, EOFError, PIL.Image.DecompressionBombError:
        the file cannot be decoded.
    """
    with Image.open(file_path(path)) as image:
        # JPEG: decode at 1/2, 1/4 or 1/8 scale straight away; far faster for photos.
        image.draft("RGB", (side * 2, side * 2))
        upright = ImageOps.exif_transpose(image)
        upright.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=2.0)
        has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
        return upright.convert("RGBA" if has_alpha else "RGB")


def load_thumbnail(folder: Path, sha256: str, path: str, side: int = THUMBNAIL_SIDE) -> QImage | None:
    """The thumbnail of ``path`` from the disk cache, or made and cached now.

    Safe on any thread. Never raises for a bad file or a cache folder that cannot be written.

    :returns: the thumbnail, or None when the file cannot be decoded.
    """
    cached = thumbnail_file(folder, sha256, side)
    try:
        with Image.open(cached) as image:
            return to_qimage(image.convert("RGBA"))
    except FileNotFoundError:
        pass
    except DECODE_ERRORS:
        log.debug("Thumbnail cache file %s is unreadable; making it again", cached)
    try:
        thumbnail = render_thumbnail(path, side)
    except DECODE_ERRORS as exc:
        log.debug("No thumbnail for %s: %s", path, exc)
        return None
    _write_atomically(thumbnail, cached)
    return to_qimage(thumbnail.convert("RGBA"))


def _write_atomically(image: Image.Image, target: Path) -> None:
    """Write to a temporary name and rename, so a reader never sees half a file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, binary=True, durable=False) as out:  # a cache: made again if lost
            image.save(out, "WEBP", quality=82, method=4)
    except OSError as exc:
        log.debug("Cannot cache a thumbnail in %s: %s", target.parent, exc)


def to_qimage(rgba: Image.Image) -> QImage:
    """An RGBA Pillow image as a QImage that owns its pixels."""
    data = rgba.tobytes()
    # copy(): the QImage must own its pixels once ``data`` is gone.
    return QImage(data, rgba.width, rgba.height, rgba.width * 4, QImage.Format.Format_RGBA8888).copy()


class _Requests:
    """The thumbnails asked for and not yet made; newest first. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: OrderedDict[str, str] = OrderedDict()
        self._last_push = 0.0  # time.monotonic() of the newest request

    def push(self, sha256: str, path: str) -> str | None:
        """Queue one; :returns: the sha256 of a request dropped to make room, if any."""
        with self._lock:
            self._last_push = time.monotonic()
            self._waiting[sha256] = path
            self._waiting.move_to_end(sha256)
            if len(self._waiting) > MAX_PENDING:
                dropped, _ = self._waiting.popitem(last=False)
                return dropped
        return None

    def pop_newest(self) -> tuple[str, str] | None:
        """:returns: the newest request, or None when there is none or one was made less
        than :data:`SETTLE_MS` ago (the view is moving; the cache's timer starts again)."""
        with self._lock:
            if not self._waiting or not self._settled():
                return None
            return self._waiting.popitem(last=True)

    def settled(self) -> bool:
        """:returns: True when no request came in the last :data:`SETTLE_MS`."""
        with self._lock:
            return self._settled()

    def _settled(self) -> bool:
        return time.monotonic() - self._last_push >= SETTLE_MS / 1000

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)

    def clear(self) -> list[str]:
        with self._lock:
            dropped = list(self._waiting)
            self._waiting.clear()
            return dropped


class _Relay(QObject):
    """Carries a finished thumbnail from a pool thread to the UI thread (a queued signal)."""

    made = Signal(str, QImage, bool)  # sha256, image, decoded


class _ThumbnailJob(QRunnable):
    """Makes the newest requested thumbnails, one after the other, until none is left or
    the view moves again."""

    def __init__(self, requests: _Requests, relay: _Relay, folder: Path, side: int) -> None:
        super().__init__()
        self._requests = requests
        self._relay = relay
        self._folder = folder
        self._side = side

    def run(self) -> None:
        while (item := self._requests.pop_newest()) is not None:
            sha256, path = item
            try:
                image = load_thumbnail(self._folder, sha256, path, self._side)
            except Exception:  # a bug here must cost one thumbnail, not the pool thread
                log.exception("Making the thumbnail of %s failed", path)
                image = None
            self._relay.made.emit(sha256, image if image is not None else QImage(), image is not None)


class ThumbnailCache(QObject):
    """Thumbnails by content hash: in memory (bounded, least recently used out first), on
    disk under ``folder``, made on a private thread pool.

    :param folder: the disk cache, e.g. ``AppPaths.thumbnails``; created when needed.
    :param side: longest side of a thumbnail in pixels.
    :param memory_items: thumbnails kept in memory.
    :param threads: decoding threads.
    """

    #: A thumbnail (or its broken-image placeholder) is now available for this sha256.
    ready = Signal(str)

    def __init__(
        self,
        folder: Path,
        *,
        side: int = THUMBNAIL_SIDE,
        memory_items: int = MEMORY_ITEMS,
        threads: int = 2,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.folder = Path(folder)
        self.side = side
        self._memory_items = memory_items
        self._icons: OrderedDict[str, QIcon] = OrderedDict()
        self._broken: set[str] = set()
        self._in_flight: set[str] = set()
        self._requests = _Requests()
        # Created before the relay: children are destroyed in order, and the pool's
        # destructor waits for its jobs, which still use the relay.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._relay = _Relay(self)
        self._relay.made.connect(self._on_made, Qt.ConnectionType.QueuedConnection)
        self._threads = threads
        # Restarted by every new request: fires once the view has been still for SETTLE_MS.
        self._settled = QTimer(self)
        self._settled.setSingleShot(True)
        self._settled.setTimerType(Qt.TimerType.PreciseTimer)  # a coarse one may fire early
        self._settled.setInterval(SETTLE_MS)
        self._settled.timeout.connect(self._start_jobs)
        self._placeholder: QIcon | None = None
        self._broken_icon: QIcon | None = None

    def get(self, sha256: str | None, path: str | None) -> QIcon | None:
        """The thumbnail if it is in memory; otherwise ask for it and return None.

        A file without a hash (unreadable) gets the broken-image placeholder at once.
        Never blocks: this is what the table calls while painting.
        """
        if not sha256 or not path:
            return self.broken()
        icon = self._icons.get(sha256)
        if icon is not None:
            self._icons.move_to_end(sha256)
            return icon
        if sha256 in self._broken:
            return self.broken()
        if sha256 not in self._in_flight:
            self._in_flight.add(sha256)
            dropped = self._requests.push(sha256, path)
            if dropped is not None:
                self._in_flight.discard(dropped)
            self._settled.start()
        return None

    def placeholder(self) -> QIcon:
        """What a cell shows while its thumbnail is being made."""
        if self._placeholder is None:
            self._placeholder = QIcon(_draw_placeholder(self.side, broken=False))
        return self._placeholder

    def broken(self) -> QIcon:
        """What a cell shows for a file that cannot be decoded."""
        if self._broken_icon is None:
            self._broken_icon = QIcon(_draw_placeholder(self.side, broken=True))
        return self._broken_icon

    def is_broken(self, sha256: str) -> bool:
        return sha256 in self._broken

    def pending(self) -> int:
        """:returns: thumbnails asked for and not yet delivered."""
        return len(self._in_flight)

    def clear_requests(self) -> None:
        """Forget what was asked for and not started (the table's rows changed)."""
        self._settled.stop()
        for sha256 in self._requests.clear():
            self._in_flight.discard(sha256)

    def wait(self, msecs: int = -1) -> bool:
        """Block until the pool's threads are idle. For shutdown and tests.

        :returns: True when idle, False when ``msecs`` ran out first.
        """
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Drop what is waiting and wait for the jobs already running."""
        self.clear_requests()
        self._pool.waitForDone()

    @Slot()
    def _start_jobs(self) -> None:
        if not self._requests.settled():
            self._settled.start()  # not still for long enough yet
            return
        # Jobs already running keep going; new ones take what is left.
        for _ in range(min(len(self._requests), self._threads - self._pool.activeThreadCount())):
            self._pool.start(_ThumbnailJob(self._requests, self._relay, self.folder, self.side))

    @Slot(str, QImage, bool)
    def _on_made(self, sha256: str, image: QImage, decoded: bool) -> None:
        self._in_flight.discard(sha256)
        if decoded:
            self._icons[sha256] = QIcon(QPixmap.fromImage(image))
            self._icons.move_to_end(sha256)
            while len(self._icons) > self._memory_items:
                self._icons.popitem(last=False)
        else:
            self._broken.add(sha256)
        self.ready.emit(sha256)


def _draw_placeholder(side: int, *, broken: bool) -> QPixmap:
    """A soft tile in the palette's colours; for a broken file, a picture with a crack."""
    palette = QGuiApplication.palette()
    pixmap = QPixmap(QSize(side, side))
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        tile = QColor(palette.color(QPalette.ColorRole.Mid))
        tile.setAlpha(70)
        margin = side * 0.06
        frame = QRectF(margin, margin, side - 2 * margin, side - 2 * margin)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(tile)
        painter.drawRoundedRect(frame, side * 0.08, side * 0.08)
        if not broken:
            return pixmap
        ink = QColor(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.setPen(QPen(ink, side * 0.04))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        picture = frame.adjusted(side * 0.2, side * 0.24, -side * 0.2, -side * 0.24)
        painter.drawRect(picture)
        hills = QPainterPath(QPointF(picture.left(), picture.bottom()))
        hills.lineTo(picture.left() + picture.width() * 0.35, picture.top() + picture.height() * 0.45)
        hills.lineTo(picture.left() + picture.width() * 0.55, picture.top() + picture.height() * 0.7)
        hills.lineTo(picture.left() + picture.width() * 0.75, picture.top() + picture.height() * 0.5)
        hills.lineTo(picture.right(), picture.bottom())
        painter.drawPath(hills)
        painter.setPen(QPen(QColor(0xD0, 0x36, 0x3B), side * 0.05))
        painter.drawLine(picture.topRight() + QPointF(side * 0.06, -side * 0.06), picture.bottomLeft() + QPointF(-side * 0.06, side * 0.06))
    finally:
        painter.end()
    return pixmap
