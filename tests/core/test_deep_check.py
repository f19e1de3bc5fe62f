"""The deep check takes shortcuts: JPEGs are decoded at 1/8 scale
(core.probe._reduce_jpeg_decode) and a PNG's image data is joined into one chunk first
(core.probe._png_in_one_idat). It must still find every damage Pillow's plain decode of
the file finds. A JPEG it passes, that decode passes too. A PNG it fails that the plain
decode passes must hold image data zlib itself refuses: Pillow stops reading once it has
every row, so it misses a broken zlib checksum after them; read in one piece, it does not.

Damage is made by seeded byte surgery on the image data of a sample photo encoded in the
ways cameras, editors and libpng write them; the end marker is kept, so only a decode can
tell.
"""

from __future__ import annotations

import io
import random
import zlib
from pathlib import Path

import pytest
from PIL import Image

from core.models import ScannedFile
from core.probe import probe_data
from tests.imagefiles import jpeg_scan_offset, png_chunk

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "samples" / "sk_astronaut.png"


def encoded(fmt: str, size: tuple[int, int], mode: str = "RGB", **save_kw) -> bytes:
    """The sample photo at ``size`` in ``mode``, encoded: the same bytes on every run."""
    with Image.open(SAMPLE) as im:
        picture = im.convert("RGB").resize(size)
    picture = picture.convert("L").convert("I;16") if mode == "I;16" else picture.convert(mode)
    out = io.BytesIO()
    picture.save(out, fmt, **save_kw)
    return out.getvalue()

ENCODINGS = {
    "baseline": {},
    "progressive": {"progressive": True},
    "4:4:4": {"subsampling": 0},
    "optimized": {"optimize": True},
}
DAMAGE = ("flip", "marker", "zeros", "insert", "repeat")


def damaged(data: bytes, kind: str, rng: random.Random) -> bytes:
    """``data`` with its pixel data damaged in one way; the last two bytes (EOI) are kept."""
    body = bytearray(data[:-2])
    start = jpeg_scan_offset(data) + 20
    at = rng.randrange(start, len(body))
    if kind == "flip":
        for _ in range(rng.randint(1, 20)):
            body[rng.randrange(start, len(body))] ^= 1 << rng.randrange(8)
    elif kind == "marker":
        body[at : at + 2] = bytes([0xFF, rng.choice([0xD8, 0xDA, 0xC4, 0xDB, 0xD0, 0xD5, 0xC0])])
    elif kind == "zeros":
        size = rng.randint(1, 2000)
        body[at : at + size] = bytes(len(body[at : at + size]))
    elif kind == "insert":
        body[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 100)))
    else:  # a run of the data repeated, as a bad copy writes it
        body[at:at] = body[at : at + rng.randint(10, 2000)]
    return bytes(body) + data[-2:]


def rechunked(png: bytes, size: int) -> bytes:
    """The PNG with its image data split into IDAT chunks of ``size`` bytes (libpng: 8 KB)."""
    pos, out, image_data = 8, [png[:8]], []
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            image_data.append(body)
        else:
            joined = b"".join(image_data)
            out += [png_chunk(b"IDAT", joined[i : i + size]) for i in range(0, len(joined), size)]
            image_data = []
            out.append(png[pos : pos + 12 + length])
        pos += 12 + length
    return b"".join(out)


def chunk_starts(png: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, length) of every chunk."""
    pos, found = 8, []
    while pos + 12 <= len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        found.append((pos, png[pos + 4 : pos + 8], length))
        pos += 12 + length
    return found


PNG_DAMAGE = ("flip", "zeros", "insert", "delete", "length", "idat crc")


def damaged_png(data: bytes, kind: str, rng: random.Random) -> bytes:
    """``data`` damaged from its first IDAT on; the IEND chunk (the end marker) is kept."""
    chunks = chunk_starts(data)
    body = bytearray(data[:-12])
    start = next(pos for pos, kind_, _ in chunks if kind_ == b"IDAT")
    at = rng.randrange(start, len(body))
    if kind == "flip":
        for _ in range(rng.randint(1, 10)):
            body[rng.randrange(start, len(body))] ^= 1 << rng.randrange(8)
    elif kind == "zeros":
        body[at : at + rng.randint(1, 500)] = b""
        body[at:at] = bytes(rng.randint(1, 500))
    elif kind == "insert":
        body[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 50)))
    elif kind == "delete":
        del body[at : at + rng.randint(1, 50)]
    elif kind == "length":  # a chunk's length field, not IEND's
        pos = rng.choice([pos for pos, _, _ in chunks[:-1]])
        value = max(0, int.from_bytes(body[pos : pos + 4], "big") + rng.randint(-100, 100))
        body[pos : pos + 4] = value.to_bytes(4, "big")
    else:  # Pillow checks no IDAT CRC: a file damaged only there still decodes
        pos, _, length = rng.choice([c for c in chunks if c[1] == b"IDAT"])
        body[pos + 8 + length] ^= 0xFF
    return bytes(body) + data[-12:]


def full_decode_fails(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception:
        return True
    return False


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_reduced_decode_finds_what_a_full_decode_finds(encoding):
    rng = random.Random(encoding)
    original = encoded("JPEG", (320, 240), quality=90, **ENCODINGS[encoding])
    failures = 0
    for i in range(60):
        data = damaged(original, DAMAGE[i % len(DAMAGE)], rng)
        image = probe_data(ScannedFile("/photos/a.jpg", len(data), 0), data, deep=True)

        found = {p.code for p in image.problems} & {"corrupt", "truncated"}
        assert bool(found) == full_decode_fails(data), f"damage {i} ({DAMAGE[i % len(DAMAGE)]})"
        failures += bool(found)
    # The surgery must break some files and not others, or the comparison proves nothing.
    assert 0 < failures < 60


PNG_ENCODINGS = {
    "Pillow's 64 KB chunks, RGB": ("RGB", None),
    "libpng's 8 KB chunks, RGBA": ("RGBA", 8192),
    "small chunks, palette": ("P", 1000),
    "small chunks, 16-bit grey": ("I;16", 700),
}


@pytest.mark.parametrize("encoding", PNG_ENCODINGS)
def test_a_png_decoded_in_one_chunk_fails_where_a_plain_decode_fails(encoding):
    mode, chunk_size = PNG_ENCODINGS[encoding]
    rng = random.Random(encoding)
    original = encoded("PNG", (240, 200), mode)
    if chunk_size is not None:
        original = rechunked(original, chunk_size)
    failures = 0
    for i in range(60):
        kind = PNG_DAMAGE[i % len(PNG_DAMAGE)]
        data = damaged_png(original, kind, rng)
        image = probe_data(ScannedFile("/photos/a.png", len(data), 0), data, deep=True)

        found = bool({p.code for p in image.problems} & {"corrupt", "truncated"})
        if full_decode_fails(data):
            assert found, f"damage {i} ({kind}) missed"
        elif found:
            assert not zlib_accepts(data), f"damage {i} ({kind}): a sound file failed"
        failures += found
    assert 0 < failures < 60


def zlib_accepts(png: bytes) -> bool:
    """Whether the image data (the first run of IDAT chunks) is one whole, valid zlib stream."""
    chunks = chunk_starts(png)
    first = next(n for n, c in enumerate(chunks) if c[1] == b"IDAT")
    run = []
    for pos, kind, length in chunks[first:]:
        if kind != b"IDAT":
            break
        run.append(png[pos + 8 : pos + 8 + length])
    stream = zlib.decompressobj()
    try:
        stream.decompress(b"".join(run))
    except zlib.error:
        return False
    return stream.eof


def test_a_reduced_decode_still_reports_the_stored_size():
    data = encoded("JPEG", (643, 481))

    image = probe_data(ScannedFile("/photos/odd.jpg", len(data), 0), data, deep=True)

    assert (image.width, image.height, image.problems) == (643, 481, ())
