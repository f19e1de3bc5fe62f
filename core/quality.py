"""Photo and face quality, measured on this computer, and the warnings that follow from it.

Whatever the provider, every image it answered for is measured once here, with NumPy and
Pillow only, on a reduced grey copy (its longer side :data:`MEASURE_SIDE` px):

- sharpness: the mean square of the Laplacian (its variance: the Laplacian averages to
  about zero), which falls as a photo blurs;
- exposure: mean brightness, and the share of pixels clipped to black or to white.

Both are also kept on a :data:`GRID` × :data:`GRID` grid of cells, so the sharpness and
brightness of any face box can be worked out later from the stored measurement alone:
warnings are recomputed from what is stored, without reading the file or calling a provider.

The face rules look at the boxes a provider returned (in pixels of the file as stored): size
against the photo's shorter side and in pixels, margin to the frame, confidence, and how many
faces there are. Each rule gives a :class:`QualityWarning` with a stable code and a sentence.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

from PIL import Image

from core.probe import DECODE_ERRORS
from core.providers import SettingSpec
from core.scan import file_path

#: Longer side of the grey copy that is measured. Large enough to keep a face's edges, small
#: enough to cost a few milliseconds; measuring on one size makes photos comparable.
MEASURE_SIDE = 512
#: Cells per side of the stored sharpness and brightness grid.
GRID = 12
#: Grey levels counted as clipped: at most this (shadows) or at least 255 minus it (highlights).
CLIP_LEVEL = 4

#: Warnings about the faces, which matter where a face does: avatar and try-on model photos.
FACE_CODES = frozenset({"face_small", "face_cut_off", "low_confidence", "several_faces"})
#: Which workflows each warning concerns (the photo's own warnings concern all three).
WORKFLOWS_FOR_FACE = ("avatar", "tryon")
WORKFLOWS_FOR_PHOTO = ("avatar", "tryon", "asset")


#: Each warning code in a few words, for tables and filters.
WARNING_LABELS: dict[str, str] = {
    "face_small": "Face too small",
    "face_cut_off": "Face cut off",
    "low_confidence": "Maybe not a face",
    "several_faces": "Several faces",
    "blurry": "Blurred",
    "too_dark": "Too dark",
    "too_bright": "Too bright",
}


@dataclass(frozen=True, slots=True)
class QualityWarning:
    """One reason a person should look at an image before paying for it."""

    code: str
    message: str

    def workflows(self) -> tuple[str, ...]:
        """:returns: the workflows whose ``yes`` this warning turns into ``review``."""
        return WORKFLOWS_FOR_FACE if self.code in FACE_CODES else WORKFLOWS_FOR_PHOTO


@dataclass(frozen=True, slots=True)
class PhotoQuality:
    """What :func:`measure` found in one image (the same for every provider)."""

    width: int  # pixels of the file as stored
    height: int
    sharpness: float  # mean square Laplacian of the grey copy
    brightness: float  # mean grey level, 0-255
    shadows: float  # share of pixels at most CLIP_LEVEL
    highlights: float  # share of pixels at least 255 - CLIP_LEVEL
    #: GRID × GRID cells, row by row: mean square Laplacian and mean grey level of each.
    cell_sharpness: tuple[float, ...]
    cell_brightness: tuple[float, ...]
    ms: float  # time the measurement took

    def to_json(self) -> str:
        values = asdict(self)
        values["cell_sharpness"] = [round(v, 1) for v in self.cell_sharpness]
        values["cell_brightness"] = [round(v) for v in self.cell_brightness]
        for name in ("sharpness", "brightness", "ms"):
            values[name] = round(values[name], 2)
        for name in ("shadows", "highlights"):
            values[name] = round(values[name], 4)
        return json.dumps(values, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> "PhotoQuality | None":
        if not text:
            return None
        values = json.loads(text)
        if not values:  # "{}": the file could not be measured
            return None
        values = {f.name: values[f.name] for f in fields(cls)}
        values["cell_sharpness"] = tuple(values["cell_sharpness"])
        values["cell_brightness"] = tuple(values["cell_brightness"])
        return cls(**values)

    def region(self, x: float, y: float, width: float, height: float) -> tuple[float, float]:
        """Sharpness and brightness of a box (pixels of the file as stored), from the grid.

        Each cell counts by how much of it the box covers. Sharpness is the weighted median
        of the cells: a cell only partly inside a small box may hold sharp background (or
        hair) that would swamp a mean. Brightness is the weighted mean.
        """
        x0, x1 = max(0.0, x) / self.width * GRID, min(self.width, x + width) / self.width * GRID
        y0, y1 = max(0.0, y) / self.height * GRID, min(self.height, y + height) / self.height * GRID
        covered: list[tuple[float, float, float]] = []  # (sharpness, brightness, weight)
        for row in range(max(0, math.floor(y0)), min(GRID, math.ceil(y1))):
            cover_y = min(y1, row + 1) - max(y0, row)
            for col in range(max(0, math.floor(x0)), min(GRID, math.ceil(x1))):
                weight = cover_y * (min(x1, col + 1) - max(x0, col))
                if weight > 0:
                    cell = row * GRID + col
                    covered.append((self.cell_sharpness[cell], self.cell_brightness[cell], weight))
        total = sum(w for _, _, w in covered)
        if total <= 0:
            return self.sharpness, self.brightness
        brightness = sum(b * w for _, b, w in covered) / total
        running = 0.0
        for sharpness, _, weight in sorted(covered):
            running += weight
            if running >= total / 2:
                break
        return sharpness, brightness


def measure(data: bytes) -> PhotoQuality | None:
    """Measure sharpness and exposure of an encoded image.

    :param data: the file's bytes (any format Pillow reads).
    :returns: the measurement, or None when the bytes do not decode.
    """
    import numpy as np

    started = time.perf_counter()
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        ratio = MEASURE_SIDE / max(width, height)
        if ratio < 1:
            # JPEG: decode straight to grey at 1/2, 1/4 or 1/8 scale, still at least MEASURE_SIDE.
            image.draft("L", (math.ceil(width * ratio), math.ceil(height * ratio)))
        grey = image.convert("L")
        if ratio < 1:
            size = (max(3, round(width * ratio)), max(3, round(height * ratio)))
            grey = grey.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        pixels = np.asarray(grey, dtype=np.float32)
    except DECODE_ERRORS:
        return None
    if pixels.shape[0] < 3 or pixels.shape[1] < 3:
        return None
    laplacian = (
        pixels[1:-1, :-2] + pixels[1:-1, 2:] + pixels[:-2, 1:-1] + pixels[2:, 1:-1] - 4 * pixels[1:-1, 1:-1]
    )
    squared = laplacian * laplacian
    cell_sharpness = _cell_means(squared)
    cell_brightness = _cell_means(pixels)
    count = pixels.size
    return PhotoQuality(
        width=width,
        height=height,
        sharpness=float(squared.mean()),
        brightness=float(pixels.mean()),
        shadows=float(np.count_nonzero(pixels <= CLIP_LEVEL)) / count,
        highlights=float(np.count_nonzero(pixels >= 255 - CLIP_LEVEL)) / count,
        cell_sharpness=tuple(float(v) for v in cell_sharpness.ravel()),
        cell_brightness=tuple(float(v) for v in cell_brightness.ravel()),
        ms=(time.perf_counter() - started) * 1000,
    )


def measure_missing(store: Any, *, batch: int = 200) -> int:
    """Measure the images a store holds answers for but no measurement of (checked before
    measuring began), from their files; calls no provider.

    :param store: a :class:`core.store.Store` open for writing.
    :returns: how many images were measured.
    """
    import hashlib

    done = 0
    while True:
        todo = store.unmeasured(batch)
        if not todo:
            return done
        measured = []
        for sha256, paths in todo:
            found = None
            for path in paths:
                try:
                    data = open(file_path(path), "rb").read()
                except OSError:
                    continue
                if hashlib.sha256(data).hexdigest() == sha256:  # the same content still
                    found = measure(data)
                    break
            measured.append((sha256, found))
            done += found is not None
        store.save_measurements(measured)


def _cell_means(values):
    """Mean of ``values`` over a GRID × GRID split (cells as equal as the size allows)."""
    import numpy as np

    rows = np.linspace(0, values.shape[0], GRID + 1).astype(int)[:-1]
    cols = np.linspace(0, values.shape[1], GRID + 1).astype(int)[:-1]
    sums = np.add.reduceat(np.add.reduceat(values, rows, axis=0), cols, axis=1)
    heights = np.diff(np.append(rows, values.shape[0]))
    widths = np.diff(np.append(cols, values.shape[1]))
    return sums / np.outer(heights, widths)


# --- thresholds ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a warning applies. The defaults come from ``bench/faces.py`` (see the README)."""

    #: A face whose longer side is under this share of the photo's shorter side is small.
    face_min_share: float = 0.12
    #: ... or under this many pixels.
    face_min_px: int = 64
    #: A face box closer to the frame than this share of its own size is cut off.
    face_min_margin: float = 0.05
    #: Faces found with less confidence than this (0-1) may not be faces.
    min_confidence: float = 0.85
    #: A second face at least this large (longer side, against the largest) makes the
    #: subject ambiguous.
    second_face_share: float = 0.4
    #: Sharpness (mean square Laplacian, on the face when one is known) under this is blurry.
    min_sharpness: float = 30.0
    #: Mean grey level (on the face when one is known) under this is too dark ...
    min_brightness: float = 50.0
    #: ... and over this too bright.
    max_brightness: float = 200.0
    #: A photo with more than this share of clipped pixels is too dark (shadows) or too
    #: bright (highlights), whatever its mean, when no face is known.
    max_clipped: float = 0.5


#: The thresholds as settings, for ``settings show`` and ``settings set quality NAME=VALUE``.
SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("face_min_share", "Smallest face (share of the shorter side)", Thresholds.face_min_share, float),
    SettingSpec("face_min_px", "Smallest face (pixels)", Thresholds.face_min_px, int),
    SettingSpec("face_min_margin", "Face margin to the frame (share of the face)", Thresholds.face_min_margin, float),
    SettingSpec("min_confidence", "Lowest face confidence (0-1)", Thresholds.min_confidence, float),
    SettingSpec("second_face_share", "Second face size that makes several faces", Thresholds.second_face_share, float),
    SettingSpec("min_sharpness", "Lowest sharpness", Thresholds.min_sharpness, float),
    SettingSpec("min_brightness", "Lowest brightness (0-255)", Thresholds.min_brightness, float),
    SettingSpec("max_brightness", "Highest brightness (0-255)", Thresholds.max_brightness, float),
    SettingSpec("max_clipped", "Largest share of clipped pixels", Thresholds.max_clipped, float),
)


def thresholds_from(values: Mapping[str, Any] | None) -> Thresholds:
    """:returns: the defaults with ``values`` (as saved settings) put in.

    :raises ValueError: an unknown name or a value that is not a number, in a sentence.
    """
    known = {spec.name: spec for spec in SETTINGS}
    chosen: dict[str, Any] = {}
    for name, value in (values or {}).items():
        spec = known.get(name)
        if spec is None:
            raise ValueError(f"There is no quality setting {name!r}; choose from {', '.join(known)}.")
        try:
            number = spec.kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"The quality setting {name} must be a number; it is {value!r}.") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"The quality setting {name} must be a number of 0 or more; it is {value!r}.")
        chosen[name] = number
    return Thresholds(**chosen)


# --- the rules -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaceMeasure:
    """One located face against the photo it is in."""

    share: float  # longer side of the box over the photo's shorter side
    pixels: int  # longer side of the box
    margin: float  # least distance to the frame over the box's longer side (< 0: outside)
    confidence: float | None


def face_measures(faces: Iterable[Mapping[str, Any]], width: int, height: int) -> list[FaceMeasure]:
    """Measure each face box (dicts with x, y, width, height, confidence) in a photo."""
    out = []
    shorter = max(1, min(width, height))
    for face in faces:
        x, y, w, h = (face["x"], face["y"], face["width"], face["height"])
        longer = max(1, w, h)
        margin = min(x, y, width - (x + w), height - (y + h)) / longer
        out.append(FaceMeasure(longer / shorter, longer, margin, face.get("confidence")))
    return out


def warnings_for(
    quality: PhotoQuality | None,
    faces: Sequence[Mapping[str, Any]] | None,
    thresholds: Thresholds = Thresholds(),
    *,
    size: tuple[int, int] | None = None,
) -> tuple[QualityWarning, ...]:
    """Every warning that applies to one image and one provider's answer.

    :param quality: :func:`measure`'s result for the image; None when it was not measured
        (then only the face rules that need no pixels apply).
    :param faces: the provider's face boxes (as stored: x, y, width, height, confidence), or
        None when the provider does not locate faces.
    :param size: the photo's width and height as stored, for the face rules when there is
        no measurement (results stored before measuring began).
    :returns: the warnings, in a stable order; empty when none applies.
    """
    found: list[QualityWarning] = []
    faces = list(faces or ())
    largest = max(faces, key=lambda f: f["width"] * f["height"], default=None)
    if quality is not None:
        size = (quality.width, quality.height)
    if faces and size is not None:
        measures = face_measures(faces, *size)
        main = measures[faces.index(largest)]
        if main.share < thresholds.face_min_share or main.pixels < thresholds.face_min_px:
            found.append(QualityWarning(
                "face_small",
                f"The face is small: {main.pixels} px, {main.share:.0%} of the photo's shorter side "
                f"(at least {thresholds.face_min_px} px and {thresholds.face_min_share:.0%} wanted).",
            ))
        if any(m.margin < thresholds.face_min_margin for m in measures):
            found.append(QualityWarning("face_cut_off", "A face touches the edge of the photo and may be cut off."))
        others = sorted((m.pixels for m in measures), reverse=True)[1:]
        if others and others[0] >= thresholds.second_face_share * main.pixels:
            found.append(QualityWarning(
                "several_faces",
                f"There are {len(faces)} faces of similar size: Kling may take the wrong one.",
            ))
    confidences = [f.get("confidence") for f in faces if f.get("confidence") is not None]
    if confidences and min(confidences) < thresholds.min_confidence:
        found.append(QualityWarning(
            "low_confidence",
            f"The detector is only {min(confidences):.0%} sure this is a face: it may be an animal, "
            "a picture or a pattern.",
        ))
    if quality is not None:
        if largest is not None:
            sharpness, brightness = quality.region(largest["x"], largest["y"], largest["width"], largest["height"])
            where = "face"
        else:
            sharpness, brightness, where = quality.sharpness, quality.brightness, "photo"
        if sharpness < thresholds.min_sharpness:
            found.append(QualityWarning("blurry", f"The {where} looks blurred (sharpness {sharpness:.0f}, "
                                            f"at least {thresholds.min_sharpness:.0f} wanted)."))
        dark = brightness < thresholds.min_brightness or (largest is None and quality.shadows > thresholds.max_clipped)
        bright = brightness > thresholds.max_brightness or (
            largest is None and quality.highlights > thresholds.max_clipped
        )
        if dark:
            found.append(QualityWarning("too_dark", f"The {where} is too dark (brightness {brightness:.0f} of 255)."))
        if bright:
            found.append(QualityWarning("too_bright", f"The {where} is too bright (brightness {brightness:.0f} of 255)."))
    return tuple(found)


def warnings_for_answer(quality: PhotoQuality | None, faces: Iterable[Any] | None, thresholds: Thresholds) -> tuple[QualityWarning, ...]:
    """:func:`warnings_for` with a provider's :class:`core.models.Face` records."""
    boxes = None if faces is None else [
        {"x": f.x, "y": f.y, "width": f.width, "height": f.height, "confidence": f.confidence} for f in faces
    ]
    return warnings_for(quality, boxes, thresholds)


def review_workflows(warnings: Iterable[QualityWarning]) -> frozenset[str]:
    """:returns: the workflows these warnings concern: there a ``yes`` becomes ``review``."""
    return frozenset(w for warning in warnings for w in warning.workflows())


def warnings_to_json(warnings: Iterable[QualityWarning]) -> str:
    return json.dumps([{"code": w.code, "message": w.message} for w in warnings], ensure_ascii=False)


def warnings_from_json(text: str | None) -> tuple[QualityWarning, ...]:
    if not text:
        return ()
    return tuple(QualityWarning(w["code"], w["message"]) for w in json.loads(text))
