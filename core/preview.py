"""What the next run would do with a queued folder or file, counted in the background
without writing anything: images found, invalid, already checked, failed before.

The desktop's queue shows these counts; they are decided by :func:`core.plan.decide`, the
rule the run itself follows. The walk is core's scan, unchanged files take the store's
cached probes, others get a header-only probe.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from .models import Constraints, ProbedImage, ScannedFile, Status
from .plan import ActionTally, decide, not_an_image
from .probe import probe_file
from .scan import iter_files
from .store import Store, StoreError

log = logging.getLogger(__name__)

#: Files per step of a background count: the counts shown grow by this much at a time.
CHUNK = 64


@dataclass(frozen=True)
class QueueCounts:
    """What a background scan found under one queued item (so far, until ``complete``)."""

    images: int = 0
    invalid: int = 0
    checked: int = 0  # already answered by the selected provider (checked or rejected)
    failed: int = 0  # the provider's last check failed: "Retry failed" takes these
    complete: bool = False
    error: str | None = None  # the item could not be scanned at all, or is no image, in a sentence

    def __add__(self, other: "QueueCounts") -> "QueueCounts":
        return QueueCounts(
            self.images + other.images,
            self.invalid + other.invalid,
            self.checked + other.checked,
            self.failed + other.failed,
            self.complete and other.complete,
        )

    def describe(self) -> str:
        """:returns: e.g. ``"1,204 images · 12 invalid · 300 checked"``."""
        if self.error:
            return self.error
        parts = [f"{self.images:,} image{'s' if self.images != 1 else ''}"]
        if self.invalid:
            parts.append(f"{self.invalid:,} invalid")
        if self.checked:
            parts.append(f"{self.checked:,} checked")
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        text = " · ".join(parts)
        return text if self.complete else f"Counting… {text}"

    def explain(self, provider_label: str) -> str:
        """:returns: the counts in sentences, one a line, for a tooltip."""
        if self.error:
            return self.error
        lines = [f"{self.images:,} images found{'' if self.complete else ' so far'}",
                 f"{self.invalid:,} invalid: they break {provider_label}'s rules and will not be sent",
                 f"{self.checked:,} already checked with {provider_label}: skipped"]
        if self.failed:
            lines.append(f"{self.failed:,} failed last time: Retry failed checks them again")
        return "\n".join(lines)


@dataclass(frozen=True)
class CountJob:
    """One background count: which item, how to walk it, against whose rules and results."""

    root: str
    recursive: bool
    db_path: Path
    provider_id: str
    constraints: Constraints


class ProbeCache:
    """Probes made by earlier counts, by path, valid while size and mtime are unchanged.

    Switching provider or the recursive toggle recounts from here instead of reading every
    new file again. Safe to share between threads.
    """

    _MISSING = object()

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, int, ProbedImage | None]] = {}
        self._lock = threading.Lock()

    def get(self, f: ScannedFile) -> object:
        """:returns: the probe (None for a file that is not an image), or ``ProbeCache._MISSING``."""
        with self._lock:
            entry = self._entries.get(f.path)
        if entry is None or entry[0] != f.size or entry[1] != f.mtime_ns:
            return self._MISSING
        return entry[2]

    def put(self, f: ScannedFile, probe: ProbedImage | None) -> None:
        with self._lock:
            self._entries[f.path] = (f.size, f.mtime_ns, probe)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def count_images(
    job: CountJob,
    cache: ProbeCache,
    cancel: threading.Event,
    report: Callable[[QueueCounts], None],
) -> QueueCounts | None:
    """Count the images under ``job.root``, calling ``report`` every :data:`CHUNK` files.

    :param job: what to count.
    :param cache: earlier probes; new ones are added.
    :param cancel: set it to stop; the count is then abandoned.
    :param report: receives the counts so far (``complete`` False) after each chunk.
    :returns: the final counts (``complete`` True), or None when cancelled.
    """
    store = _open_store(job.db_path)
    try:
        known = store.known_statuses(job.provider_id) if store else {}
        counts = QueueCounts()
        batch: list[ScannedFile] = []
        named = os.path.isfile(job.root)  # a file the user named: it is counted even if no image
        for f in iter_files([job.root], recursive=job.recursive):
            f = replace(f, named=named)
            if cancel.is_set():
                return None
            batch.append(f)
            if len(batch) >= CHUNK:
                counts = _count_batch(batch, counts, job, store, known, cache, cancel)
                batch = []
                report(counts)
        counts = _count_batch(batch, counts, job, store, known, cache, cancel)
        return None if cancel.is_set() else replace(counts, complete=True)
    finally:
        if store is not None:
            store.close()


def _open_store(db_path: Path) -> Store | None:
    if not db_path.is_file():
        return None
    try:
        return Store.open_readonly(db_path)
    except StoreError as exc:
        log.warning("Counting without the results database: %s", exc)
        return None


def _count_batch(
    batch: list[ScannedFile],
    counts: QueueCounts,
    job: CountJob,
    store: Store | None,
    known: dict[str, Status],
    cache: ProbeCache,
    cancel: threading.Event,
) -> QueueCounts:
    misses = [f for f in batch if cache.get(f) is ProbeCache._MISSING]
    stored = store.cached_probes(misses) if store and misses else {}
    images = 0
    actions = ActionTally()
    refusal = counts.error
    for f in batch:
        if cancel.is_set():
            break
        probe = cache.get(f)
        if probe is ProbeCache._MISSING:
            # Header only: a full decode is the run's job; this is just a count.
            probe = stored.get(f.path) or probe_file(f, deep=False)
            cache.put(f, probe)
        if probe is None:
            continue
        images += 1
        if f.named and not_an_image(probe.problems):
            refusal = not_an_image(probe.problems).message
        status = known.get(probe.sha256) if probe.sha256 else None
        actions.add(*decide(probe, status, job.constraints))
    added = QueueCounts(images, actions.invalid, actions.known, actions.failed_before)
    return replace(counts + added, error=refusal)
