"""Read a scanned file once: hash it, tell what it is from its content, find what is broken.

The format comes from the file's first bytes, never from its name; Pillow then reads the
header (lazily) for the pixel size and, in deep mode, decodes the pixels to find damage
that a header read cannot see (JPEGs at 1/8 scale, which still decodes every byte). Everything that goes wrong becomes a
:class:`~core.models.Problem` on the result: nothing here raises for a bad file.

Safe to call from many threads at once: no global state is changed (not
``Image.MAX_IMAGE_PIXELS``, not the warnings filters).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from io import BytesIO
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from .models import Problem, ProbedImage, ScannedFile
from .scan import file_path

try:  # iPhone HEIC/HEIF: readable when pillow-heif is installed (a dependency; optional here)
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - then HEIC stays "not readable", as before
    pass

#: Name endings, per format, that honestly describe the content.
FORMAT_EXTENSIONS: dict[str, frozenset[str]] = {
    "JPEG": frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".jif"}),
    "PNG": frozenset({".png", ".apng"}),
    "GIF": frozenset({".gif"}),
    "WEBP": frozenset({".webp"}),
    "BMP": frozenset({".bmp", ".dib"}),
    "TIFF": frozenset({".tif", ".tiff"}),
    "HEIC": frozenset({".heic", ".heif", ".hif"}),
    "HEIF": frozenset({".heif", ".heic", ".hif"}),
    "AVIF": frozenset({".avif"}),
    "JXL": frozenset({".jxl"}),
    "JPEG2000": frozenset({".jp2", ".j2k", ".j2c", ".jpf", ".jpx"}),
    "PSD": frozenset({".psd"}),
}

#: Name endings that claim a file is an image. Such a file is reported even when its
#: content is not an image; any other non-image file is silently not a photo.
IMAGE_EXTENSIONS: frozenset[str] = frozenset().union(*FORMAT_EXTENSIONS.values())

#: Files bigger than this are hashed in chunks and only their header is read.
STREAM_OVER_BYTES = 64 * 1024 * 1024

#: PNGs up to this size are decoded in one call (see :func:`_png_in_one_idat`), which
#: holds two more copies of the file while it runs; bigger ones a chunk at a time.
ONE_CALL_PNG_BYTES = 32 * 1024 * 1024

#: How a format is named to users where Pillow's name is not what people say.
_LABELS = {"JPEG": "JPG", "WEBP": "WebP", "JPEG2000": "JPEG 2000", "JXL": "JPEG XL"}

#: Pillow's plugin name for each format (pillow-heif registers "HEIF" when installed).
_PILLOW_IDS = {fmt: fmt for fmt in FORMAT_EXTENSIONS} | {"HEIC": "HEIF"}

#: What Pillow raises on a file it cannot decode (DecompressionBombError is no OSError):
#: one tuple for every place that decodes pixels.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)

_CHUNK = 1024 * 1024
_TAIL = 64 * 1024
_PNG_END = b"\x00\x00\x00\x00IEND"  # an IEND chunk: zero length, then its type
_JPEG_EOI = b"\xff\xd9"
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"})
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})


def format_label(fmt: str) -> str:
    """Name a format the way users know it.

    :param fmt: a format as :class:`~core.models.ProbedImage` holds it, e.g. ``"JPEG"``.
    :returns: e.g. ``"JPG"``, ``"PNG"``, ``"WebP"``.
    """
    return _LABELS.get(fmt, fmt)


def probe_file(
    f: ScannedFile, *, deep: bool = True, stream_over: int = STREAM_OVER_BYTES
) -> ProbedImage | None:
    """Read a file and probe it; see :func:`probe_data`.

    A file over ``stream_over`` bytes is never held in memory whole: it is hashed in
    chunks, its header is read from the open file and its last bytes are checked for the
    end marker, but its pixels are not decoded (``deep`` does not apply).

    :param f: the file as the scan found it.
    :param deep: also decode the pixels to find damage a header read cannot see.
    :param stream_over: the size above which the file is streamed.
    :returns: the probed image, or None when the file is not an image and its name does
        not claim one.
    """
    try:
        with open(file_path(f.path), "rb") as fh:
            if os.fstat(fh.fileno()).st_size > stream_over:
                return _probe_stream(f, fh)
            data = fh.read()
    except OSError as error:
        if not _claims_image(f):
            return None
        unreadable = Problem("unreadable", _unreadable_message(error))
        return _record(f, f.size, None, None, problems=(unreadable,))
    return probe_data(f, data, deep=deep)


def probe_data(f: ScannedFile, data: bytes, *, deep: bool = True) -> ProbedImage | None:
    """Probe a file whose bytes have already been read.

    :param f: the file as the scan found it (its size is taken from ``data``).
    :param data: the file's whole content.
    :param deep: also decode the pixels (slower) to find damage a header read cannot see.
    :returns: the probed image with its intrinsic problems, or None when the content is
        not an image and the name does not claim one either.
    """
    return _inspect(
        f,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        head=data,
        tail=data,
        source=BytesIO(data),
        deep=deep,
        whole=data,
    )


def _probe_stream(f: ScannedFile, fh: BinaryIO) -> ProbedImage | None:
    digest = hashlib.sha256()
    head = tail = b""
    size = 0
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        head = head or chunk
        tail = (tail + chunk)[-_TAIL:]
    fh.seek(0)
    return _inspect(
        f, size=size, sha256=digest.hexdigest(), head=head, tail=tail, source=fh, deep=False, whole=None
    )


def _inspect(
    f: ScannedFile,
    *,
    size: int,
    sha256: str,
    head: bytes,
    tail: bytes,
    source: BinaryIO,
    deep: bool,
    whole: bytes | None,
) -> ProbedImage | None:
    """Everything after reading; ``whole`` is None when only ``head`` and ``tail`` are known."""
    claims = _claims_image(f)
    if size == 0:
        if not claims:
            return None
        return _record(f, 0, sha256, None, problems=(Problem("empty", "The file is empty (0 bytes)."),))
    fmt = _sniff(head)
    if fmt is None:
        if not claims:
            return None
        if _extension(f.path) in IMAGE_EXTENSIONS:
            message = f"This is not an image, although its name ends in {_written_extension(f.path)}."
        else:  # a file the user named
            message = "This is not an image."
        return _record(f, size, sha256, None, problems=(Problem("not_an_image", message),))

    problems: list[Problem] = []
    if not _is_whole(fmt, size, head, tail, whole):
        problems.append(_cut_short(fmt))
    width = height = None
    pillow_id = _PILLOW_IDS[fmt]
    if _pillow_reads(pillow_id):
        # A file already known to be cut short is not decoded, and a header that fails to
        # read in it was most likely cut too: only a decompression bomb is news then.
        cut_short = bool(problems)
        decode = deep and not cut_short
        read_at_once = None
        if decode and whole is not None and fmt == "PNG" and size <= ONE_CALL_PNG_BYTES:
            joined = _png_in_one_idat(whole)
            if joined is not None:
                source, read_at_once = BytesIO(joined), len(joined)
        width, height, found = _read_pixels(source, pillow_id, deep=decode, read_at_once=read_at_once)
        problems.extend(p for p in found if not cut_short or p.code == "decompression_bomb")
    ext = _extension(f.path)
    if ext and ext not in FORMAT_EXTENSIONS[fmt]:
        message = f"This is a {format_label(fmt)} file although its name ends in {_written_extension(f.path)}."
        problems.append(Problem("extension_mismatch", message, blocking=False))
    return _record(f, size, sha256, fmt, width, height, tuple(problems))


def _record(
    f: ScannedFile,
    size: int,
    sha256: str | None,
    fmt: str | None,
    width: int | None = None,
    height: int | None = None,
    problems: tuple[Problem, ...] = (),
) -> ProbedImage:
    return ProbedImage(f.path, size, f.mtime_ns, sha256, fmt, width, height, problems)


def _extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _written_extension(path: str) -> str:
    """The extension as the user wrote it (".JPG" stays ".JPG"), for messages."""
    return os.path.splitext(path)[1]


def _claims_image(f: ScannedFile) -> bool:
    """Whether a file that is not an image still gets a row: its name says it is one, or
    the user named the file itself."""
    return f.named or _extension(f.path) in IMAGE_EXTENSIONS


def _sniff(head: bytes) -> str | None:
    """The format the first bytes announce, or None when they announce no image."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    # "BM" alone would match text; the DIB header size that follows must be a known one.
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[4:8] == b"ftyp":
        return _ftyp_format(head)
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "JXL"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG2000"
    if head.startswith(b"8BPS"):
        return "PSD"
    return None


def _ftyp_format(head: bytes) -> str | None:
    """HEIC, HEIF or AVIF from an ISO media 'ftyp' box; None for video (mp4, mov...)."""
    box_size = int.from_bytes(head[:4], "big")
    # The major brand, then (after a 4-byte version) the compatible brands.
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(box_size, len(head)) - 3, 4)}
    if brands & {b"avif", b"avis"}:
        return "AVIF"
    if brands & _HEIC_BRANDS:
        return "HEIC"
    if brands & {b"mif1", b"msf1"}:
        return "HEIF"
    return None


def _is_whole(fmt: str, size: int, head: bytes, tail: bytes, whole: bytes | None) -> bool:
    """Whether a JPEG, PNG or WebP still has all its bytes (other formats: not checked here).

    Pillow's ``verify()`` and a lazy open both pass a JPEG cut short, so this is the cheap
    test for truncation; a deep decode finds it in the other formats.
    """
    if fmt == "JPEG":
        if whole is None:
            return _JPEG_EOI in tail
        return whole.rfind(_JPEG_EOI, _jpeg_scan_start(whole)) != -1
    if fmt == "PNG":
        # rfind searches from the end, where IEND is: a whole file is answered at once,
        # where ``in`` would scan megabytes of pixel data (full of zero bytes) first.
        return (tail if whole is None else whole).rfind(_PNG_END) != -1
    if fmt == "WEBP":  # the RIFF header gives the length of what follows it
        return size >= 8 + int.from_bytes(head[4:8], "little")
    return True


def _jpeg_scan_start(data: bytes) -> int:
    """Where the first scan (the pixel data) starts: the real end marker comes after it.

    Header segments are skipped by their lengths because an EXIF thumbnail carries an
    end marker of its own. Returns ``len(data)`` when the header itself is cut short, and
    2 when the header cannot be walked (a decode then says what is wrong).
    """
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return 2
        marker = data[i + 1]
        if marker == 0xDA:
            return i
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return len(data)


def _cut_short(fmt: str) -> Problem:
    end = {"JPEG": "its end-of-image marker", "PNG": "its IEND chunk"}.get(fmt, "the length its header gives")
    return Problem("truncated", f"The file is cut short: it ends before {end}.")


def _pillow_reads(pillow_id: str) -> bool:
    """Whether this Pillow build has a plugin for the format (HEIC needs pillow-heif)."""
    Image.init()
    return pillow_id in Image.OPEN


def _read_pixels(
    source: BinaryIO, pillow_id: str, *, deep: bool, read_at_once: int | None = None
) -> tuple[int | None, int | None, list[Problem]]:
    """Read the header for the stored pixel size; decode too when ``deep``.

    :param read_at_once: the source's size, to have the decoder given everything in one
        call, which runs without the GIL from start to end instead of taking it back for
        every chunk (two threads decoding PNGs then really run at once).
    """
    width = height = None
    try:
        with Image.open(source, formats=(pillow_id,)) as im:
            width, height = im.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and width * height > limit:
                message = (
                    f"{width:,} × {height:,} is {width * height:,} pixels, over the safe limit of "
                    f"{limit:,}: it could be a decompression bomb, so it was not decoded."
                )
                return width, height, [Problem("decompression_bomb", message)]
            if deep:
                if pillow_id == "JPEG":
                    _reduce_jpeg_decode(im)
                if read_at_once is not None:
                    im.decodermaxblock = max(im.decodermaxblock, read_at_once)
                im.load()
            if getattr(im, "n_frames", 1) > 1:
                return width, height, [_animated(im.format or pillow_id, im.n_frames)]
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        message = (
            f"The image claims more than {limit:,} pixels: it could be a decompression bomb, "
            "so it was not decoded."
        )
        return None, None, [Problem("decompression_bomb", message)]
    except Exception as error:  # Pillow's plugins raise many exception types on bad input
        return width, height, [_damage(error)]
    return width, height, []


def _animated(pillow_id: str, frames: int) -> Problem:
    """A note, not a failure: only the first frame of an animation is ever used."""
    message = f"This {format_label(pillow_id)} is animated ({frames:,} frames): only its first frame is used."
    return Problem("animated", message, blocking=False)


def _png_in_one_idat(data: bytes) -> bytes | None:
    """The PNG with all its image data in a single IDAT chunk, every other chunk kept in
    its place; None when its chunks cannot be walked (it is then decoded as it is).

    Pillow hands a PNG's decoder one IDAT chunk at a time and takes the GIL back between
    chunks; libpng writes 8 KB chunks, Pillow 64 KB ones, and two threads decoding PNGs
    ran no faster than one (measured). One chunk, read at once, is one decode call. IDAT
    chunks that are not consecutive are left alone: Pillow stops at the first gap, and so
    must the check. The new chunk's CRC is computed; Pillow checks no IDAT CRC either way.
    """
    view = memoryview(data)
    before: list[memoryview] = []
    after: list[memoryview] = []
    image_data: list[memoryview] = []
    pos = 8  # after the signature
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        if end > len(data):
            return None
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            if after:
                return None
            image_data.append(view[pos + 8 : end - 4])
        else:
            (after if image_data else before).append(view[pos:end])
        pos = end
        if kind == b"IEND":
            break
    if len(image_data) < 2:
        return None  # nothing to gain
    body = b"".join(image_data)
    crc = zlib.crc32(body, zlib.crc32(b"IDAT"))
    header = len(body).to_bytes(4, "big") + b"IDAT"
    return b"".join([view[:8], *before, header, body, crc.to_bytes(4, "big"), *after])


#: For core/fix.py, which decodes the same PNGs the same way, for the same reason.
png_in_one_idat = _png_in_one_idat


def _reduce_jpeg_decode(im: Image.Image) -> None:
    """Have a JPEG decoded at 1/8 scale: a damage check, not a picture, is wanted.

    libjpeg still reads and entropy-decodes every byte of every scan at 1/8 scale, and
    that is where damage shows (bad Huffman codes, stray markers, data ending early); it
    only skips the inverse DCT, upsampling and colour conversion, about 2/3 of the work.
    (Measured: 3,000 random corruptions of baseline, progressive, grey and CMYK JPEGs
    failed or passed alike at both scales; tests/core/test_deep_check.py keeps watch.)
    """
    width, height = im.size
    im.draft(None, (max(1, width // 8), max(1, height // 8)))


def _damage(error: Exception) -> Problem:
    detail = str(error)
    if isinstance(error, EOFError) or "truncated" in detail.lower():
        return Problem("truncated", "The file is cut short: its image data ends early.")
    if isinstance(error, UnidentifiedImageError):
        return Problem("corrupt", "The file is damaged: its header cannot be read.")
    return Problem("corrupt", f"The file is damaged and cannot be decoded ({detail or type(error).__name__}).")


def _unreadable_message(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "The file disappeared before it could be read."
    if isinstance(error, IsADirectoryError):
        return "This is a folder, not a file."
    if isinstance(error, PermissionError):
        return "Permission denied: this account may not read the file."
    reason = error.strerror or str(error)
    return f"The file could not be read: {reason[:1].lower()}{reason[1:]}."
