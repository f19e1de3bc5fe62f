"""Make a copy of one photo that passes the rules: the pixels and the encoding.

:func:`fix_image` takes the photo's file and the problems :func:`core.validate.validate`
found, and returns the bytes of a conforming copy with what changed and why, or says why
no copy can be made. It writes nothing (core/copies.py names, checks and writes copies).

What it does, in order: the first frame only; the EXIF orientation baked into the pixels;
colours converted to sRGB from the embedded ICC profile; transparency flattened on a
background colour; the shape brought inside the allowed aspect ratios (padding, or a crop
that keeps every known face whole); a photo too small enlarged only when asked (Lanczos);
then encoded as JPEG (or PNG when lossless output is asked for), searching the JPEG quality
first and downscaling only when no quality fits, never below the minimum side. GPS data is
dropped unless asked to keep it.
"""

from __future__ import annotations

import io
import math
from dataclasses import astuple, dataclass, field
from fractions import Fraction
from typing import Sequence

from PIL import Image, ImageCms, ImageFilter, ImageOps

from .models import Constraints, Problem
from .orientation import displayed_box, normal_orientation
from .probe import DECODE_ERRORS, format_label
from .scan import file_path

#: JPEG qualities tried, best first: the highest that fits is used.
JPEG_QUALITIES = (92, 85, 78, 70, 60, 50)
#: Below this quality a smaller picture looks better than more compression.
_GPS_IFD = 0x8825
_SUB_IFDS = (0x8769, _GPS_IFD)  # the Exif and GPS sub-IFDs
#: A TIFF's tags that describe its own pixel layout (sizes, strips, compression): its
#: "EXIF" as Pillow reads it, and wrong in any other file.
_TIFF_LAYOUT_TAGS = frozenset(
    {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 338, 339, 347, 513, 514}
)
_ORIENTATION = 0x0112
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

FITS = ("pad", "crop")
PADS = ("blur", "colour")


@dataclass(frozen=True, slots=True)
class FixOptions:
    """How copies are made; the defaults are the ``fix`` command's."""

    lossless: bool = False  # PNG copies instead of JPEG
    background: tuple[int, int, int] = (255, 255, 255)  # what transparency is flattened on
    keep_gps: bool = False
    fit: str = "pad"  # "pad" or "crop", for photos outside the allowed aspect ratios
    pad: str = "blur"  # "blur" (a blurred extension of the photo) or "colour" (the background)
    upscale: bool = False  # enlarge photos under the minimum side (Lanczos)
    constraints: Constraints = field(default_factory=Constraints)

    @property
    def extension(self) -> str:
        return ".png" if self.lossless else ".jpg"


@dataclass(frozen=True, slots=True)
class Box:
    """A face box in pixels of the file as stored (as providers give them)."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Fixed:
    """A conforming copy's bytes, or (``data`` None) the reason none could be made."""

    data: bytes | None
    changes: tuple[str, ...] = ()
    reason: str = ""
    size: tuple[int, int] | None = None


class CannotFix(Exception):
    """This photo cannot be made to pass; the message says why in a sentence."""


def fix_image(
    path: str,
    problems: Sequence[Problem],
    options: FixOptions,
    faces: Sequence[Box] = (),
    *,
    fmt: str | None = None,
    data: bytes | None = None,
) -> Fixed:
    """Make the bytes of a copy of the photo at ``path`` that passes ``options.constraints``.

    :param path: the original (only read).
    :param problems: what :func:`core.validate.validate` found; all blocking ones must be
        fixable, and a photo too small needs ``options.upscale``.
    :param faces: known face boxes, in stored pixels, for ``fit="crop"``.
    :param fmt: the format as the probe named it (``HEIC`` where Pillow says ``HEIF``).
    :param data: the file's content when it has been read already (it is not read again);
        a PNG's image data may be joined in one chunk (core.probe.png_in_one_idat).
    :returns: the copy, or the reason there is none. Never raises for a bad file.
    """
    try:
        _refuse_unfixable(problems, options)
        with Image.open(file_path(path) if data is None else io.BytesIO(data)) as original:
            if data is not None:
                # Decoded in one call, without the GIL between chunks, so two threads
                # fixing photos really run at once (see core.probe.png_in_one_idat).
                original.decodermaxblock = max(original.decodermaxblock, len(data))
            return _fix_opened(original, options, faces, fmt or original.format or "?")
    except CannotFix as why:
        return Fixed(None, reason=str(why))
    except Image.DecompressionBombError:
        return Fixed(None, reason="It has too many pixels to be decoded safely (a possible decompression bomb).")
    except MemoryError:
        return Fixed(None, reason="There is not enough memory to decode it.")
    except DECODE_ERRORS as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise  # the disk or the file system, not the picture: the caller says so
        return Fixed(None, reason=f"It is damaged and cannot be decoded ({error or type(error).__name__}).")


def _refuse_unfixable(problems: Sequence[Problem], options: FixOptions) -> None:
    for problem in problems:
        if problem.blocking and not problem.fixable:
            raise CannotFix(problem.message)
    # A photo too small without --upscale is refused after the shape is fixed: padding a
    # wide photo to the allowed ratio can lift its shorter side over the minimum.


def _fix_opened(im: Image.Image, options: FixOptions, faces: Sequence[Box], source_format: str) -> Fixed:
    changes: list[str] = []
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
        changes.append(f"kept the first of {im.n_frames} frames")
    stored_size = im.size
    exif = im.getexif()
    orientation = exif.get(_ORIENTATION, 1)
    icc = im.info.get("icc_profile")
    im.load()
    if normal_orientation(orientation) != 1:
        im = ImageOps.exif_transpose(im)
        changes.append(f"turned upright (EXIF orientation {orientation})")
        faces = [Box(*map(round, displayed_box(astuple(box), orientation, stored_size))) for box in faces]
    im = _to_srgb(im, icc, changes)
    im = _flatten(im, options.background, changes)
    im = _fit_ratio(im, options, faces, changes)
    im = _enlarge(im, options, changes)
    exif_bytes = _exif_for_copy(exif, options.keep_gps, changes)
    data, im = _encode_within(im, options, exif_bytes, changes)
    target = "PNG" if options.lossless else "JPEG"
    if source_format != target:
        changes.insert(0, f"converted {format_label(source_format)} to {format_label(target)}")
    return Fixed(data, tuple(changes), size=im.size)


# --- colour --------------------------------------------------------------------------------


def _to_srgb(im: Image.Image, icc: bytes | None, changes: list[str]) -> Image.Image:
    """RGB or RGBA (or L) in sRGB: from the embedded profile when there is one."""
    alpha = im.getchannel("A") if "A" in im.getbands() else None
    if im.mode.startswith("I;16") or im.mode == "I":
        # 16-bit grey: scaled to 8 bits (a plain conversion clips everything over 255 to white).
        im = im.convert("I").point(lambda value: value / 256).convert("L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        alpha = im.getchannel("A") if im.mode == "RGBA" else None
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            name = ImageCms.getProfileDescription(source).strip()
        except (OSError, ImageCms.PyCMSError):
            source, name = None, ""
        if source is not None and "srgb" not in name.casefold():
            base = im.convert("CMYK" if im.mode == "CMYK" else ("L" if im.mode in ("L", "LA") else "RGB"))
            try:
                converted = ImageCms.profileToProfile(base, source, _SRGB, outputMode="RGB")
            except ImageCms.PyCMSError:
                converted = None  # a profile that does not fit the pixels: plain conversion below
            if converted is not None:
                changes.append(f"converted colours from {name or 'the embedded profile'} to sRGB")
                if alpha is not None:
                    converted.putalpha(alpha)
                return converted
    if im.mode in ("RGB", "RGBA", "L"):
        return im
    if im.mode in ("LA", "PA"):
        return im.convert("RGBA")
    converted = im.convert("RGB")
    if alpha is not None:
        converted.putalpha(alpha)
    if im.mode == "CMYK":
        changes.append("converted CMYK to RGB")
    return converted


def _flatten(im: Image.Image, background: tuple[int, int, int], changes: list[str]) -> Image.Image:
    if "A" not in im.getbands():
        return im
    alpha = im.getchannel("A")
    if alpha.getextrema()[0] < 255:
        changes.append("flattened transparency on " + ("white" if background == (255, 255, 255) else "#%02x%02x%02x" % background))
    flat = Image.new("RGB", im.size, background)
    flat.paste(im.convert("RGB"), mask=alpha)
    return flat


# --- shape ---------------------------------------------------------------------------------


def allowed_size(width: int, height: int, ratio: Fraction) -> tuple[int, int]:
    """The smallest size holding ``width × height`` whose ratio is within ``ratio`` (pad)."""
    if width * ratio.denominator > height * ratio.numerator:  # too wide: add height
        return width, math.ceil(width * ratio.denominator / ratio.numerator)
    if height * ratio.denominator > width * ratio.numerator:  # too tall: add width
        return math.ceil(height * ratio.denominator / ratio.numerator), height
    return width, height


def _fit_ratio(im: Image.Image, options: FixOptions, faces: Sequence[Box], changes: list[str]) -> Image.Image:
    ratio = options.constraints.max_ratio
    width, height = im.size
    padded = allowed_size(width, height, ratio)
    if padded == (width, height):
        return im
    shape = f"{width:,} × {height:,}"
    if options.fit == "crop":
        cropped = _crop_around(im, faces, ratio)
        if cropped is not None:
            changes.append(f"cropped {shape} to {cropped.width:,} × {cropped.height:,} (the allowed ratio)")
            return cropped
        changes.append("padded instead of cropping, which would cut a face")
    canvas_size = padded
    left, top = (canvas_size[0] - width) // 2, (canvas_size[1] - height) // 2
    canvas = Image.new(im.mode, canvas_size, options.background if im.mode == "RGB" else options.background[0])
    if options.pad == "blur":
        for box, where in _blurred_edges(im, canvas_size, (left, top)):
            canvas.paste(box, where)
        how = "a blurred extension"
    else:
        how = "a solid colour"
    canvas.paste(im, (left, top))
    changes.append(f"padded {shape} to {canvas_size[0]:,} × {canvas_size[1]:,} with {how} (the allowed ratio)")
    return canvas


def _blurred_edges(
    im: Image.Image, canvas: tuple[int, int], offset: tuple[int, int]
) -> list[tuple[Image.Image, tuple[int, int]]]:
    """The two padding bands, each the photo's nearest edge mirrored, stretched and
    blurred (sky continues up, water down), and where they go. Blurred at 1/8 scale:
    cheap whatever the photo's size."""
    width, height = im.size
    left, top = offset
    if top:  # bands above and below
        bands = [((0, 0, width, height // 4), (width, top), (0, 0), Image.Transpose.FLIP_TOP_BOTTOM),
                 ((0, height - height // 4, width, height), (width, canvas[1] - height - top), (0, top + height),
                  Image.Transpose.FLIP_TOP_BOTTOM)]  # fmt: skip
    else:  # bands left and right
        bands = [((0, 0, width // 4, height), (left, height), (0, 0), Image.Transpose.FLIP_LEFT_RIGHT),
                 ((width - width // 4, 0, width, height), (canvas[0] - width - left, height), (left + width, 0),
                  Image.Transpose.FLIP_LEFT_RIGHT)]  # fmt: skip
    out = []
    for crop, size, where, flip in bands:
        if size[0] <= 0 or size[1] <= 0:
            continue
        small = (max(1, size[0] // 8), max(1, size[1] // 8))
        band = im.crop(crop).transpose(flip).resize(small, Image.Resampling.BILINEAR, reducing_gap=2.0)
        out.append((band.filter(ImageFilter.GaussianBlur(3)).resize(size, Image.Resampling.BILINEAR), where))
    return out


def _crop_around(im: Image.Image, faces: Sequence[Box], ratio: Fraction) -> Image.Image | None:
    """The largest window of the allowed ratio, centred on the faces; None when a face
    would be cut."""
    width, height = im.size
    wide = width * ratio.denominator > height * ratio.numerator
    length = width if wide else height
    keep = (height * ratio.numerator // ratio.denominator) if wide else (width * ratio.numerator // ratio.denominator)
    if faces:
        low = min(b.x if wide else b.y for b in faces)
        high = max((b.x + b.width) if wide else (b.y + b.height) for b in faces)
        if high - low > keep:
            return None
        centre = (low + high) / 2
    else:
        centre = length / 2
    start = int(min(max(0, round(centre - keep / 2)), length - keep))
    box = (start, 0, start + keep, height) if wide else (0, start, width, start + keep)
    return im.crop(box)


def _enlarge(im: Image.Image, options: FixOptions, changes: list[str]) -> Image.Image:
    minimum = options.constraints.min_side
    width, height = im.size
    if min(width, height) >= minimum:
        return im
    if not options.upscale:
        raise CannotFix(f"{width:,} × {height:,} is under {minimum:,} px on its shorter side. Enlarging it needs --upscale.")
    scale = minimum / min(width, height)
    size = _fitting(math.ceil(width * scale), math.ceil(height * scale), options.constraints)
    changes.append(f"enlarged {width:,} × {height:,} to {size[0]:,} × {size[1]:,} (Lanczos)")
    return im.resize(size, Image.Resampling.LANCZOS)


def _fitting(width: int, height: int, rules: Constraints) -> tuple[int, int]:
    """Nudge a rounded size back inside the ratio bounds by a pixel where rounding left it."""
    ratio = rules.max_ratio
    if width * ratio.denominator > height * ratio.numerator:
        width = height * ratio.numerator // ratio.denominator
    elif height * ratio.denominator > width * ratio.numerator:
        height = width * ratio.numerator // ratio.denominator
    return width, height


# --- metadata and encoding -----------------------------------------------------------------


def _exif_for_copy(exif: Image.Exif, keep_gps: bool, changes: list[str]) -> bytes:
    """The original's EXIF, orientation reset (the pixels are upright now), GPS dropped
    unless kept."""
    if not exif:
        return b""
    for ifd in _SUB_IFDS:  # loaded, or tobytes() would write offsets into nothing
        if ifd in exif:
            exif.get_ifd(ifd)
    for tag in _TIFF_LAYOUT_TAGS.intersection(exif) | ({_ORIENTATION} & set(exif)):
        del exif[tag]
    if not keep_gps and _GPS_IFD in exif:
        del exif[_GPS_IFD]
        changes.append("dropped the GPS location")
    return exif.tobytes()


def _encode_within(
    im: Image.Image, options: FixOptions, exif: bytes, changes: list[str]
) -> tuple[bytes, Image.Image]:
    """Encode under the size limit: the best JPEG quality that fits, then smaller pictures.

    :raises CannotFix: it does not fit even at the minimum side.
    """
    rules = options.constraints
    first_size = im.size
    while True:
        for quality in (None,) if options.lossless else JPEG_QUALITIES:
            data = _encode(im, options.lossless, quality, exif)
            if len(data) <= rules.max_bytes:
                if quality is not None and quality != JPEG_QUALITIES[0]:
                    changes.append(f"saved at JPEG quality {quality} to fit {rules.max_bytes / 2**20:g} MB")
                if im.size != first_size:
                    changes.append(
                        f"scaled {first_size[0]:,} × {first_size[1]:,} down to {im.size[0]:,} × {im.size[1]:,} "
                        f"to fit {rules.max_bytes / 2**20:g} MB"
                    )
                return data, im
        # Too big at the lowest quality: shrink by the area the bytes are over, and a bit.
        factor = math.sqrt(rules.max_bytes / len(data)) * 0.9
        width, height = im.size
        if min(width, height) <= rules.min_side:
            raise CannotFix(
                f"It does not fit in {rules.max_bytes / 2**20:g} MB even at {rules.min_side} px on its shorter side."
            )
        factor = max(factor, rules.min_side / min(width, height))
        size = _fitting(max(1, round(width * factor)), max(1, round(height * factor)), rules)
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(im: Image.Image, lossless: bool, quality: int | None, exif: bytes) -> bytes:
    buffer = io.BytesIO()
    if lossless:
        im.save(buffer, "PNG", exif=exif, compress_level=6)
    else:
        im.save(buffer, "JPEG", quality=quality, exif=exif)
    return buffer.getvalue()
