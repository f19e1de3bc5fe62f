"""EXIF orientation: where a point or a box of a photo lands once it is shown upright, and back.

Providers give face boxes in pixels of the file as stored; a photo whose EXIF orientation is
not 1 is shown rotated or mirrored (as ``PIL.ImageOps.exif_transpose`` turns it). The offline
detector looks at the upright image and maps its boxes back to stored pixels; the desktop's
preview maps stored boxes onto the upright image. Both use this one pair of tables.
"""

from __future__ import annotations

from typing import Callable

#: x, y, width, height.
Box = tuple[float, float, float, float]
_Map = Callable[[float, float, float, float], tuple[float, float]]

# EXIF orientation -> where a point (x, y) of the stored image (w × h) lands in the upright one.
_TO_UPRIGHT: dict[int, _Map] = {
    1: lambda x, y, w, h: (x, y),
    2: lambda x, y, w, h: (w - x, y),  # mirrored
    3: lambda x, y, w, h: (w - x, h - y),  # upside down
    4: lambda x, y, w, h: (x, h - y),  # mirrored upside down
    5: lambda x, y, w, h: (y, x),  # transposed
    6: lambda x, y, w, h: (h - y, x),  # shown turned 90° clockwise
    7: lambda x, y, w, h: (h - y, w - x),  # transversed
    8: lambda x, y, w, h: (y, w - x),  # shown turned 90° anticlockwise
}

# EXIF orientation -> where a point (u, v) of the upright image (uw × uh) lies in the stored
# one: the inverses of the table above.
_TO_STORED: dict[int, _Map] = {
    1: lambda u, v, uw, uh: (u, v),
    2: lambda u, v, uw, uh: (uw - u, v),
    3: lambda u, v, uw, uh: (uw - u, uh - v),
    4: lambda u, v, uw, uh: (u, uh - v),
    5: lambda u, v, uw, uh: (v, u),
    6: lambda u, v, uw, uh: (v, uw - u),
    7: lambda u, v, uw, uh: (uh - v, uw - u),
    8: lambda u, v, uw, uh: (uh - v, u),
}


def normal_orientation(orientation: int | None) -> int:
    """:returns: ``orientation`` when it is a valid EXIF orientation (1 to 8), else 1, as
    ``exif_transpose`` treats unknown values."""
    return orientation if orientation in _TO_UPRIGHT else 1


def upright_size(stored_size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """:returns: width and height of the image once shown upright (the turns 5 to 8 swap them)."""
    width, height = stored_size
    return (height, width) if normal_orientation(orientation) >= 5 else (width, height)


def displayed_box(box: Box, orientation: int, stored_size: tuple[int, int]) -> Box:
    """Map a box in the file's stored pixels to the upright (EXIF-applied) image.

    :param box: x, y, width, height in stored pixels.
    :param orientation: the file's EXIF orientation; values outside 1–8 count as 1.
    :param stored_size: width and height of the image as stored.
    :returns: x, y, width, height in pixels of the upright image.
    """
    to_upright = _TO_UPRIGHT[normal_orientation(orientation)]
    width, height = stored_size
    x, y, w, h = box
    ax, ay = to_upright(x, y, width, height)
    bx, by = to_upright(x + w, y + h, width, height)
    return min(ax, bx), min(ay, by), abs(bx - ax), abs(by - ay)


def stored_box(
    box: tuple[float, float, float, float], orientation: int, upright_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Take a box from the upright (EXIF-rotated) image back to the file's stored pixels.

    :param box: x0, y0, x1, y1 in the upright image, inside it.
    :param orientation: the file's EXIF orientation; values outside 1–8 count as 1.
    :param upright_size: width and height of the upright image.
    :returns: x0, y0, x1, y1 in stored pixels, rounded to whole pixels.
    """
    to_stored = _TO_STORED[normal_orientation(orientation)]
    uw, uh = upright_size
    x0, y0, x1, y1 = box
    ax, ay = to_stored(x0, y0, uw, uh)
    bx, by = to_stored(x1, y1, uw, uh)
    return round(min(ax, bx)), round(min(ay, by)), round(max(ax, bx)), round(max(ay, by))
