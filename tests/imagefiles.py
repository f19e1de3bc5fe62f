"""Make image files for tests: Pillow encodes the good ones, byte surgery makes the bad ones.

Every maker writes to ``path`` (a ``pathlib.Path``, usually under ``tmp_path``) and returns
it. Pixels are noise so that compressed bodies are big enough to cut or damage.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image


def noise_image(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """An image of noise pixels (they compress badly, like photos)."""
    bands = [Image.effect_noise((width, height), 64) for _ in Image.new(mode, (1, 1)).getbands()]
    return bands[0] if len(bands) == 1 else Image.merge(mode, bands)


def image_bytes(width: int = 400, height: int = 300, fmt: str = "JPEG", **save_kw) -> bytes:
    """The bytes of a real image encoded by Pillow in ``fmt`` ("JPEG", "PNG", "GIF", ...)."""
    mode = "RGBA" if fmt == "WEBP" else "RGB"
    buffer = io.BytesIO()
    noise_image(width, height, mode).save(buffer, fmt, **save_kw)
    return buffer.getvalue()


def make_image(path: Path, width: int = 400, height: int = 300, fmt: str = "JPEG", **save_kw) -> Path:
    """Write a real image in any format Pillow can save (GIF, WEBP, BMP, TIFF...)."""
    path.write_bytes(image_bytes(width, height, fmt, **save_kw))
    return path


def make_jpeg(
    path: Path,
    width: int = 400,
    height: int = 300,
    *,
    pad_to: int | None = None,
    thumbnail: bool = False,
    **save_kw,
) -> Path:
    """Write a real JPEG.

    :param pad_to: append zero bytes after the end-of-image marker until the file has
        exactly this many bytes (for size limits; decoders ignore trailing data).
    :param thumbnail: embed an EXIF thumbnail, itself a whole JPEG with its own
        end-of-image marker, in the header, as cameras do.
    """
    if thumbnail:
        save_kw["exif"] = exif_with_thumbnail(image_bytes(64, 48, "JPEG"))
    data = image_bytes(width, height, "JPEG", **save_kw)
    if pad_to is not None:
        assert pad_to >= len(data), "pad_to is smaller than the encoded image"
        data += bytes(pad_to - len(data))
    path.write_bytes(data)
    return path


def make_png(path: Path, width: int = 400, height: int = 300, **save_kw) -> Path:
    """Write a real PNG."""
    return make_image(path, width, height, "PNG", **save_kw)


def make_truncated_jpeg(path: Path, width: int = 400, height: int = 300, keep: float = 0.6, **kw) -> Path:
    """Write a JPEG cut after ``keep`` of its bytes (header intact, end marker gone)."""
    make_jpeg(path, width, height, **kw)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_truncated_png(path: Path, width: int = 400, height: int = 300, keep: float = 0.6) -> Path:
    """Write a PNG cut after ``keep`` of its bytes."""
    data = image_bytes(width, height, "PNG")
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def jpeg_scan_offset(data: bytes) -> int:
    """Offset of the first byte of entropy-coded data after the first start-of-scan marker."""
    sos = data.index(b"\xff\xda")  # test JPEGs made here have no thumbnail unless asked
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def make_corrupt_jpeg(path: Path, width: int = 400, height: int = 300) -> Path:
    """Write a JPEG whose header and end marker are intact but whose pixel data is broken.

    A second start-of-image marker inside the pixel data is a fatal error for the
    decoder; only a full decode finds it.
    """
    data = bytearray(image_bytes(width, height, "JPEG", quality=90))
    start = jpeg_scan_offset(data) + 100
    data[start : start + 2] = b"\xff\xd8"
    path.write_bytes(bytes(data))
    return path


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its length and a correct CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def make_png_claiming(path: Path, width: int, height: int) -> Path:
    """Write a small, well-formed PNG whose header claims ``width`` × ``height`` pixels.

    Its pixel data is a few bytes, so decoding it would fail: a probe that reports the
    size problem and nothing else never decoded it.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(bytes(16)))
        + png_chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def ftyp_box(major: bytes, compatible: tuple[bytes, ...] = ()) -> bytes:
    """An ISO media 'ftyp' box, as at the start of HEIC, AVIF, MP4 and MOV files."""
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 4 + len(body)) + body


def make_ftyp_file(path: Path, major: bytes, compatible: tuple[bytes, ...] = ()) -> Path:
    """Write a file that starts like an HEIC/AVIF/MP4 (an 'ftyp' box and a little more)."""
    path.write_bytes(ftyp_box(major, compatible) + b"\x00\x00\x00\x08free" + bytes(64))
    return path


def exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """EXIF data (for Pillow's ``exif=``) whose second directory holds a JPEG thumbnail."""
    ifd1_offset = 8 + 2 + 4  # after the TIFF header and an empty first directory
    thumbnail_offset = ifd1_offset + 2 + 2 * 12 + 4
    tiff = (
        b"II*\x00"
        + struct.pack("<I", 8)
        + struct.pack("<HI", 0, ifd1_offset)
        + struct.pack("<H", 2)
        + struct.pack("<HHII", 0x0201, 4, 1, thumbnail_offset)  # JPEGInterchangeFormat
        + struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail))  # ...Length
        + struct.pack("<I", 0)
        + thumbnail
    )
    return b"Exif\x00\x00" + tiff
