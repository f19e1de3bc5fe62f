"""core.orientation: boxes between a file's stored pixels and the upright image, checked
against where Pillow's exif_transpose really puts the pixels."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageOps

from core.orientation import displayed_box, normal_orientation, stored_box, upright_size


def turned(size, orientation, box):
    """A black image of ``size`` (as stored) with a white ``box``, carrying an EXIF orientation."""
    image = Image.new("RGB", size, (0, 0, 0))
    x, y, w, h = box
    ImageDraw.Draw(image).rectangle((x, y, x + w - 1, y + h - 1), fill=(255, 255, 255))
    image.getexif()[0x0112] = orientation  # what exif_transpose reads
    return image


@pytest.mark.parametrize("orientation", range(1, 9))
def test_displayed_box_lands_where_pillow_puts_the_pixels(orientation):
    stored_size, box = (60, 40), (5, 8, 20, 10)
    upright = ImageOps.exif_transpose(turned(stored_size, orientation, box))
    left, top, right, bottom = upright.convert("L").getbbox()
    assert displayed_box(box, orientation, stored_size) == (left, top, right - left, bottom - top)
    assert upright.size == upright_size(stored_size, orientation)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_stored_box_is_the_inverse_of_displayed_box(orientation):
    stored_size, box = (640, 480), (100, 50, 120, 160)
    x, y, w, h = displayed_box(box, orientation, stored_size)
    x0, y0, x1, y1 = stored_box((x, y, x + w, y + h), orientation, upright_size(stored_size, orientation))
    assert (x0, y0, x1 - x0, y1 - y0) == box


@pytest.mark.parametrize("orientation", [None, 0, 9, -1])
def test_unknown_orientation_counts_as_upright(orientation):
    assert normal_orientation(orientation) == 1
    assert displayed_box((1, 2, 3, 4), orientation, (10, 10)) == (1, 2, 3, 4)
    assert stored_box((1, 2, 4, 6), orientation, (10, 10)) == (1, 2, 4, 6)
    assert upright_size((10, 20), orientation) == (10, 20)
