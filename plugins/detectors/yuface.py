"""libfacedetection through the pinned yuface wheel, called through ctypes so that detections
run side by side.

yuface's weights are compiled into its wheel (BSD-3). It publishes wheels for CPython 3.11 on
Linux and Windows only (pyproject.toml installs it there); elsewhere the next backend serves.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from PIL import Image

from . import Backend, Candidate

if TYPE_CHECKING:
    import numpy as np

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
# OpenMP runtimes a platform's wheel loads from outside the package, by loader name (already
# loaded by then, so the loader hands back the same copy).
OPENMP_RUNTIMES = {"win32": ("vcomp140.dll",)}
_RESULT_BUFFER_BYTES = 0x9000
_FACE_SHORTS = 16
_MOST_FACES = 1024

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
            version = YufaceBackend().version()
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
        libraries are asked too, and then the OpenMP runtime of MSVC (the Windows wheel's
        facedetection.dll imports it from VCOMP140.DLL, which is not in the package).
        """
        candidates = [extension] + sorted(
            p for folder in (extension.parent, extension.parent.with_name("yuface.libs")) if folder.is_dir()
            for p in folder.iterdir() if p.suffix in {".so", ".dll", ".dylib"} or ".so." in p.name
        ) + list(OPENMP_RUNTIMES.get(sys.platform, ()))  # fmt: skip
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


class YufaceBackend(Backend):
    """libfacedetection as yuface ships it: the ctypes call where its layout was checked."""

    name = "yuface"
    distribution = "yuface"

    def __init__(self) -> None:
        self._detector = _FaceDetector()

    def load(self) -> None:
        self._detector.gil_free  # noqa: B018  (sets the detector up, or raises ImportError)

    @property
    def call(self) -> str:
        """``"ctypes"`` side by side, or ``"yuface.detect"`` one call at a time."""
        return "ctypes" if self._detector.gil_free else "yuface.detect"

    def detect(self, image: Image.Image) -> list[Candidate]:
        return [
            Candidate(int(row[0]) / 100.0, tuple(int(v) for v in row[1:5]))
            for row in self._detector(bgr_array(image))
        ]  # fmt: skip


def bgr_array(image: Image.Image) -> np.ndarray:
    """``image`` as a C-contiguous H × W × 3 BGR array.

    libfacedetection reads the raw buffer and ignores strides: a reversed-channel view gives
    wrong answers (measured), so the array must be packed. Pillow packs BGR in one pass, 4×
    faster than a channel-reversed copy of an RGB array.
    """
    import numpy as np

    bgr = np.frombuffer(image.tobytes("raw", "BGR"), dtype=np.uint8)
    return bgr.reshape(image.height, image.width, 3)


BACKEND_CLASS = YufaceBackend
