"""A labelled set of photos for the face rules: the real photos in ``resources/samples`` and
cases derived from them, each with its true face boxes and the verdict it should get.

Shared by ``bench/faces.py`` (which measures the detector and the rules on it) and the tests
(which hold the defaults to it). The face boxes are those of ``../shared/photos/README.md``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

SAMPLES = Path(__file__).resolve().parent.parent / "resources" / "samples"

#: Single-face portraits and their face box (x, y, width, height, pixels as stored).
PORTRAITS: dict[str, tuple[int, int, int, int]] = {
    "sk_astronaut.png": (178, 63, 89, 112),
    "sk_camera.png": (195, 113, 60, 80),
    "mpl_grace_hopper.jpg": (182, 121, 171, 211),
    "fr_obama.jpg": (369, 90, 241, 326),
    "fr_biden.jpg": (416, 175, 292, 396),
}
#: Photos without a face; sk_chelsea.png is a cat.
NO_FACE = ("china.jpg", "flower.jpg", "sk_rocket.png", "sk_coffee.png", "sk_chelsea.png")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # portrait, no_face, animal, cut_off, tiny, several, blurred, dark, bright, painted, printed
    data: bytes  # PNG
    boxes: tuple[Box, ...]  # true faces (the visible part of a cut-off one)
    #: What the verdict for an avatar should be: "yes", or "review or no" (never a plain yes).
    want_yes: bool
    #: The warning that should say why (None: any, or none for a yes).
    code: str | None


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "PNG")
    return out.getvalue()


def _open(name: str) -> Image.Image:
    with Image.open(SAMPLES / name) as image:
        return image.convert("RGB")


def cases() -> list[Case]:
    """Every case, in a stable order."""
    out: list[Case] = []
    for name, box in PORTRAITS.items():
        image = _open(name)
        x, y, w, h = box
        W, H = image.size
        stem = name.split(".")[0]
        out.append(Case(stem, "portrait", _png(image), (box,), True, None))
        # The left half of the face beyond the left edge.
        cut = x + w // 2
        out.append(Case(f"{stem}_cut_left", "cut_off", _png(image.crop((cut, 0, W, H))), ((0, y, w - w // 2, h),), False, "face_cut_off"))
        # The bottom of the face beyond the bottom edge (a chin-less crop).
        cut = y + round(h * 0.7)
        out.append(Case(f"{stem}_cut_bottom", "cut_off", _png(image.crop((0, 0, W, cut))), ((x, y, w, cut - y),), False, "face_cut_off"))
        # Scaled down until the face is 40 px tall, in the middle of a 640 × 427 grey photo.
        ratio = 40 / h
        small = image.resize((max(1, round(W * ratio)), max(1, round(H * ratio))), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (640, 427), (128, 124, 118))
        ox, oy = (640 - small.width) // 2, (427 - small.height) // 2
        canvas.paste(small, (ox, oy))
        tiny_box = (ox + round(x * ratio), oy + round(y * ratio), round(w * ratio), round(h * ratio))
        out.append(Case(f"{stem}_tiny", "tiny", _png(canvas), (tiny_box,), False, "face_small"))
        # Blurred: a Gaussian of 3 px at the 512 px the quality is measured on.
        radius = 3 * max(W, H) / 512
        out.append(Case(f"{stem}_blurred", "blurred", _png(image.filter(ImageFilter.GaussianBlur(radius))), (box,), False, "blurry"))
        out.append(Case(f"{stem}_dark", "dark", _png(ImageEnhance.Brightness(image).enhance(0.2)), (box,), False, "too_dark"))
        out.append(Case(f"{stem}_bright", "bright", _png(ImageEnhance.Brightness(image).enhance(2.6)), (box,), False, "too_bright"))
        # Painted: few colours, brush-like patches.
        painted = ImageOps.posterize(image, 3).filter(ImageFilter.ModeFilter(max(3, round(w / 25))))
        out.append(Case(f"{stem}_painted", "painted", _png(painted), (box,), False, None))
    # Two portraits side by side, each scaled to 512 px tall.
    names = list(PORTRAITS)
    for left, right in zip(names, names[1:] + names[:1]):
        images, boxes, offset = [], [], 0
        for name in (left, right):
            image = _open(name)
            ratio = 512 / image.height
            images.append(image.resize((round(image.width * ratio), 512), Image.Resampling.LANCZOS))
            x, y, w, h = PORTRAITS[name]
            boxes.append((offset + round(x * ratio), round(y * ratio), round(w * ratio), round(h * ratio)))
            offset += images[-1].width
        canvas = Image.new("RGB", (offset, 512))
        canvas.paste(images[0], (0, 0))
        canvas.paste(images[1], (images[0].width, 0))
        pair = f"{left.split('.')[0]}+{right.split('.')[0]}"
        out.append(Case(pair, "several", _png(canvas), tuple(boxes), False, "several_faces"))
    # Printed: a portrait as a small print, turned a little, lying in another photo.
    background = _open("china.jpg")
    for name in ("sk_astronaut.png", "mpl_grace_hopper.jpg"):
        image = ImageOps.expand(_open(name), border=12, fill="white")
        ratio = 200 / image.height
        image = image.resize((round(image.width * ratio), 200), Image.Resampling.LANCZOS)
        canvas = background.copy()
        canvas.paste(image.rotate(6, expand=True, fillcolor=(90, 80, 70)), (380, 120))
        x, y, w, h = PORTRAITS[name]
        box = (380 + round((x + 12) * ratio), 120 + round((y + 12) * ratio), round(w * ratio), round(h * ratio))
        out.append(Case(f"{name.split('.')[0]}_printed", "printed", _png(canvas), (box,), False, None))
    for name in NO_FACE:
        kind = "animal" if name == "sk_chelsea.png" else "no_face"
        out.append(Case(name.split(".")[0], kind, _png(_open(name)), (), False, None))
    return out
