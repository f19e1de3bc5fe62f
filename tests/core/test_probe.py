from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.models import ScannedFile
from core.probe import IMAGE_EXTENSIONS, probe_data, probe_file
from core.validate import PROBLEM_CODES, is_valid
from tests.imagefiles import (
    image_bytes,
    jpeg_scan_offset,
    make_corrupt_jpeg,
    make_ftyp_file,
    make_image,
    make_jpeg,
    make_png,
    noise_image,
    make_png_claiming,
    make_truncated_jpeg,
    make_truncated_png,
    png_chunk,
)


def scanned(path: Path) -> ScannedFile:
    st_ = os.stat(path)
    return ScannedFile(str(path), st_.st_size, st_.st_mtime_ns)


def probe(path: Path, **kw):
    return probe_file(scanned(path), **kw)


def codes(image) -> list[str]:
    return [p.code for p in image.problems]


both_depths = pytest.mark.parametrize("deep", [True, False], ids=["deep", "shallow"])


@both_depths
@pytest.mark.parametrize("fmt, name", [("JPEG", "a.jpg"), ("PNG", "a.png")])
def test_a_good_image(tmp_path, fmt, name, deep):
    path = make_image(tmp_path / name, 640, 427, fmt)

    image = probe(path, deep=deep)

    assert (image.format, image.width, image.height) == (fmt, 640, 427)
    assert image.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (image.path, image.size) == (str(path), path.stat().st_size)
    assert image.problems == ()


def test_probe_file_and_probe_data_agree(tmp_path):
    path = make_jpeg(tmp_path / "a.jpg")
    f = scanned(path)

    assert probe_file(f) == probe_data(f, path.read_bytes())


def test_size_is_as_stored_not_as_exif_rotates_it(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° to display
    path = make_jpeg(tmp_path / "portrait.jpg", 400, 300, exif=exif)

    image = probe(path)

    assert (image.width, image.height) == (400, 300)


@pytest.mark.parametrize(
    "fmt, name", [("GIF", "a.gif"), ("WEBP", "a.webp"), ("BMP", "a.bmp"), ("TIFF", "a.tif")]
)
def test_other_formats_are_identified_with_their_size(tmp_path, fmt, name):
    image = probe(make_image(tmp_path / name, 320, 310, fmt))

    assert (image.format, image.width, image.height, image.problems) == (fmt, 320, 310, ())


@pytest.mark.parametrize("major, brands", [(b"heic", (b"mif1", b"heic")), (b"mif1", (b"mif1", b"heic"))])
def test_heic_is_identified_by_its_ftyp_box_alone(tmp_path, major, brands):
    # Only the box, no picture: still named HEIC (pillow-heif then says it is damaged).
    image = probe(make_ftyp_file(tmp_path / "IMG_0001.HEIC", major, brands))

    assert (image.format, image.width, image.height) == ("HEIC", None, None)


@pytest.mark.parametrize("fmt, name, label", [("HEIF", "IMG_0001.HEIC", "HEIC"), ("AVIF", "web.avif", "AVIF")])
def test_heic_and_avif_are_read_with_their_size(tmp_path, fmt, name, label):
    image = probe(make_image(tmp_path / name, 320, 310, fmt))

    assert (image.format, image.width, image.height, image.problems) == (label, 320, 310, ())


def test_an_animated_gif_gets_a_note_that_only_its_first_frame_is_used(tmp_path):
    frames = [noise_image(320, 310) for _ in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:])

    image = probe(path)

    assert [(p.code, p.blocking) for p in image.problems] == [("animated", False)]
    assert "3 frames" in image.problems[0].message


def test_content_decides_not_the_name(tmp_path):
    path = tmp_path / "export.dat"
    path.write_bytes(image_bytes(400, 300, "JPEG"))

    image = probe(path)

    assert image.format == "JPEG"
    assert [(p.code, p.blocking) for p in image.problems] == [("extension_mismatch", False)]


def test_a_png_named_jpg_is_valid_with_a_note(tmp_path):
    image = probe(make_png(tmp_path / "coffee.jpg", 560, 400))

    assert (image.format, image.width, image.height) == ("PNG", 560, 400)
    assert [(p.code, p.message, p.blocking) for p in image.problems] == [
        ("extension_mismatch", "This is a PNG file although its name ends in .jpg.", False)
    ]
    assert is_valid(image.problems)


@pytest.mark.parametrize("name", ["notes.txt", "video.mp4", "README", "data.json"])
def test_files_that_are_not_images_and_do_not_claim_to_be_are_not_reported(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"just some text\n")

    assert probe(path) is None


def test_a_video_is_not_reported_but_a_video_named_heic_is(tmp_path):
    video = make_ftyp_file(tmp_path / "clip.mp4", b"isom", (b"isom", b"mp41"))
    fake = make_ftyp_file(tmp_path / "clip.heic", b"isom", (b"isom", b"mp41"))

    assert probe(video) is None
    assert codes(probe(fake)) == ["not_an_image"]


def test_a_text_file_named_jpg_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("This is a text file with a .jpg name.\n")

    image = probe(path)

    assert (image.format, image.width, image.height) == (None, None, None)
    assert image.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [(p.code, p.message) for p in image.problems] == [
        ("not_an_image", "This is not an image, although its name ends in .jpg.")
    ]


def test_an_empty_image_file_gets_only_empty(tmp_path):
    (tmp_path / "empty.jpg").touch()
    (tmp_path / "empty.txt").touch()

    image = probe(tmp_path / "empty.jpg")

    assert [(p.code, p.message) for p in image.problems] == [("empty", "The file is empty (0 bytes).")]
    assert probe(tmp_path / "empty.txt") is None


def test_a_path_that_cannot_be_read_is_unreadable(tmp_path):
    folder = tmp_path / "IMG_0001.jpg"  # a folder: opening it fails even for root
    folder.mkdir()

    image = probe_file(ScannedFile(str(folder), 4096, 1))

    assert (image.sha256, image.format) == (None, None)
    assert [(p.code, p.message) for p in image.problems] == [("unreadable", "This is a folder, not a file.")]


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root (and Windows) can read any file")
def test_a_file_without_read_permission_is_unreadable(tmp_path):
    path = make_jpeg(tmp_path / "locked.jpg")
    path.chmod(0)

    image = probe(path)

    assert image.sha256 is None
    assert [(p.code, p.message) for p in image.problems] == [
        ("unreadable", "Permission denied: this account may not read the file.")
    ]


def test_a_file_that_vanished_after_the_scan(tmp_path):
    path = make_jpeg(tmp_path / "gone.jpg")
    f = scanned(path)
    path.unlink()

    image = probe_file(f)

    assert [(p.code, p.message) for p in image.problems] == [
        ("unreadable", "The file disappeared before it could be read.")
    ]
    assert (image.size, image.mtime_ns) == (f.size, f.mtime_ns)


@both_depths
def test_a_truncated_jpeg_passes_pillow_verify_but_not_the_probe(tmp_path, deep):
    path = make_truncated_jpeg(tmp_path / "cut.jpg", 400, 300, keep=0.6)
    with Image.open(path) as im:
        im.verify()  # does not raise: verify() cannot see a cut JPEG

    image = probe(path, deep=deep)

    assert (image.format, image.width, image.height) == ("JPEG", 400, 300)
    assert codes(image) == ["truncated"]


@both_depths
def test_a_truncated_jpeg_with_an_exif_thumbnail_is_still_caught(tmp_path, deep):
    path = make_truncated_jpeg(tmp_path / "cut.jpg", 400, 300, keep=0.5, thumbnail=True)
    # The thumbnail's own end-of-image marker survives the cut: looking for FFD9 anywhere is not enough.
    assert b"\xff\xd9" in path.read_bytes()

    assert codes(probe(path, deep=deep)) == ["truncated"]


def test_a_complete_jpeg_with_a_thumbnail_is_fine(tmp_path):
    assert probe(make_jpeg(tmp_path / "a.jpg", thumbnail=True)).problems == ()


def test_data_after_the_end_marker_is_not_truncation(tmp_path):
    # Phones append data (motion photo video, trailers) after the end-of-image marker.
    path = make_jpeg(tmp_path / "motion.jpg")
    path.write_bytes(path.read_bytes() + b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))

    assert probe(path).problems == ()


@both_depths
def test_a_truncated_png(tmp_path, deep):
    image = probe(make_truncated_png(tmp_path / "cut.png", 400, 300), deep=deep)

    assert (image.format, image.width, image.height) == ("PNG", 400, 300)
    assert [(p.code, p.message) for p in image.problems] == [
        ("truncated", "The file is cut short: it ends before its IEND chunk.")
    ]


def test_a_png_whose_pixel_data_stops_early_is_truncated_by_the_decode(tmp_path):
    good = image_bytes(400, 300, "PNG")
    start = good.index(b"IDAT") - 4
    length = int.from_bytes(good[start : start + 4], "big")
    # Half the compressed pixels, then a proper IEND: the end-marker check passes.
    data = good[:start] + png_chunk(b"IDAT", good[start + 8 : start + 8 + length // 2]) + png_chunk(b"IEND", b"")
    (tmp_path / "short.png").write_bytes(data)

    assert probe(tmp_path / "short.png", deep=False).problems == ()
    assert [(p.code, p.message) for p in probe(tmp_path / "short.png").problems] == [
        ("truncated", "The file is cut short: its image data ends early.")
    ]


@pytest.mark.parametrize("fmt, name", [("GIF", "cut.gif"), ("BMP", "cut.bmp"), ("TIFF", "cut.tif")])
def test_other_formats_cut_short_are_found_by_the_deep_decode(tmp_path, fmt, name):
    data = image_bytes(400, 300, fmt)
    (tmp_path / name).write_bytes(data[: len(data) // 2])

    assert probe(tmp_path / name, deep=False).problems == ()
    assert codes(probe(tmp_path / name)) == ["truncated"]


@both_depths
def test_a_truncated_webp_is_caught_from_its_riff_length(tmp_path, deep):
    data = image_bytes(400, 300, "WEBP")
    (tmp_path / "cut.webp").write_bytes(data[: len(data) * 9 // 10])

    assert codes(probe(tmp_path / "cut.webp", deep=deep)) == ["truncated"]


def test_a_corrupt_jpeg_body_is_found_by_the_deep_decode_only(tmp_path):
    path = make_corrupt_jpeg(tmp_path / "broken.jpg", 400, 300)

    deep = probe(path, deep=True)
    shallow = probe(path, deep=False)

    assert (deep.width, deep.height) == (400, 300)
    assert codes(deep) == ["corrupt"]
    assert shallow.problems == ()


def test_a_damaged_png_header_is_corrupt(tmp_path):
    data = bytearray(image_bytes(400, 300, "PNG"))
    data[20:24] = b"\x00\x00\x00\x00"  # IHDR's height, now zero and its CRC wrong
    (tmp_path / "bad.png").write_bytes(bytes(data))

    image = probe(tmp_path / "bad.png")

    assert (image.format, codes(image)) == ("PNG", ["corrupt"])


@both_depths
def test_a_decompression_bomb_is_caught_from_the_header(tmp_path, deep):
    limit_before = Image.MAX_IMAGE_PIXELS
    # The claimed pixels are not in the file: decoding would fail as "truncated".
    path = make_png_claiming(tmp_path / "bomb.png", 100_000, 100_000)

    image = probe(path, deep=deep)

    assert codes(image) == ["decompression_bomb"]
    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_a_bomb_just_over_the_limit_keeps_its_size(tmp_path):
    side = int(Image.MAX_IMAGE_PIXELS**0.5) + 1
    path = make_png_claiming(tmp_path / "bomb.png", side, side)

    with pytest.warns(Image.DecompressionBombWarning):
        image = probe(path)

    assert (image.width, image.height) == (side, side)
    assert [p.code for p in image.problems] == ["decompression_bomb"]
    assert f"{side:,} × {side:,}" in image.problems[0].message


def test_an_image_just_under_the_bomb_limit_is_not_a_bomb(tmp_path):
    side = int(Image.MAX_IMAGE_PIXELS**0.5)
    image = probe(make_png_claiming(tmp_path / "big.png", side, side), deep=False)

    assert (image.width, image.height, image.problems) == (side, side, ())


class TestLargeFilesAreStreamed:
    """Above ``stream_over`` the bytes are hashed in chunks and only the header is read."""

    def test_same_answer_as_reading_it_whole(self, tmp_path):
        path = make_jpeg(tmp_path / "a.jpg", 500, 400)

        streamed = probe(path, stream_over=1000)

        assert streamed == probe(path)
        assert streamed.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()

    @pytest.mark.parametrize("make", [make_truncated_jpeg, make_truncated_png])
    def test_the_end_marker_is_still_checked(self, tmp_path, make):
        path = make(tmp_path / ("cut.png" if make is make_truncated_png else "cut.jpg"))

        assert codes(probe(path, stream_over=1000)) == ["truncated"]

    def test_pixels_are_not_decoded(self, tmp_path):
        path = make_corrupt_jpeg(tmp_path / "broken.jpg")

        assert probe(path, stream_over=1000).problems == ()
        assert codes(probe(path)) == ["corrupt"]


def test_many_threads_give_the_same_answers_as_one(tmp_path):
    paths = [
        make_jpeg(tmp_path / "a.jpg", 600, 500),
        make_png(tmp_path / "b.png", 500, 400),
        make_truncated_jpeg(tmp_path / "c.jpg"),
        make_corrupt_jpeg(tmp_path / "d.jpg"),
        make_png_claiming(tmp_path / "e.png", 100_000, 100_000),
        make_image(tmp_path / "f.gif", 300, 300, "GIF"),
        make_truncated_png(tmp_path / "g.png"),
    ]
    files = [scanned(p) for p in paths] * 6
    expected = [probe_file(f) for f in files]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(probe_file, files)) == expected


def test_image_extensions_cover_what_users_call_photos():
    common = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic", ".heif", ".bmp", ".tif", ".tiff", ".avif"}
    assert common <= IMAGE_EXTENSIONS


_GOOD_JPEG = image_bytes(120, 90, "JPEG")
_GOOD_PNG = image_bytes(120, 90, "PNG")


def _check_never_raises(name: str, data: bytes, deep: bool) -> None:
    image = probe_data(ScannedFile(f"/x/{name}", len(data), 0), data, deep=deep)
    assert image is not None  # every name here claims an image
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert {p.code for p in image.problems} <= set(PROBLEM_CODES)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=300),
    prefix=st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBP"]),
)
def test_arbitrary_bytes_never_raise(data, prefix):
    _check_never_raises("photo.jpg", prefix + data, deep=False)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_damaged_real_images_never_raise_even_when_decoded(data):
    name, good = data.draw(st.sampled_from([("a.jpg", _GOOD_JPEG), ("a.png", _GOOD_PNG)]))
    # Keep the header so the size stays small: damage the pixel data, then maybe cut it.
    start = jpeg_scan_offset(good) if name == "a.jpg" else 40
    damaged = bytearray(good)
    for _ in range(data.draw(st.integers(0, 8))):
        damaged[data.draw(st.integers(start, len(good) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(start, len(good)))
    _check_never_raises(name, bytes(damaged[:cut]), deep=True)


# Sizes from resources/samples/ATTRIBUTION.md.
SAMPLE_SIZES = {
    "sk_astronaut.png": ("PNG", 512, 512),
    "sk_camera.png": ("PNG", 512, 512),
    "mpl_grace_hopper.jpg": ("JPEG", 512, 600),
    "fr_obama.jpg": ("JPEG", 910, 1137),
    "fr_biden.jpg": ("JPEG", 970, 2204),
    "sk_coffee.png": ("PNG", 600, 400),
    "sk_chelsea.png": ("PNG", 451, 300),
    "sk_rocket.png": ("PNG", 640, 427),
    "china.jpg": ("JPEG", 640, 427),
    "flower.jpg": ("JPEG", 640, 427),
    "astronaut_thumbnail.jpg": ("JPEG", 200, 200),
    "temple_panorama.jpg": ("JPEG", 2048, 600),
    "flower.gif": ("GIF", 640, 427),
    "hopper_truncated.jpg": ("JPEG", 512, 600),
    "coffee_really_a_png.jpg": ("PNG", 560, 400),
}


@both_depths
def test_the_sample_photos_have_their_documented_sizes(samples, deep):
    for name, expected in SAMPLE_SIZES.items():
        image = probe(samples / name, deep=deep)
        assert (image.format, image.width, image.height) == expected, name


def test_the_damaged_samples_have_their_problems(samples):
    assert codes(probe(samples / "hopper_truncated.jpg")) == ["truncated"]
    assert codes(probe(samples / "notes_not_a_photo.jpg")) == ["not_an_image"]
    assert codes(probe(samples / "coffee_really_a_png.jpg")) == ["extension_mismatch"]
    assert probe(samples / "ATTRIBUTION.md") is None
