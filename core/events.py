"""What the runner tells its front end while a batch runs.

The runner is a generator of these events; the command line turns them into a progress
line and a summary, the desktop app into signals. All are frozen and safe to hand across
threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .models import Outcome


@dataclass(frozen=True)
class ScanProgress:
    """Files found so far, and how many of them have been read (or taken from the cache)."""

    files_found: int
    probed: int
    from_cache: int
    scanning_done: bool = False


@dataclass(frozen=True)
class FileSkipped:
    """A path the scan could not use (a dangling link, a loop, a folder it may not read)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """What a batch will do, decided before any provider is called."""

    provider: str
    provider_label: str
    remote: bool
    files_found: int  # every file under the roots (images or not)
    images: int  # distinct images (by content) among them
    duplicates: int  # files whose content is the same as another file's
    invalid: int  # break the provider's rules: never sent
    invalid_by_code: Mapping[str, int] = field(default_factory=dict)
    already_known: int = 0  # checked before with this provider: skipped
    failed_before: int = 0  # failed before and not retried this time
    to_check: int = 0  # calls that will be made (one per distinct image)
    not_images: int = 0  # files whose content is not an image and whose name does not claim one

    @property
    def costs_money(self) -> bool:
        return self.remote and self.to_check > 0


@dataclass(frozen=True)
class Progress:
    """Counters for the check phase, sent with every finished image."""

    done: int  # images with an answer (checked or rejected)
    failed: int
    total: int  # to_check of the plan
    elapsed: float  # seconds since the check phase started
    per_second: float
    #: Calls allowed in flight at once: the pace the provider's account settled at (0: unknown).
    concurrency: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done - self.failed)

    @property
    def eta_seconds(self) -> float | None:
        if self.per_second <= 0:
            return None
        return self.remaining / self.per_second


@dataclass(frozen=True)
class ImageFinished:
    """One image's outcome, already written to the store."""

    outcome: Outcome
    progress: Progress


@dataclass(frozen=True)
class Waiting:
    """The runner is holding back calls, e.g. "waiting 8 s: rate limited"."""

    seconds: float
    reason: str

    def __str__(self) -> str:
        return f"waiting {self.seconds:.0f} s: {self.reason}"


@dataclass(frozen=True)
class ProviderHalted:
    """The provider cannot go on (bad key, no balance, wrong base URL): remaining work stops."""

    provider: str
    message: str


@dataclass(frozen=True)
class Stopping:
    """A stopped batch starts nothing new and waits up to ``grace`` seconds for the calls
    already sent: their answers may be paid for, so each one that arrives is stored."""

    calls_in_flight: int
    grace: float

    def __str__(self) -> str:
        calls = "1 call" if self.calls_in_flight == 1 else f"{self.calls_in_flight} calls"
        return f"waiting for {calls} in flight"


@dataclass(frozen=True)
class Paused:
    paused: bool  # True when the runner stopped starting new work, False when it resumed


@dataclass(frozen=True)
class Summary:
    """How the batch ended."""

    provider: str
    checked: int = 0
    rejected: int = 0
    failed: int = 0
    invalid: int = 0
    skipped_known: int = 0
    not_attempted: int = 0  # left for a later run (stopped, cancelled, provider halted)
    cancelled: bool = False
    halted: str | None = None  # the provider's stopping sentence
    elapsed: float = 0.0
    dry_run: bool = False
    #: Calls a killed earlier run left in flight, found at this start: recorded as failed,
    #: since nobody knows whether they were billed or uploaded.
    interrupted_calls: int = 0
    #: Calls this run left in flight when told to stop waiting: their outcome is unknown.
    calls_left: int = 0

    @property
    def complete(self) -> bool:
        """Every image was handled: none failed and none was left for later."""
        return self.failed == 0 and self.not_attempted == 0 and not self.cancelled


@dataclass(frozen=True)
class Finished:
    summary: Summary


Event = ScanProgress | FileSkipped | Plan | ImageFinished | Waiting | ProviderHalted | Stopping | Paused | Finished
