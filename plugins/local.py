"""The offline provider: face detection on this computer with yuface (libfacedetection).

yuface's weights are compiled into its wheel (BSD-3), so nothing is downloaded at run time.
It has no wheel for macOS on Apple Silicon, so it is imported lazily: there the provider
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
import platform
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from PIL import ExifTags, Image, ImageOps

from core.atomic_write import atomic_write
from core.errors import Cancelled, ImageRejected, ProviderStopped
from core.hookspecs import hookimpl
from core.models import Availability, CheckResult, Constraints, Face, ProbedImage
from core.probe import DECODE_ERRORS
from core.providers import CheckContext, Provider, SettingSpec

if TYPE_CHECKING:
    import numpy as np

#: Longest side the detector sees. yuface warns above 960 px; at 640 px it found every
#: sample face and takes about 20 ms on 2 cores.
DETECT_SIDE = 640
#: Extra room around a face in its crop, as a fraction of the box's width and height.
CROP_MARGIN = 0.2
DEFAULT_THRESHOLD = 0.6

# libfacedetection's entry point, facedetect_cnn(unsigned char *result_buffer,
# unsigned char *bgr_data, int width, int height, int step), by its C++ names: GCC and Clang
# (Itanium ABI), then MSVC.
_FACEDETECT_SYMBOLS = ("_Z14facedetect_cnnPhS_iii", "?facedetect_cnn@@YAPEAHPEAE0HHH@Z")
# Its result buffer in the build yuface ships (read off its machine code): an int count, then
# 16 shorts per face (confidence 0-100, x, y, w, h, 5 landmark points, one unused), at most
# 1,024 faces. 0x9000 bytes is what yuface's own wrapper allocates. Another release may lay it
# out otherwise, so the ctypes call is used only with the release this was read from (pinned
# in pyproject.toml); with any other, yuface's wrapper.
_VERIFIED_YUFACE = "2023.5.1"
_RESULT_BUFFER_BYTES = 0x9000
_FACE_SHORTS = 16
_MOST_FACES = 1024

# EXIF orientation -> how to take a point (u, v) of the upright image, whose size is
# (uw, uh), back to the file's stored pixels. The inverses of ImageOps.exif_transpose.
_TO_STORED = {
    1: lambda u, v, uw, uh: (u, v),
    2: lambda u, v, uw, uh: (uw - u, v),
    3: lambda u, v, uw, uh: (uw - u, uh - v),
    4: lambda u, v, uw, uh: (u, uh - v),
    5: lambda u, v, uw, uh: (v, u),
    6: lambda u, v, uw, uh: (v, uw - u),
    7: lambda u, v, uw, uh: (uh - v, uw - u),
    8: lambda u, v, uw, uh: (uh - v, u),
}



def _import_yuface() -> ModuleType:
    """Import yuface, with OpenMP told to sleep rather than spin between calls.

    :returns: the yuface module.
    :raises ImportError: yuface is not installed or its library does not load.
    """
    # libgomp reads this once, when yuface loads it; without it calls spike to ~400 ms.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        # yuface needs numpy but does not declare it: import both, so a missing or broken
        # numpy makes the provider unavailable instead of failing every image.
        import numpy  # noqa: F401
        import yuface
    except OSError as exc:  # the wheel is there but its shared library will not load
        raise ImportError(str(exc)) from exc
    return yuface


class _FaceDetector:
    """yuface's detector, called so that photos can be checked side by side.

    yuface's own ``detect`` holds the GIL for the whole detection (~25 ms) and spreads each
    call over every core with OpenMP, which reaches 1.5 cores of 2 and stalls every other
    thread meanwhile. Here the same C function is called through ctypes, which lets the GIL
    go, on one OpenMP thread per call: the provider's workers then detect in parallel, one
    per core, and decode the next photos while they do (measured on 2 cores: 16 ms a photo
    against 24 ms, the same faces).

    Where the function cannot be found (another build), where the OpenMP runtime cannot be
    told to use one thread, or with another yuface release than the one whose result layout
    was checked, yuface's wrapper is used, one call at a time.
    """

    def __init__(self, symbols: tuple[str, ...] = _FACEDETECT_SYMBOLS, verified: str = _VERIFIED_YUFACE) -> None:
        self._symbols = symbols
        self._verified = verified
        self._setup_lock = threading.Lock()
        self._serial_lock = threading.Lock()
        self._ready = False
        self._facedetect = None
        self._one_thread = None

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        """Every face in ``bgr`` (C-contiguous, uint8, BGR), before any threshold.

        :returns: an (n, 15) int32 array: confidence (0-100), x, y, w, h, 10 landmark
            coordinates.
        :raises ImportError: yuface cannot be loaded.
        """
        import numpy as np

        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise ValueError(f"the detector takes an H × W × 3 uint8 array, not {bgr.dtype} {bgr.shape}")
        bgr = np.ascontiguousarray(bgr)  # the C function ignores strides
        if not self._ready:
            self._set_up()
        if self._facedetect is None:
            with self._serial_lock:
                return _import_yuface().yuface.detect(bgr)[:, :15].astype("int32")
        self._one_thread(1)  # per calling thread: one OpenMP thread for its detections
        return self._call(bgr)

    @property
    def gil_free(self) -> bool:
        """True when detections run through ctypes, side by side; False for the fallback.

        :raises ImportError: yuface cannot be loaded.
        """
        if not self._ready:
            self._set_up()
        return self._facedetect is not None

    def _set_up(self) -> None:
        with self._setup_lock:
            if self._ready:
                return
            import ctypes

            import numpy as np

            yuface = _import_yuface()
            version = _detector_version()
            facedetect, one_thread = self._find(ctypes, Path(yuface.yuface.__file__))
            # A frozen app carries no package metadata ("unknown"); it is built from the pin.
            if facedetect is not None and one_thread is not None and version in (self._verified, "unknown"):
                facedetect.restype = ctypes.POINTER(ctypes.c_int)
                facedetect.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
                one_thread.argtypes = [ctypes.c_int]
                self._facedetect, self._one_thread = facedetect, one_thread
                # The first call fills the library's shared weights without a lock of its
                # own: make it here, alone, before any two threads can race to it.
                self._call(np.zeros((32, 32, 3), dtype=np.uint8))
            self._ready = True

    def _find(self, ctypes: ModuleType, extension: Path):
        """The C function and OpenMP's ``omp_set_num_threads``, or None for either.

        On Linux and macOS, looking a name up in the extension also searches the libraries
        it loaded; on Windows each library answers only for itself, so the package's own
        libraries are asked too.
        """
        candidates = [extension] + sorted(
            p for folder in (extension.parent, extension.parent.with_name("yuface.libs")) if folder.is_dir()
            for p in folder.iterdir() if p.suffix in {".so", ".dll", ".dylib"} or ".so." in p.name
        )  # fmt: skip
        facedetect = one_thread = None
        for path in candidates:
            if facedetect is not None and one_thread is not None:
                break
            try:
                library = ctypes.CDLL(str(path))
            except OSError:
                continue
            if facedetect is None:
                facedetect = next((getattr(library, n) for n in self._symbols if hasattr(library, n)), None)
            if one_thread is None:
                one_thread = getattr(library, "omp_set_num_threads", None)
        return facedetect, one_thread

    def _call(self, bgr: np.ndarray) -> np.ndarray:
        import ctypes

        import numpy as np

        height, width, _channels = bgr.shape
        buffer = ctypes.create_string_buffer(_RESULT_BUFFER_BYTES)
        count = self._facedetect(buffer, bgr.ctypes.data, width, height, width * 3)[0]
        if not 0 <= count <= _MOST_FACES:
            raise RuntimeError(f"the face detector returned {count} faces")
        faces = np.frombuffer(buffer, dtype=np.int16, count=_FACE_SHORTS * count, offset=4)
        return faces.reshape(count, _FACE_SHORTS)[:, :15].astype(np.int32)


#: One per process: the library's weights are shared, and set up once.
_run_detector = _FaceDetector()


def _unavailable_reason(exc: ImportError) -> str:
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return (
            "The offline face detector (yuface) has no build for Apple Silicon Macs, "
            "so offline checks cannot run here; use a remote provider instead."
        )
    return f"The offline face detector (yuface) could not be loaded: {exc}."


def _detector_version() -> str:
    try:
        return metadata.version("yuface")
    except metadata.PackageNotFoundError:  # a frozen app carries no package metadata
        return "unknown"


@dataclass(frozen=True)
class _Detection:
    """One face as the detector saw it, and where it is in the upright and stored image."""

    confidence: float  # 0..1
    detected: tuple[int, int, int, int]  # x, y, w, h in the downscaled upright image
    upright: tuple[int, int, int, int]  # x0, y0, x1, y1 in the full-size upright image
    stored: tuple[int, int, int, int]  # x0, y0, x1, y1 in the file's stored pixels


def stored_box(
    box: tuple[float, float, float, float], orientation: int, upright_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Take a box from the upright (EXIF-rotated) image back to the file's stored pixels.

    :param box: x0, y0, x1, y1 in the upright image, inside it.
    :param orientation: the file's EXIF orientation, 1 to 8.
    :param upright_size: width and height of the upright image.
    :returns: x0, y0, x1, y1 in stored pixels, rounded to whole pixels.
    """
    to_stored = _TO_STORED[orientation]
    uw, uh = upright_size
    x0, y0, x1, y1 = box
    ax, ay = to_stored(x0, y0, uw, uh)
    bx, by = to_stored(x1, y1, uw, uh)
    return round(min(ax, bx)), round(min(ay, by)), round(max(ax, bx)), round(max(ay, by))


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
        if orientation not in _TO_STORED:  # exif_transpose leaves these as they are
            orientation = 1
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
    full_size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return upright, orientation, full_size


def _detector_input(upright: Image.Image, full_size: tuple[int, int] | None = None) -> tuple[float, np.ndarray]:
    """What the detector is given: ``upright`` no longer than :data:`DETECT_SIDE`, as BGR.

    :param upright: the upright image, at full size or already reduced.
    :param full_size: the upright image's size at full scale (default: ``upright.size``).
    :returns: the scale (detector pixels per full-size upright pixel) and the array.
    """
    import numpy as np

    width, height = full_size or upright.size
    scale = min(1.0, DETECT_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = upright
    if small.size != size:
        small = upright.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    # yuface reads the raw buffer and ignores strides: a reversed-channel view gives wrong
    # answers (measured), so the BGR array must be C-contiguous. Pillow packs BGR in one
    # pass, 4× faster than a channel-reversed copy of an RGB array.
    bgr = np.frombuffer(small.tobytes("raw", "BGR"), dtype=np.uint8)
    return scale, bgr.reshape(small.height, small.width, 3)


def _detect(
    upright: Image.Image, threshold: float, full_size: tuple[int, int] | None = None
) -> tuple[float, list[tuple[float, tuple[int, ...]]]]:
    """Run yuface on :func:`_detector_input`.

    :returns: the scale used (detector pixels per full-size upright pixel) and, per face,
        its confidence (0..1) and x, y, w, h in detector pixels.
    :raises ProviderStopped: yuface cannot be loaded.
    """
    try:
        _import_yuface()
    except ImportError as exc:
        raise ProviderStopped(_unavailable_reason(exc)) from exc
    scale, bgr = _detector_input(upright, full_size)
    found = _run_detector(bgr)
    # As yuface.detect filters: a confidence strictly above the threshold, in percent.
    faces = [(int(row[0]) / 100.0, tuple(int(v) for v in row[1:5])) for row in found if row[0] > threshold * 100]
    return scale, faces


def _locate(
    faces: list[tuple[float, tuple[int, ...]]], scale: float, upright_size: tuple[int, int], orientation: int
) -> list[_Detection]:
    """Map detector boxes to the full-size upright image and to stored pixels, clipped.

    Boxes that lie wholly outside the image are dropped (the detector can return
    negative coordinates for faces cut by the border).
    """
    uw, uh = upright_size
    found = []
    for confidence, (x, y, w, h) in faces:
        x0, y0 = max(0.0, x / scale), max(0.0, y / scale)
        x1, y1 = min(float(uw), (x + w) / scale), min(float(uh), (y + h) / scale)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        upright = (round(x0), round(y0), round(x1), round(y1))
        found.append(
            _Detection(confidence, (x, y, w, h), upright, stored_box((x0, y0, x1, y1), orientation, upright_size))
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
    # Each worker detects on one core (see _FaceDetector): one worker per core, up to 8 (each
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

    def availability(self) -> Availability:
        """Ready when yuface loads and the threshold makes sense; never touches the network."""
        try:
            _import_yuface()
        except ImportError as exc:
            return Availability("unavailable", _unavailable_reason(exc))
        try:
            self._threshold()
        except ProviderStopped as exc:
            return Availability("unavailable", exc.message)
        return Availability("ready")

    def verify(self) -> str:
        """Run the detector once on a small generated image.

        :returns: a sentence saying the detector works.
        :raises ProviderStopped: yuface cannot be loaded.
        """
        _detect(Image.new("RGB", (64, 64), (128, 128, 128)), DEFAULT_THRESHOLD)
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
        :raises ProviderStopped: yuface cannot be loaded or the threshold is invalid.
        """
        if ctx.cancel.is_set():
            raise Cancelled()
        threshold = self._threshold()
        # The detector sees at most DETECT_SIDE pixels: decode no more than that needs...
        reduced, orientation, full_size = _decode_upright(data, longest_at_least=DETECT_SIDE)
        scale, raw_faces = _detect(reduced, threshold, full_size)
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
            "detector": "yuface",
            "version": _detector_version(),
            # How it was called: side by side through ctypes, or through yuface's wrapper.
            "call": "ctypes" if _run_detector.gil_free else "yuface.detect",
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
