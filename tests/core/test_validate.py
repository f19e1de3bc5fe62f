from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

from core.models import TEN_MB, Constraints, Problem, ProbedImage, ScannedFile
from core.probe import probe_file
from core.validate import PROBLEM_CODES, is_valid, validate
from tests.imagefiles import (
    make_corrupt_jpeg,
    make_ftyp_file,
    make_image,
    make_jpeg,
    make_png,
    make_png_claiming,
    make_truncated_jpeg,
)

KLING = Constraints()


def image(width: int | None = 1000, height: int | None = 1000, *, size=1000, fmt="JPEG", problems=()) -> ProbedImage:
    return ProbedImage("/photos/x.jpg", size, 0, "0" * 64, fmt, width, height, tuple(problems))


def found(img: ProbedImage, constraints: Constraints = KLING) -> list[tuple[str, str]]:
    return [(p.code, p.message) for p in validate(img, constraints)]


def probed(path: Path) -> ProbedImage:
    st = os.stat(path)
    return probe_file(ScannedFile(str(path), st.st_size, st.st_mtime_ns))


def test_a_good_image_has_no_problems():
    assert validate(image(), KLING) == ()
    assert is_valid(())


@pytest.mark.parametrize("width, height", [(300, 300), (300, 700), (700, 300)])
def test_exactly_the_minimum_side_passes(width, height):
    assert validate(image(width, height), KLING) == ()


@pytest.mark.parametrize("width, height", [(299, 500), (500, 299), (299, 299)])
def test_one_pixel_under_the_minimum_side_fails(width, height):
    assert [code for code, _ in found(image(width, height))] == ["too_small"]


def test_too_small_says_what_and_why():
    assert found(image(200, 180)) == [("too_small", "200 × 180 is under 300 px on its shorter side.")]


@pytest.mark.parametrize("width, height", [(750, 300), (300, 750), (2500, 1000), (1000, 2500)])
def test_exactly_two_and_a_half_to_one_passes_both_ways(width, height):
    assert validate(image(width, height), KLING) == ()


def test_one_pixel_wider_than_the_ratio_fails():
    assert found(image(751, 300)) == [("too_wide", "751 × 300 is wider than 2.5:1.")]
    assert found(image(2048, 600)) == [("too_wide", "2,048 × 600 is wider than 2.5:1.")]


def test_one_pixel_taller_than_the_ratio_fails():
    assert found(image(300, 751)) == [("too_tall", "300 × 751 is taller than 1:2.5.")]


def test_the_ratio_is_compared_exactly_not_in_floating_point():
    width, height = 5 * 10**17 + 1, 2 * 10**17
    assert width / height == 2.5  # floating point cannot see the difference
    assert [code for code, _ in found(image(width, height))] == ["too_wide"]


def test_other_ratio_bounds_are_worded_from_the_fraction():
    widescreen = Constraints(max_ratio=Fraction(16, 9))
    assert found(image(1600, 900), widescreen) == []
    assert found(image(1601, 900), widescreen) == [("too_wide", "1,601 × 900 is wider than 16:9.")]
    assert found(image(900, 1601), widescreen) == [("too_tall", "900 × 1,601 is taller than 9:16.")]
    three_to_one = Constraints(max_ratio=Fraction(3))
    assert found(image(901, 300), three_to_one) == [("too_wide", "901 × 300 is wider than 3:1.")]


def test_exactly_ten_megabytes_passes_and_one_byte_more_fails():
    assert validate(image(size=TEN_MB), KLING) == ()
    assert found(image(size=TEN_MB + 1)) == [
        ("too_large", "10,485,761 bytes is over the limit of 10,485,760 bytes.")
    ]


def test_too_large_in_megabytes():
    assert found(image(size=int(12.4 * 1024 * 1024))) == [("too_large", "12.4 MB is over the 10 MB limit.")]


def test_size_bounds_on_real_files(tmp_path):
    at_limit = probed(make_jpeg(tmp_path / "at.jpg", 400, 300, pad_to=TEN_MB))
    over = probed(make_jpeg(tmp_path / "over.jpg", 400, 300, pad_to=TEN_MB + 1))

    assert (at_limit.size, validate(at_limit, KLING)) == (TEN_MB, ())
    assert [p.code for p in validate(over, KLING)] == ["too_large"]


@pytest.mark.parametrize(
    "fmt, sentence",
    [
        ("GIF", "GIF is not supported: use JPG or PNG."),
        ("WEBP", "WebP is not supported: use JPG or PNG."),
        ("HEIC", "HEIC is not supported: use JPG or PNG."),
        ("BMP", "BMP is not supported: use JPG or PNG."),
        ("TIFF", "TIFF is not supported: use JPG or PNG."),
    ],
)
def test_unsupported_formats(fmt, sentence):
    assert found(image(fmt=fmt)) == [("unsupported_format", sentence)]


def test_the_accepted_formats_come_from_the_constraints():
    three = Constraints(formats=frozenset({"JPEG", "PNG", "WEBP"}))
    assert found(image(fmt="WEBP"), three) == []
    assert found(image(fmt="GIF"), three) == [
        ("unsupported_format", "GIF is not supported: use JPG, PNG or WebP.")
    ]


def test_several_rules_broken_are_all_listed_in_order():
    problems = found(image(2048, 200, size=TEN_MB * 2, fmt="GIF"))

    assert [code for code, _ in problems] == ["unsupported_format", "too_large", "too_small", "too_wide"]


def test_unknown_dimensions_skip_the_pixel_rules_only():
    heic = image(None, None, size=TEN_MB + 1, fmt="HEIC")

    assert [code for code, _ in found(heic)] == ["unsupported_format", "too_large"]


def test_the_rules_a_copy_can_repair_are_marked_fixable():
    problems = validate(image(2048, 200, size=TEN_MB * 2, fmt="GIF"), KLING)

    assert [(p.code, p.fixable) for p in problems] == [
        ("unsupported_format", True), ("too_large", True), ("too_small", True), ("too_wide", True)
    ]


def test_a_format_this_pillow_cannot_decode_is_not_fixable():
    # Its pixel size is unknown: nothing could be read to make a copy from.
    problems = validate(image(None, None, size=TEN_MB + 1, fmt="JXL"), KLING)

    assert [(p.code, p.fixable) for p in problems] == [("unsupported_format", False), ("too_large", False)]


@pytest.mark.parametrize(
    "code", ["empty", "unreadable", "not_an_image", "corrupt", "truncated", "decompression_bomb"]
)
def test_a_damaged_file_is_not_fixable(code):
    assert not any(p.fixable for p in validate(image(problems=[Problem(code, "its own sentence")]), KLING))


@pytest.mark.parametrize(
    "code", ["empty", "unreadable", "not_an_image", "corrupt", "truncated", "decompression_bomb"]
)
def test_a_file_unusable_by_itself_gets_only_its_own_problem(code):
    own = Problem(code, "its own sentence")
    # Everything else about it breaks the rules too; none of that is said.
    img = image(100, 5000, size=TEN_MB * 3, fmt="GIF", problems=[own])

    assert validate(img, KLING) == (own,)
    assert not is_valid((own,))


def test_a_note_does_not_block_and_the_rules_still_apply():
    note = Problem("extension_mismatch", "This is a PNG file although its name ends in .jpg.", blocking=False)

    assert validate(image(fmt="PNG", problems=[note]), KLING) == (note,)
    assert is_valid((note,))
    problems = validate(image(200, 200, fmt="PNG", problems=[note]), KLING)
    assert [p.code for p in problems] == ["extension_mismatch", "too_small"]
    assert not is_valid(problems)


def test_the_derived_sample_files_fail_for_the_reason_they_were_made(samples):
    expected = {
        "astronaut_thumbnail.jpg": [("too_small", "200 × 200 is under 300 px on its shorter side.")],
        "temple_panorama.jpg": [("too_wide", "2,048 × 600 is wider than 2.5:1.")],
        "flower.gif": [("unsupported_format", "GIF is not supported: use JPG or PNG.")],
        "hopper_truncated.jpg": [("truncated", "The file is cut short: it ends before its end-of-image marker.")],
        "coffee_really_a_png.jpg": [("extension_mismatch", "This is a PNG file although its name ends in .jpg.")],
        "notes_not_a_photo.jpg": [("not_an_image", "This is not an image, although its name ends in .jpg.")],
    }
    for name, problems in expected.items():
        assert found(probed(samples / name)) == problems, name
    assert is_valid(validate(probed(samples / "coffee_really_a_png.jpg"), KLING))


def test_the_real_sample_photos_all_pass(samples):
    photos = ["sk_astronaut.png", "sk_camera.png", "mpl_grace_hopper.jpg", "fr_obama.jpg", "fr_biden.jpg",
              "sk_coffee.png", "sk_chelsea.png", "sk_rocket.png", "china.jpg", "flower.jpg"]  # fmt: skip
    for name in photos:
        assert validate(probed(samples / name), KLING) == (), name


def test_every_code_made_has_a_label_and_every_label_is_made(tmp_path):
    (tmp_path / "empty.jpg").touch()
    (tmp_path / "notes.jpg").write_text("text")
    (tmp_path / "folder.jpg").mkdir()
    paths = [
        tmp_path / "empty.jpg",
        tmp_path / "notes.jpg",
        tmp_path / "folder.jpg",
        make_corrupt_jpeg(tmp_path / "corrupt.jpg"),
        make_truncated_jpeg(tmp_path / "cut.jpg"),
        make_png_claiming(tmp_path / "bomb.png", 100_000, 100_000),
        make_png(tmp_path / "png.jpg", 1000, 300),
        make_image(tmp_path / "a.gif", 400, 400, "GIF"),
        make_jpeg(tmp_path / "big.jpg", 400, 300, pad_to=TEN_MB + 1),
        make_jpeg(tmp_path / "small.jpg", 200, 300),
        make_jpeg(tmp_path / "tall.jpg", 300, 800),
        make_ftyp_file(tmp_path / "a.heic", b"heic"),
        tmp_path / "anim.gif",
    ]
    frames = [Image.new("RGB", (400, 400), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])

    made = {p.code for path in paths for p in validate(probed(path), KLING)}

    assert made == set(PROBLEM_CODES)
    assert all(label and label[0].isupper() for label in PROBLEM_CODES.values())
