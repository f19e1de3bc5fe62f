"""core/fix.py makes copies that pass; core/publish.py writes them whole, never over anything."""

from __future__ import annotations

import errno
import io
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.copies import NOT_FIXED, fix_files
from core.fix import Box, FixOptions, allowed_size, fix_image
from core.models import Constraints, ScannedFile, is_valid
from core.probe import probe_data, probe_file
from core.publish import free_name, link_new, publish_new
from core.scan import OUTPUT_MARKER
from core.validate import validate
from tests.imagefiles import make_png_claiming, noise_image

ADOBE_RGB = Path("/usr/share/color/icc/ghostscript/a98.icc")


def fix(path: Path, options: FixOptions = FixOptions(), faces=()):
    st = os.stat(path)
    probed = probe_file(ScannedFile(str(path), st.st_size, st.st_mtime_ns))
    problems = validate(probed, options.constraints)
    return fix_image(str(path), problems, options, faces, fmt=probed.format)


def passes(data: bytes, rules: Constraints = Constraints()) -> Image.Image:
    probed = probe_data(ScannedFile("/copy.jpg", len(data), 0), data)
    assert is_valid(validate(probed, rules)), validate(probed, rules)
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize(
    "size, padded", [((2000, 500), (2000, 800)), ((400, 1200), (480, 1200)), ((2001, 800), (2001, 801)), ((500, 200), (500, 200))]
)
def test_padding_reaches_the_nearest_allowed_ratio_exactly(size, padded):
    assert allowed_size(*size, Fraction(5, 2)) == padded


@pytest.mark.parametrize("pad", ["blur", "colour"])
def test_a_panorama_is_padded_with_the_photo_in_the_middle(tmp_path, pad):
    path = tmp_path / "pano.jpg"
    Image.new("RGB", (1000, 200), (200, 30, 30)).save(path, quality=95)

    fixed = fix(path, FixOptions(pad=pad, background=(0, 0, 255)))

    copy = passes(fixed.data)
    assert copy.size == (1000, 400)
    r, g, b = copy.getpixel((500, 200))
    assert r > 150 and b < 80  # the photo, centred
    edge = copy.getpixel((500, 5))
    assert (edge[2] > 200) if pad == "colour" else (edge[0] > 150 and edge[2] < 80)  # blue, or the photo blurred


def crop_test_image(path: Path, face_x: int) -> Path:
    """A white 2,000 × 400 panorama with a black 200 × 200 "face" at ``face_x``."""
    im = Image.new("RGB", (2000, 400), "white")
    im.paste((0, 0, 0), (face_x, 100, face_x + 200, 300))
    im.save(path)
    return path


@pytest.mark.parametrize("face_x", [100, 1640, 800])
def test_crop_keeps_the_face_whole(tmp_path, face_x):
    path = crop_test_image(tmp_path / "pano.png", face_x)

    fixed = fix(path, FixOptions(fit="crop"), faces=[Box(face_x, 100, 200, 200)])

    copy = passes(fixed.data)
    assert copy.size == (1000, 400)
    assert "cropped 2,000 × 400 to 1,000 × 400 (the allowed ratio)" in fixed.changes
    # All of the face is in the copy: as many dark pixels as it had.
    dark = sum(copy.convert("L").histogram()[:128])
    assert abs(dark - 200 * 200) < 2_000


def test_crop_finds_the_face_of_a_rotated_photo_where_it_is_shown(tmp_path):
    # Stored 400 × 2,000 and shown turned 90° clockwise: upright 2,000 × 400, too wide. The
    # face is stored near the top, so it is shown near the right end.
    stored = Image.new("RGB", (400, 2000), "white")
    stored.paste((0, 0, 0), (100, 100, 300, 300))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    stored.save(path, exif=exif, quality=95)

    fixed = fix(path, FixOptions(fit="crop"), faces=[Box(100, 100, 200, 200)])

    copy = passes(fixed.data)
    assert copy.size == (1000, 400)
    assert abs(sum(copy.convert("L").histogram()[:128]) - 200 * 200) < 2_000


def test_a_crop_that_would_cut_a_face_pads_instead_and_says_so(tmp_path):
    path = crop_test_image(tmp_path / "pano.png", 100)

    fixed = fix(path, FixOptions(fit="crop"), faces=[Box(100, 100, 200, 200), Box(1700, 100, 200, 200)])

    assert fixed.size == (2000, 800)
    assert "padded instead of cropping, which would cut a face" in fixed.changes


def test_transparency_is_flattened_on_white_or_the_colour_asked(tmp_path):
    path = tmp_path / "logo.webp"
    im = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    im.paste((10, 10, 10, 255), (100, 100, 300, 300))
    im.save(path, "WEBP", lossless=True)

    white = passes(fix(path).data)
    black = fix(path, FixOptions(background=(0, 128, 0), lossless=True))

    assert min(white.getpixel((10, 10))) > 245 and max(white.getpixel((200, 200))) < 30
    copy = Image.open(io.BytesIO(black.data))
    assert copy.format == "PNG" and copy.getpixel((10, 10)) == (0, 128, 0)
    assert black.changes[:2] == ("converted WebP to PNG", "flattened transparency on #008000")


def test_too_large_searches_the_quality_first_then_downscales_never_below_the_minimum(tmp_path):
    path = tmp_path / "big.png"
    noise_image(900, 700).save(path)
    by_quality = Constraints(max_bytes=250_000)
    by_size = Constraints(max_bytes=60_000)
    impossible = Constraints(max_bytes=2_000)

    quality = fix(path, FixOptions(constraints=by_quality))
    smaller = fix(path, FixOptions(constraints=by_size))
    never = fix(path, FixOptions(constraints=impossible))

    assert passes(quality.data, by_quality).size == (900, 700)
    assert any(c.startswith("saved at JPEG quality") for c in quality.changes)
    copy = passes(smaller.data, by_size)
    assert copy.size < (900, 700) and min(copy.size) >= 300
    assert any(c.startswith("scaled 900 × 700 down to") for c in smaller.changes)
    assert never.data is None and "even at 300 px on its shorter side" in never.reason


def test_a_small_photo_is_enlarged_only_when_asked(tmp_path):
    path = tmp_path / "thumb.jpg"
    noise_image(200, 150).save(path)

    refused = fix(path)
    enlarged = fix(path, FixOptions(upscale=True))

    assert refused.data is None and refused.reason.endswith("Enlarging it needs --upscale.")
    assert passes(enlarged.data).size == (400, 300)


def test_padding_a_wide_small_photo_can_be_enough_without_upscale(tmp_path):
    path = tmp_path / "strip.jpg"
    noise_image(1000, 200).save(path)  # too wide and too small: padded to 1,000 × 400

    assert passes(fix(path).data).size == (1000, 400)


def test_gps_is_dropped_unless_kept_and_the_rest_of_the_exif_stays(tmp_path):
    path = tmp_path / "trip.jpg"
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif.get_ifd(0x8825)[1] = "N"
    noise_image(1000, 300).save(path, exif=exif)  # too wide

    dropped = Image.open(io.BytesIO(fix(path).data)).getexif()
    kept = Image.open(io.BytesIO(fix(path, FixOptions(keep_gps=True)).data)).getexif()

    assert dropped[0x010F] == "Camera maker" and 0x8825 not in dropped
    assert kept.get_ifd(0x8825)[1] == "N"


def test_a_tiffs_layout_tags_do_not_go_into_the_copys_exif(tmp_path):
    path = tmp_path / "scan.tif"
    exif = Image.Exif()
    exif[0x010F] = "Scanner maker"
    noise_image(400, 300).save(path, "TIFF", exif=exif, compression="tiff_lzw")

    copied = Image.open(io.BytesIO(fix(path).data)).getexif()

    assert dict(copied) == {0x010F: "Scanner maker"}


@pytest.mark.skipif(not ADOBE_RGB.is_file(), reason=f"no Adobe RGB profile at {ADOBE_RGB} to test with")
def test_colours_are_converted_to_srgb_from_the_embedded_profile(tmp_path):
    path = tmp_path / "adobe.tif"
    Image.new("RGB", (400, 300), (0, 200, 0)).save(path, "TIFF", icc_profile=ADOBE_RGB.read_bytes())

    fixed = fix(path)

    assert any(c.startswith("converted colours from") and c.endswith("to sRGB") for c in fixed.changes)
    r, g, b = Image.open(io.BytesIO(fixed.data)).getpixel((200, 150))
    assert g > 200 and r < 20  # Adobe RGB's green is more saturated than sRGB can show: clipped


def test_a_damaged_file_or_a_bomb_is_not_fixed_and_says_why(tmp_path):
    bomb = make_png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    damaged = tmp_path / "damaged.webp"
    data = io.BytesIO()
    noise_image(400, 300).save(data, "WEBP")
    damaged.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])

    assert fix(bomb).data is None and "decompression bomb" in fix(bomb).reason
    result = fix(damaged)
    assert result.data is None and result.reason


def test_fix_files_leaves_the_damaged_and_never_writes_outside_out(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    out = tmp_path / "out"
    out.mkdir()

    records = list(fix_files([photos], out))

    assert [(Path(r.original).name, r.action) for r in records] == [("cut.png", NOT_FIXED)]
    assert [p.name for p in out.iterdir()] == [OUTPUT_MARKER]


# --- publish -------------------------------------------------------------------------------


def test_a_clash_gets_a_suffix_and_nothing_is_overwritten(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"first")

    second = publish_new(tmp_path, "a.jpg", lambda fh: fh.write(b"second"))
    third = publish_new(tmp_path, "a.jpg", lambda fh: fh.write(b"third"))

    assert (second.name, third.name) == ("a-1.jpg", "a-2.jpg")
    assert (tmp_path / "a.jpg").read_bytes() == b"first" and third.read_bytes() == b"third"
    assert free_name(tmp_path, "a.jpg", {"a-3.jpg"}) == "a-4.jpg"
    assert link_new(tmp_path, "a.jpg", lambda target: os.link(second, target)).name == "a-3.jpg"


def test_a_full_disk_leaves_no_half_file(tmp_path):
    def fill(fh):
        fh.write(b"half of it")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        publish_new(tmp_path, "a.jpg", fill)

    assert list(tmp_path.iterdir()) == []


def test_a_16_bit_grey_png_keeps_its_tones(tmp_path):
    path = tmp_path / "scan16.png"
    tones = np.zeros((200, 1000), dtype="<u2")
    tones[:, :500] = 40_000  # 40,000 / 65,535 of white: a light grey
    Image.frombytes("I;16", (1000, 200), tones.tobytes()).save(path)

    copy = passes(fix(path).data)

    assert abs(copy.convert("L").getpixel((250, 200)) - 40_000 * 255 // 65_535) <= 3
    assert copy.convert("L").getpixel((750, 200)) <= 3
