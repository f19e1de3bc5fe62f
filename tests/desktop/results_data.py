"""The 1,000-row results database the desktop tests share, and the records it is made of:
each image's expected state is decided here (``Spec``), not read back from the database."""

from __future__ import annotations

from dataclasses import dataclass

from core.models import CheckResult, Face, Outcome, ProbedImage, Problem, Status
from core.quality import QualityWarning
from core.store import Store

ROWS = 1000
TOO_SMALL = Problem("too_small", "200 × 200 is smaller than 300 px.")
MISMATCH = Problem("extension_mismatch", "img.jpg holds a PNG image.", blocking=False)
TIMEOUT = "The provider did not answer in time."
SMALL_FACE = QualityWarning("face_small", "The face is small: 40 px, 10% of the photo's shorter side.")


@dataclass(frozen=True)
class Spec:
    """What the test database holds for image ``i``, decided here rather than read back."""

    i: int
    status: str  # checked | invalid | failed | rejected | pending
    faces: int | None  # faces located; None when the provider does not locate faces
    face_seg: bool | None
    head_seg: bool | None
    cloth_seg: bool | None

    @property
    def path(self) -> str:
        return f"/photos/f{self.i % 5}/img_{self.i:04d}.jpg"

    @property
    def sha(self) -> str:
        return f"{self.i:064x}"

    @property
    def size(self) -> int:
        return 1000 + (self.i * 7919) % 5_000_000

    @property
    def has_face(self) -> bool:
        return bool(self.faces) if self.faces is not None else self.face_seg is True

    @property
    def has_no_face(self) -> bool:
        return self.faces == 0 if self.faces is not None else self.face_seg is False

    @property
    def warned(self) -> bool:
        """Checked with a quality warning (a small face): a "yes" becomes "review"."""
        return self.status == "checked" and self.i % 7 == 0

    @property
    def avatar(self) -> bool:
        return self.status == "checked" and self.head_seg is True and self.face_seg is True and not self.warned

    @property
    def tryon(self) -> bool:
        return self.status == "checked" and self.head_seg is True and self.cloth_seg is True and not self.warned

    @property
    def review(self) -> bool:
        return self.warned and self.head_seg is True and (self.face_seg is True or self.cloth_seg is True)


def spec(i: int) -> Spec:
    for status, divisor in (("pending", 17), ("invalid", 10), ("failed", 13), ("rejected", 11)):
        if i % divisor == 0:
            return Spec(i, status, None, None, None, None)
    cloth = {0: True, 1: False}.get(i % 4)
    if i % 19 == 0:  # a provider that reports flags but no boxes
        face = i % 2 == 0
        return Spec(i, "checked", None, face, face or None, cloth)
    faces = i % 3
    return Spec(i, "checked", faces, faces > 0, True if faces else None, cloth)


def records(specs, provider="local"):
    probes, outcomes = [], []
    for s in specs:
        notes = (MISMATCH,) if s.i % 23 == 0 else ()
        probes.append(ProbedImage(s.path, s.size, 1, s.sha, "JPEG", 300 + s.i % 700, 400 + s.i % 900, notes))
        if s.status == "pending":
            continue
        if s.status == "invalid":
            outcomes.append(Outcome(s.sha, provider, s.path, Status.INVALID, problems=(TOO_SMALL,) + notes))
        elif s.status in ("failed", "rejected"):
            outcomes.append(
                Outcome(s.sha, provider, s.path, Status(s.status), error_code="timeout", error=TIMEOUT, attempts=3)
            )
        else:
            faces = None
            if s.faces is not None:
                faces = tuple(Face(10 + k, 20, 100, 120, 0.9, (f"/crops/{s.sha}_{k}.jpg",)) for k in range(s.faces))
            result = CheckResult(
                head_seg=s.head_seg, face_seg=s.face_seg, cloth_seg=s.cloth_seg, faces=faces, raw='{"ok": true}'
            )
            warnings = (SMALL_FACE,) if s.warned else ()
            outcomes.append(Outcome(s.sha, provider, s.path, Status.CHECKED, notes, result, attempts=1, duration_ms=40,
                                    warnings=warnings))
    return probes, outcomes


def build_results_db(path, n=ROWS, provider="local"):
    """A results database of ``n`` images written through the real Store; :returns: the specs."""
    specs = [spec(i) for i in range(n)]
    probes, outcomes = records(specs, provider)
    with Store(path) as store:
        store.save_probes(probes)
        store.save_outcomes(outcomes)
    return specs
