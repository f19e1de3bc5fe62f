"""The batch engine shared by the command line and the desktop app.

``BatchRunner.run(roots)`` is a generator of :mod:`core.events`: it scans the roots, reads
each new file once (hash, header, truncation check) in a thread pool, validates every image
against the provider's rules, plans what is left to do, then checks images with a bounded
pool of worker threads. The thread that iterates the generator is the only one that writes
to the database; workers hand their outcomes back and never touch it.

Control from any thread: :meth:`pause` (finish what is in flight, start nothing new),
:meth:`resume`, :meth:`cancel` (stop now: results already obtained are kept).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import random
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import (
    Cancelled,
    ImageRejected,
    NotProcessed,
    OutcomeUnknown,
    ProtocolError,
    ProviderError,
    ProviderStopped,
)
from .events import (
    Event,
    FileSkipped,
    Finished,
    ImageFinished,
    Paused,
    Plan,
    Progress,
    ProviderHalted,
    ScanProgress,
    Summary,
    Waiting,
)
from .models import CheckResult, Outcome, ProbedImage, Problem, ScannedFile, Status
from .plan import Action, ActionTally, PlanChoices, decide, first_blocking_code
from .probe import probe_file
from .providers import CheckContext, DictMemo, Provider
from .retry import RetryPolicy
from .scan import UNSTORABLE_NAME, iter_files
from .store import Store
from .validate import validate
from .worklist import PAGE_SIZE, PlannedImage, Worklist

log = logging.getLogger(__name__)

#: Files the walk hands to the worklist at once.
WALK_BATCH = 1_000
#: Probes (and outcomes of invalid images) written per transaction.
SAVE_BATCH = 500


@dataclass(frozen=True)
class RunOptions:
    recursive: bool = True
    #: Check again images this provider has already answered for.
    force: bool = False
    #: Check only images whose last check with this provider failed.
    retry_failed: bool = False
    #: Scan and plan, call nothing.
    dry_run: bool = False
    #: Fully decode each new file to find corruption a header and end marker miss.
    deep_check: bool = True
    #: Allow retries after outcome-unknown failures even where they may be billed.
    retry_ambiguous: bool = False
    #: Checks in flight at once; None takes the provider's setting or default.
    concurrency: int | None = None
    scan_threads: int = max(2, os.cpu_count() or 2)
    retry: RetryPolicy = RetryPolicy()
    #: Outcomes are written in batches: at most this many, or this often. None: at once
    #: for a remote provider (a paid answer lost to a kill would be paid for again), every
    #: 0.2 s for a local one (thousands a second, nothing to pay).
    flush_size: int = 100
    flush_interval: float | None = None
    #: After a cancel, how long to wait for calls already in flight to come back.
    cancel_grace: float = 3.0
    #: Seed for the retry jitter (tests make it reproducible).
    seed: int | None = None
    #: Files and images read back from the worklist at a time (memory stays flat whatever
    #: the number of files; a page is a few hundred kilobytes at most).
    page_size: int = PAGE_SIZE


@dataclass(frozen=True)
class _Work:
    image: ProbedImage
    notes: tuple[Problem, ...]  # non-blocking problems to keep with the result


@dataclass(frozen=True)
class _WorkerResult:
    outcome: Outcome | None  # None: not attempted (cancelled or provider halted)


class _MemoBridge(DictMemo):
    """The provider's memo, backed by the store: preloaded from it, and every ``put`` also
    queued for the writer thread (workers never touch the database)."""

    def __init__(self, initial: dict[tuple[str, str], str]) -> None:
        super().__init__(initial)
        self._pending: list[tuple[str, str, str]] = []

    def put(self, sha256: str, kind: str, value: str) -> None:
        with self._lock:
            self._values[(sha256, kind)] = value
            self._pending.append((sha256, kind, value))

    def take_pending(self) -> list[tuple[str, str, str]]:
        with self._lock:
            pending, self._pending = self._pending, []
            return pending

    def has_pending(self) -> bool:
        with self._lock:
            return bool(self._pending)


class BatchRunner:
    def __init__(self, db_path: str | Path, provider: Provider, options: RunOptions = RunOptions()) -> None:
        self.db_path = Path(db_path)
        self.provider = provider
        self.options = options
        self._cancel = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._halted = threading.Event()
        self._answered = threading.Event()  # the provider has answered about an image
        self._halt_message: str | None = None
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._gate_lock = threading.Lock()
        self._gate_until = 0.0  # no call starts before this monotonic time (rate limits)
        self._rng = random.Random(options.seed)
        concurrency = options.concurrency or provider.config.get("concurrency") or provider.default_concurrency
        self.concurrency = max(1, int(concurrency))
        self.flush_interval = (
            options.flush_interval if options.flush_interval is not None else (0.0 if provider.remote else 0.2)
        )
        # A retry after an unknown outcome may be billed a second time: without the user's
        # say-so it is allowed only where the provider declares retries free.
        unknown_retries = provider.max_outcome_unknown_retries if provider.retries_are_free else 0
        if options.retry_ambiguous:
            unknown_retries = max(unknown_retries, 2)
        self.policy = replace(
            options.retry,
            base_delay=options.retry.base_delay
            if options.retry.base_delay is not None
            else provider.rate_limit_base_wait,
            outcome_unknown_retries=unknown_retries,
        )

    # -- control, from any thread -------------------------------------------------------

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()  # a paused runner must wake up to stop

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    # -- the batch ------------------------------------------------------------------------

    def run(self, roots: Iterable[str | os.PathLike]) -> Iterator[Event]:
        store = Store(self.db_path)
        try:
            yield from self._run(store, [os.path.abspath(os.fspath(r)) for r in roots])
        finally:
            store.close()
            self.provider.close()

    def _run(self, store: Store, roots: list[str]) -> Iterator[Event]:
        worklist = Worklist(store, page_size=self.options.page_size)
        tally = yield from self._scan(store, worklist, roots)
        plan = self._plan(worklist, tally)
        yield plan
        if self.options.dry_run and not self._cancel.is_set():
            # Invalid images are known without calling anything: recorded, the summary
            # counts them as the plan does (the provider's rules included).
            self._record_invalid(store, worklist)
        if self.options.dry_run or self._cancel.is_set():
            yield Finished(
                Summary(
                    provider=self.provider.id,
                    invalid=plan.invalid,
                    skipped_known=plan.already_known + plan.failed_before,
                    not_attempted=plan.to_check if not self.options.dry_run else 0,
                    cancelled=self._cancel.is_set(),
                    dry_run=self.options.dry_run,
                )
            )
            return
        self._record_invalid(store, worklist)
        yield from self._check(store, plan, self._work(worklist))

    # -- scan: find files, read new ones once ---------------------------------------------

    def _scan(self, store: Store, worklist: Worklist, roots: list[str]):
        """Walk the roots into the worklist, then read every file the store does not know
        yet. Nothing here grows with the number of files but the walk's set of inodes."""
        skipped: list[FileSkipped] = []
        unread: list[str] = []  # folders and entries the walk could not read

        def on_skip(path: str, reason: str) -> None:
            skipped.append(FileSkipped(path, reason))
            if reason not in _SKIPPED_FOR_GOOD:
                unread.append(path)

        found: list[ScannedFile] = []
        files_found = 0
        for f in iter_files(roots, recursive=self.options.recursive, on_skip=on_skip):
            found.append(f)
            if len(found) >= WALK_BATCH:
                worklist.add_found(found)
                files_found += len(found)
                found = []
                yield from _drain_list(skipped)
                yield ScanProgress(files_found, 0, 0)
            if self._cancel.is_set():
                break
        worklist.add_found(found)
        yield from _drain_list(skipped)
        files_found = worklist.count_found()  # a path reached twice counts once
        cached = worklist.count_current()
        yield ScanProgress(files_found, cached, cached)
        tally = _ScanTally()
        batch: list[ProbedImage] = []
        resized: list[ProbedImage] = []
        not_images: list[str] = []
        last_report = time.monotonic()
        probed = cached
        deep = self.options.deep_check
        named = {root for root in roots if os.path.isfile(root)}  # files the user named

        def probe(f: ScannedFile) -> tuple[ScannedFile, ProbedImage | None, bool]:
            result = probe_file(replace(f, named=True) if f.path in named else f, deep=deep)
            # None also means "could not be opened" for a name that does not claim an image:
            # only a file that was read and is not an image may be forgotten.
            return f, result, result is not None or os.access(f.path, os.R_OK)

        for f, result, readable in _bounded_map(probe, worklist.unprobed(), self.options.scan_threads, self._cancel):
            probed += 1
            if result is None:
                tally.not_images += 1
                if readable:
                    not_images.append(f.path)
            else:
                batch.append(result)
                if result.size != f.size:  # it changed since the walk: the probe says what it is now
                    resized.append(result)
                if result.sha256 is None:
                    tally.unreadable[first_blocking_code(result.problems)] += 1
            if len(batch) >= SAVE_BATCH:
                store.save_probes(batch)
                batch = []
            if len(not_images) >= SAVE_BATCH:
                worklist.forget(not_images)
                not_images = []
            if time.monotonic() - last_report > 0.1:
                last_report = time.monotonic()
                yield ScanProgress(files_found, probed, cached)
        if batch:
            store.save_probes(batch)
        worklist.forget(not_images)
        worklist.update_sizes(resized)
        if not self._cancel.is_set() and self.options.recursive:
            for root in roots:
                # A walk that could not read part of a folder does not know what is gone there.
                if os.path.isdir(root) and not any(_is_within(path, root) for path in unread):
                    worklist.prune_unseen(root)
        yield ScanProgress(files_found, probed, cached, scanning_done=True)
        return tally

    # -- plan: what is invalid, what is known, what to call -------------------------------

    def _decide(self, planned: PlannedImage) -> tuple[Action, tuple[Problem, ...]]:
        """What this batch does with one image (:func:`core.plan.decide`)."""
        choices = PlanChoices(force=self.options.force, retry_failed=self.options.retry_failed)
        return decide(planned.image, planned.status, self.provider.constraints, choices)

    def _plan(self, worklist: Worklist, tally: "_ScanTally") -> Plan:
        """Decide for every image once; the worklist keeps each decision for the later
        passes (recording the invalid ones, the checks)."""
        provider = self.provider
        distinct, duplicates = worklist.collect_images(provider.id)
        actions = ActionTally()
        decided: list[tuple[int, Action]] = []
        for planned in worklist.images():
            action, problems = self._decide(planned)
            actions.add(action, problems)
            decided.append((planned.seq, action))
            if len(decided) >= self.options.page_size:
                worklist.set_actions(decided)
                decided = []
        worklist.set_actions(decided)
        invalid_by_code = tally.unreadable + actions.invalid_by_code
        unreadable = sum(tally.unreadable.values())
        return Plan(
            provider=provider.id,
            provider_label=provider.label,
            remote=provider.remote,
            files_found=distinct + duplicates + unreadable + tally.not_images,
            images=distinct + unreadable,
            duplicates=duplicates,
            invalid=sum(invalid_by_code.values()),
            invalid_by_code=dict(invalid_by_code),
            already_known=actions.known,
            failed_before=actions.failed_before,
            to_check=actions.to_check,
            not_images=tally.not_images,
        )

    def _record_invalid(self, store: Store, worklist: Worklist) -> None:
        """Record images that break the provider's rules as invalid for it (never sent)."""
        batch: list[Outcome] = []
        for planned in worklist.images(action=Action.INVALID):
            image = planned.image
            problems = validate(image, self.provider.constraints)
            batch.append(Outcome(image.sha256, self.provider.id, image.path, Status.INVALID, problems))
            if len(batch) >= SAVE_BATCH:
                store.save_outcomes(batch)
                batch = []
        if batch:
            store.save_outcomes(batch)

    def _work(self, worklist: Worklist) -> Iterator[_Work]:
        """The images to check, read from the worklist a page at a time, each with the
        problems that do not stop it (kept with its result)."""
        for planned in worklist.images(action=Action.CHECK):
            problems = validate(planned.image, self.provider.constraints)
            yield _Work(planned.image, tuple(p for p in problems if not p.blocking))

    # -- check: the worker pool -----------------------------------------------------------

    def _check(self, store: Store, plan: Plan, work: Iterator[_Work]) -> Iterator[Event]:
        provider = self.provider
        memo = _MemoBridge(store.memo_items(provider.id))
        ctx = CheckContext(cancel=self._cancel, memo=memo)
        run_id = store.start_run(provider.id, _options_record(self.options, self.concurrency))
        pending = _Lookahead(work)
        running: set[Future] = set()
        buffered: list[Outcome] = []
        counts: Counter[str] = Counter()
        started = time.monotonic()
        last_flush = started
        was_paused = False
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"check-{provider.id}")
        state = "finished"

        def progress() -> Progress:
            elapsed = time.monotonic() - started
            finished = counts["checked"] + counts["rejected"] + counts["failed"]
            return Progress(
                done=counts["checked"] + counts["rejected"],
                failed=counts["failed"],
                total=plan.to_check,
                elapsed=elapsed,
                per_second=finished / elapsed if elapsed > 0 else 0.0,
            )

        def flush() -> Iterator[Event]:
            nonlocal buffered, last_flush
            pending_memo = memo.take_pending()
            if pending_memo:
                store.save_memo(provider.id, pending_memo)
            if buffered:
                store.save_outcomes(buffered)
                for outcome in buffered:
                    counts[outcome.status.value] += 1
                    yield ImageFinished(outcome, progress())
                buffered = []
            last_flush = time.monotonic()

        def collect(done: Iterable[Future]) -> None:
            for fut in done:
                running.discard(fut)
                result: _WorkerResult = fut.result()
                if result.outcome is not None:
                    buffered.append(result.outcome)
                    if result.outcome.status in (Status.CHECKED, Status.REJECTED):
                        self._answered.set()

        try:
            while (pending or running) and not self._cancel.is_set():
                if self.paused != was_paused:
                    was_paused = self.paused
                    yield Paused(was_paused)
                if not self.paused and not self._halted.is_set():
                    # Slow start: one call alone until the provider has answered once, so a
                    # bad key or a wrong URL costs one call, not one per worker.
                    limit = self.concurrency if self._answered.is_set() else 1
                    while pending and len(running) < limit:
                        running.add(pool.submit(self._check_one, pending.take(), ctx))
                if not running:
                    if self._halted.is_set():
                        break
                    self._running.wait(0.1)  # paused with nothing in flight
                else:
                    done, _ = wait(running, timeout=0.05, return_when=FIRST_COMPLETED)
                    collect(done)
                yield from _drain_queue(self._events)
                # An upload's URL is written at once: a kill must not make us upload it again.
                if memo.has_pending() or len(buffered) >= self.options.flush_size or (
                    buffered and time.monotonic() - last_flush >= self.flush_interval
                ):
                    yield from flush()
            if self._cancel.is_set():
                state = "cancelled"
                # Calls already sent may still come back with a (paid) answer: keep it.
                done, _ = wait(running, timeout=self.options.cancel_grace)
                collect(done)
            elif self._halted.is_set():
                state = "stopped"
            yield from _drain_queue(self._events)
            yield from flush()
        finally:
            # Reached on normal exit and also when the consumer stops iterating (Ctrl-C,
            # window closed): whatever has been obtained is written before we leave.
            self._cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            try:
                for _ in flush():  # a no-op after a normal finish
                    pass
            except Exception:  # the store failed (disk full, locked): say so, keep the first error
                log.exception("could not write the last results")
            not_attempted = plan.to_check - (counts["checked"] + counts["rejected"] + counts["failed"])
            summary = Summary(
                provider=provider.id,
                checked=counts["checked"],
                rejected=counts["rejected"],
                failed=counts["failed"],
                invalid=plan.invalid,
                skipped_known=plan.already_known + plan.failed_before,
                not_attempted=not_attempted,
                cancelled=state == "cancelled",
                halted=self._halt_message,
                elapsed=time.monotonic() - started,
            )
            try:
                store.finish_run(run_id, state, _summary_record(summary))
            except Exception:
                log.exception("could not record the end of the run")
        yield Finished(summary)

    def _check_one(self, item: _Work, ctx: CheckContext) -> _WorkerResult:
        """Runs on a worker thread: read the file, call the provider, retry as the policy
        allows. Never touches the store."""
        image, provider = item.image, self.provider

        def outcome(status: Status, **kw) -> Outcome:
            return Outcome(image.sha256, provider.id, image.path, status, problems=item.notes, **kw)

        try:
            data = Path(image.path).read_bytes()
        except OSError as exc:
            return _WorkerResult(outcome(Status.FAILED, error_code="unreadable", error=f"The file could not be read: {exc.strerror or exc}."))
        if hashlib.sha256(data).hexdigest() != image.sha256:
            return _WorkerResult(
                outcome(Status.FAILED, error_code="changed", error="The file changed after it was scanned: scan it again.")
            )
        attempts = unknown_retries = 0
        call_seconds = 0.0
        while True:
            if not self._wait_for_gate():
                return _WorkerResult(None)
            if self._halted.is_set():
                return _WorkerResult(None)
            attempts += 1
            t0 = time.monotonic()
            try:
                result = provider.check(image, data, ctx)
            except Cancelled:
                return _WorkerResult(None)
            except ProviderStopped as exc:
                self._halt(exc.message, status=exc.status)
                return _WorkerResult(None)
            except ImageRejected as exc:
                call_seconds += time.monotonic() - t0
                return _WorkerResult(
                    outcome(Status.REJECTED, result=_error_result(exc), error_code=exc.code, error=exc.message,
                            attempts=attempts, duration_ms=round(call_seconds * 1000))
                )
            except ProviderError as exc:
                call_seconds += time.monotonic() - t0
                wait_s = None if isinstance(exc, ProtocolError) else self.policy.next_wait(exc, attempts, unknown_retries, self._rng)
                if wait_s is None and isinstance(exc, NotProcessed) and not self._answered.is_set():
                    # Never reached the service at all (refused, unknown host, gateway down):
                    # that is about the provider, not this image, so stop instead of failing
                    # every image the same way; the images stay pending for the next run.
                    self._halt(f"{exc.message} Gave up after {attempts} attempts: check the network and the base URL.",
                               unreachable=True)
                    return _WorkerResult(None)
                if wait_s is None or self._cancel.is_set():
                    return _WorkerResult(
                        outcome(Status.FAILED, result=_error_result(exc), error_code=exc.code, error=_final_error(exc, attempts),
                                attempts=attempts, duration_ms=round(call_seconds * 1000))
                    )
                if isinstance(exc, OutcomeUnknown):
                    unknown_retries += 1
                self._hold_back(wait_s, exc)
                continue
            except Exception as exc:  # a bug in a provider: record it on the image, keep going
                log.exception("provider %s crashed on %s", provider.id, image.path)
                return _WorkerResult(
                    outcome(Status.FAILED, error_code="internal_error", error=f"The {provider.label} provider failed unexpectedly: {type(exc).__name__}.",
                            attempts=attempts)
                )
            call_seconds += time.monotonic() - t0
            return _WorkerResult(
                outcome(Status.CHECKED, result=result, attempts=attempts, duration_ms=round(call_seconds * 1000))
            )

    def _halt(self, message: str, *, status: int | None = None, unreachable: bool = False) -> None:
        with self._gate_lock:
            first = not self._halted.is_set()
            self._halted.set()
            if first:
                self._halt_message = message
        if first:
            self._events.put(ProviderHalted(self.provider.id, message, status=status, unreachable=unreachable))

    def _hold_back(self, seconds: float, exc: ProviderError) -> None:
        """Hold every worker back for ``seconds`` (a rate limit concerns the account, not
        the one request), and say so once."""
        until = time.monotonic() + seconds
        with self._gate_lock:
            extend = until > self._gate_until + 0.5
            self._gate_until = max(self._gate_until, until)
        if extend:
            reason = "rate limited" if exc.code == "rate_limited" else _short_reason(exc)
            self._events.put(Waiting(seconds, reason))

    def _wait_for_gate(self) -> bool:
        """Wait until calls may start again; False when the batch was cancelled."""
        while True:
            with self._gate_lock:
                remaining = self._gate_until - time.monotonic()
            if remaining <= 0:
                return not self._cancel.is_set()
            if self._cancel.wait(min(remaining, 0.5)):
                return False


def _bounded_map(fn: Callable, items: Iterable, threads: int, cancel: threading.Event) -> Iterator:
    """Like ``executor.map`` but with at most ``2 × threads`` items in flight and ``items``
    pulled only as room frees up, so memory stays flat however many files there are, and a
    cancel stops within one item. Results come in the order they finish."""
    window = threads * 2
    source = iter(items)
    with ThreadPoolExecutor(threads, thread_name_prefix="probe") as pool:
        running: set[Future] = set()
        try:
            while True:
                while len(running) < window and not cancel.is_set():
                    item = next(source, _END)
                    if item is _END:
                        break
                    running.add(pool.submit(fn, item))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in running:
                fut.cancel()


_END = object()


class _Lookahead:
    """An iterator that can tell whether it has more without losing an item."""

    def __init__(self, items: Iterator) -> None:
        self._items = items
        self._next = next(items, _END)

    def __bool__(self) -> bool:
        return self._next is not _END

    def take(self):
        item, self._next = self._next, next(self._items, _END)
        return item


@dataclass
class _ScanTally:
    """What the scan learnt that the store does not keep: files that are not images, and
    why the unreadable ones could not be read."""

    not_images: int = 0
    unreadable: Counter = field(default_factory=Counter)


#: Reasons iter_files skips a path that no scan can read either (so nothing under it is in
#: the store); any other reason means a folder or file could not be read this time.
_SKIPPED_FOR_GOOD = frozenset({"dangling symlink", "symlink loop", "not a regular file or folder", UNSTORABLE_NAME})


def _is_within(path: str, root: str, sep: str = os.sep) -> bool:
    """Whether ``path`` is ``root`` or inside the folder ``root`` (both absolute, with the
    system's separator ``sep``: roots are made absolute, which on Windows turns / into \\)."""
    root = root.rstrip(sep) or sep
    return path == root or path.startswith(root if root.endswith(sep) else root + sep)


def _drain_list(items: list) -> Iterator:
    while items:
        yield items.pop(0)


def _drain_queue(q: queue.SimpleQueue) -> Iterator:
    while True:
        try:
            yield q.get_nowait()
        except queue.Empty:
            return


def _error_result(exc: ProviderError) -> CheckResult | None:
    """Keep what the provider answered, even for a failure, beside the parsed columns."""
    if exc.raw is None and exc.request_id is None:
        return None
    return CheckResult(raw=exc.raw, request_id=exc.request_id)


def _final_error(exc: ProviderError, attempts: int) -> str:
    if attempts > 1:
        return f"{exc.message} (gave up after {attempts} attempts)"
    return exc.message


def _short_reason(exc: ProviderError) -> str:
    return {
        "unavailable": "the service is unavailable",
        "outcome_unknown": "retrying after an unclear failure",
    }.get(exc.code, exc.code.replace("_", " "))


def _options_record(options: RunOptions, concurrency: int) -> dict:
    return {
        "force": options.force,
        "retry_failed": options.retry_failed,
        "retry_ambiguous": options.retry_ambiguous,
        "deep_check": options.deep_check,
        "concurrency": concurrency,
    }


def _summary_record(summary: Summary) -> dict:
    return {
        "checked": summary.checked,
        "rejected": summary.rejected,
        "failed": summary.failed,
        "invalid": summary.invalid,
        "skipped_known": summary.skipped_known,
        "not_attempted": summary.not_attempted,
        "halted": summary.halted,
    }
