"""The small frozen records that cross module lines.

Everything here is plain data: no I/O, no Qt, no provider code. A record made in one
thread may be handed to any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import Any, Iterable, Mapping

#: The four recognition flags Kling documents, in the order we show them.
FLAG_TYPES: tuple[str, ...] = ("head_seg", "face_seg", "cloth_seg", "object_seg")

#: 10 MB as Kling's pages mean it: 10 × 1024 × 1024 bytes.
TEN_MB = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file, as a stable code and a sentence a user understands.

    ``blocking`` is False for notes that do not stop a file being sent (for example a PNG
    whose name ends in ``.jpg``). ``fixable`` is True when ``kling-preflight fix`` can make
    a copy without this problem (:func:`core.validate.validate` decides it, in one place).
    """

    code: str
    message: str
    blocking: bool = True
    fixable: bool = False


def is_valid(problems: Iterable[Problem]) -> bool:
    """Tell whether a file may be sent.

    :param problems: the problems :func:`core.validate.validate` found.
    :returns: True when none of them is blocking (notes do not count).
    """
    return not any(p.blocking for p in problems)


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """A regular file found under one of the roots, before anything has read it."""

    path: str  # absolute
    size: int
    mtime_ns: int
    #: Named by the user (on the command line, dropped on the window) rather than found in
    #: a folder: it gets a row even when it is not an image, so nothing named is dropped.
    named: bool = False


@dataclass(frozen=True, slots=True)
class ProbedImage:
    """A file after it has been read once: its content hash and what its header says.

    ``problems`` holds what is wrong with the file itself (empty, unreadable, corrupt,
    truncated, a decompression bomb, not an image, an extension that lies). Whether it
    suits a provider is decided later against that provider's :class:`Constraints`.
    """

    path: str
    size: int
    mtime_ns: int
    sha256: str | None  # None when the file could not be read
    format: str | None  # Pillow's name: "JPEG", "PNG", "GIF", ... or None
    width: int | None
    height: int | None
    problems: tuple[Problem, ...] = ()

    @property
    def name(self) -> str:
        return self.path.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Constraints:
    """A provider's input rules. The defaults are Kling's."""

    formats: frozenset[str] = frozenset({"JPEG", "PNG"})
    max_bytes: int = TEN_MB
    min_side: int = 300
    #: Longest side over shortest side, inclusive: 5/2 allows exactly 2.5:1 and 1:2.5.
    max_ratio: Fraction = Fraction(5, 2)


@dataclass(frozen=True, slots=True)
class Face:
    """One face: its box in pixels of the original file, and where its crops are."""

    x: int
    y: int
    width: int
    height: int
    confidence: float | None = None
    #: Local file paths (offline provider) or URLs (remote providers) of the face's crops.
    crops: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a provider said about one image.

    A flag is True (found), False (looked for and not found) or None (this provider
    cannot tell). Never guess a flag: None is an honest answer.
    """

    head_seg: bool | None = None
    face_seg: bool | None = None
    cloth_seg: bool | None = None
    object_seg: bool | None = None
    #: None when the provider does not locate faces at all (CometAPI).
    faces: tuple[Face, ...] | None = None
    #: Result images by type, e.g. {"head_seg": "https://..."}; unknown types are kept.
    result_urls: Mapping[str, str] = field(default_factory=dict)
    cost: str | None = None  # as the provider wrote it, e.g. "0.2"
    request_id: str | None = None
    raw: str | None = None  # the provider's answer(s), verbatim JSON text

    def flags(self) -> dict[str, bool | None]:
        return {name: getattr(self, name) for name in FLAG_TYPES}


class Verdict(str, Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"
    #: Usable, but a person should look first: always comes with its warnings.
    REVIEW = "review"


#: Which flags each workflow needs. Order is the order of the verdict columns.
VERDICT_RULES: Mapping[str, tuple[str, ...]] = {
    "avatar": ("head_seg", "face_seg"),
    "tryon": ("head_seg", "cloth_seg"),
    "asset": ("object_seg",),
}


def verdicts(
    valid: bool, flags: Mapping[str, bool | None], review: Iterable[str] = ()
) -> dict[str, Verdict]:
    """Decide, per workflow, whether an image is ready for it.

    >>> verdicts(True, {"head_seg": True, "face_seg": True})["avatar"]
    <Verdict.YES: 'yes'>

    Invalid files are never ready. A flag that is False makes the verdict "no" even when
    another is unknown; otherwise any unknown flag makes it "unknown".

    :param review: workflows a quality warning concerns (:func:`core.quality.review_workflows`):
        there a "yes" becomes "review".
    """
    review = frozenset(review)
    out: dict[str, Verdict] = {}
    for workflow, needed in VERDICT_RULES.items():
        values = [flags.get(name) for name in needed]
        if not valid or any(v is False for v in values):
            out[workflow] = Verdict.NO
        elif all(v is True for v in values):
            out[workflow] = Verdict.REVIEW if workflow in review else Verdict.YES
        else:
            out[workflow] = Verdict.UNKNOWN
    return out


class Status(str, Enum):
    """Where one image stands with one provider."""

    CHECKED = "checked"  # the provider answered
    INVALID = "invalid"  # broke the local rules: never sent
    REJECTED = "rejected"  # the provider refused this image (bad image, content policy)
    FAILED = "failed"  # no answer could be had; --retry-failed takes these


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether a provider can run now, and if not, why, in one sentence."""

    state: str  # "ready" | "needs_key" | "unavailable"
    reason: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final word on one image with one provider, as the store records it."""

    sha256: str
    provider: str
    path: str  # the path it was checked as
    status: Status
    #: Problems against this provider's constraints (the reasons an image is invalid,
    #: plus non-blocking notes such as an extension that does not match the content).
    problems: tuple[Problem, ...] = ()
    result: CheckResult | None = None
    error_code: str | None = None
    error: str | None = None
    attempts: int = 0
    duration_ms: int | None = None
    #: The local measurement of the image (:class:`core.quality.PhotoQuality`), None when
    #: it was not measured, and the quality warnings for this answer.
    quality: Any = None
    warnings: tuple[Any, ...] = ()

    @property
    def valid(self) -> bool:
        return is_valid(self.problems)
