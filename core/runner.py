"""The batch engine shared by the command line and the desktop app.

``BatchRunner.run(roots)`` is a generator of :mod:`core.events`: it scans the roots, reads
each new file once (hash, header, truncation check) in a thread pool, validates every image
against the provider's rules, plans what is left to do, then checks images with a bounded
pool of worker threads. The thread that iterates the generator is the only one that writes
to the database; workers hand their outcomes back and never touch it.

Control from any thread: :meth:`pause` (finish what is in flight, start nothing new),
:meth:`resume`, :meth:`cancel` (start nothing new, wait a bounded time for the calls in
flight and keep every answer), :meth:`abandon` (a second stop: leave those calls at once).

Never pay twice: before a call that costs money or leaves something behind goes out, the
writer thread journals it in the store, committed (``Provider.journal_kind``); its answer
replaces the row. Rows a killed run left behind are settled when the next run starts.
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
    RateLimited,
)
from .console import format_duration
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
    Stopping,
    Summary,
    Waiting,
)
from .models import CheckResult, Outcome, ProbedImage, Problem, ScannedFile, Status
from .plan import Action, ActionTally, PlanChoices, decide, first_blocking_code
from .pacing import Call, News, Pacer, PacingPolicy, call_kind
from .probe import probe_file
from .quality import Thresholds, measure, warnings_for_answer
from .providers import CheckContext, DictMemo, Provider
from .retry import RetryPolicy
from .scan import UNSTORABLE_NAME, file_path, iter_files, stored_path
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
    #: The account's pace: rate-limit waits, calls in flight, when the service counts as down.
    pacing: PacingPolicy = PacingPolicy()
    #: Outcomes are written in batches: at most this many, or this often. None: at once
    #: for a remote provider (a paid answer lost to a kill would be paid for again), every
    #: 0.2 s for a local one (thousands a second, nothing to pay).
    flush_size: int = 100
    flush_interval: float | None = None
    #: After a cancel, how long to wait for calls already in flight to come back; None: as
    #: long as a call can take (the provider's ``longest_call``), since answers may be paid.
    cancel_grace: float | None = None
    #: Seed for the retry jitter (tests make it reproducible).
    seed: int | None = None
    #: Files and images read back from the worklist at a time (memory stays flat whatever
    #: the number of files; a page is a few hundred kilobytes at most).
    page_size: int = PAGE_SIZE
    #: When a quality warning turns a "yes" into "review" (the app's quality settings).
    quality: Thresholds = Thresholds()


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


class _JournalDesk:
    """Journal requests from workers (:attr:`CheckContext.journal`), served by the writer
    thread: a worker waits until its row is committed, or the batch stops."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._requests: queue.SimpleQueue[tuple[ProbedImage, str, threading.Event]] = queue.SimpleQueue()

    def __call__(self, image: ProbedImage, kind: str) -> None:
        done = threading.Event()
        self._requests.put((image, kind, done))
        while not done.wait(0.05):
            if self._cancel.is_set():
                raise Cancelled()

    def serve(self, write: Callable[[list[tuple[str, str, str]]], None]) -> None:
        """Write every waiting request in one transaction, then release their workers."""
        taken = list(_drain_queue(self._requests))
        if taken:
            write([(image.sha256, kind, image.path) for image, kind, _ in taken])
            for _, _, done in taken:
                done.set()


class BatchRunner:
    def __init__(self, db_path: str | Path, provider: Provider, options: RunOptions = RunOptions()) -> None:
        self.db_path = Path(db_path)
        self.provider = provider
        self.options = options
        self._cancel = threading.Event()
        self._abandon = threading.Event()  # a second stop: calls in flight are left
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._halted = threading.Event()
        self._answered = threading.Event()  # the provider has answered about an image
        self._halt_message: str | None = None
        self._interrupted_calls = 0  # calls a killed earlier run left in flight
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._gate_lock = threading.Lock()
        self._rng = random.Random(options.seed)
        concurrency = options.concurrency or provider.config.get("concurrency") or provider.default_concurrency
        self.concurrency = max(1, int(concurrency))
        provider.set_concurrency(self.concurrency)
        self._pacer = Pacer(self.concurrency, options.pacing)
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
            ambiguous_allowed=options.retry_ambiguous,
        )

    # -- control, from any thread -------------------------------------------------------

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()  # a paused runner must wake up to stop

    def abandon(self) -> None:
        """Stop without waiting for the calls in flight: they stay journaled as unknown."""
        self._abandon.set()
        self.cancel()
        self.provider.abort()

    @property
    def stopping(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def pacer(self) -> Pacer:
        """The pace of this batch's calls (read-only use: limit, holds)."""
        return self._pacer

    # -- the batch ------------------------------------------------------------------------

    def run(self, roots: Iterable[str | os.PathLike]) -> Iterator[Event]:
        store = Store(self.db_path)
        try:
            yield from self._run(store, [os.path.abspath(os.fspath(r)) for r in roots])
        finally:
            store.close()
            self.provider.close()

    def _run(self, store: Store, roots: list[str]) -> Iterator[Event]:
        # Before the plan, so that calls a kill left in flight count as failed, not to do.
        self._interrupted_calls = store.close_interrupted(self.provider.id, self.provider.unknown_outcome_messages)
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
                    interrupted_calls=self._interrupted_calls,
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
        named = {stored_path(root) for root in roots if os.path.isfile(root)}  # files the user named

        def probe(f: ScannedFile) -> tuple[ScannedFile, ProbedImage | None, bool]:
            result = probe_file(replace(f, named=True) if f.path in named else f, deep=deep)
            # None also means "could not be opened" for a name that does not claim an image:
            # only a file that was read and is not an image may be forgotten.
            return f, result, result is not None or os.access(file_path(f.path), os.R_OK)

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
                    worklist.prune_unseen(stored_path(root))
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
        run_id = store.start_run(provider.id, _options_record(self.options, self.concurrency))
        desk = _JournalDesk(self._cancel)
        ctx = CheckContext(cancel=self._cancel, memo=memo, journal=desk)

        def serve_journal() -> None:
            desk.serve(lambda calls: store.journal_calls(provider.id, calls, run_id))

        pending = _Lookahead(work)
        running: set[Future] = set()
        journaled: dict[Future, str] = {}  # the image of each call in flight the journal holds
        unsent: list[str] = []  # journaled images whose call never went out
        buffered: list[Outcome] = []
        counts: Counter[str] = Counter()
        started = time.monotonic()
        last_flush = started
        was_paused = False
        # Twice the concurrency: room for photos waiting out a fault of their own meanwhile.
        pool = ThreadPoolExecutor(2 * self.concurrency, thread_name_prefix=f"check-{provider.id}")
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
                concurrency=self._pacer.limit,
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
            if unsent:
                store.forget_calls(provider.id, unsent)
                unsent.clear()
            last_flush = time.monotonic()

        def submit(item: _Work) -> None:
            # Committed before the call can leave: a kill from here on leaves a row that the
            # next run reads as "outcome unknown" instead of sending the image again.
            kind = provider.journal_kind(item.image, memo)
            if kind is not None:
                store.journal_calls(provider.id, [(item.image.sha256, kind, item.image.path)], run_id)
            fut = pool.submit(self._check_one, item, ctx)
            running.add(fut)
            if kind is not None:
                journaled[fut] = item.image.sha256

        def collect(done: Iterable[Future]) -> None:
            for fut in done:
                running.discard(fut)
                sha = journaled.pop(fut, None)
                result: _WorkerResult = fut.result()
                if result.outcome is None and sha is not None:
                    unsent.append(sha)
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
                    answered = self._answered.is_set()
                    limit = self._pacer.limit if answered else 1
                    # Then a photo waiting out a fault of its own makes no call: start another.
                    resting = self._pacer.resting if answered else 0
                    while pending and len(running) - resting < limit and len(running) < 2 * self.concurrency:
                        submit(pending.take())
                if not running:
                    if self._halted.is_set():
                        break
                    self._running.wait(0.1)  # paused with nothing in flight
                else:
                    done, _ = wait(running, timeout=0.05, return_when=FIRST_COMPLETED)
                    collect(done)
                serve_journal()
                yield from _drain_queue(self._events)
                # An upload's URL is written at once: a kill must not make us upload it again.
                if memo.has_pending() or len(buffered) >= self.options.flush_size or (
                    buffered and time.monotonic() - last_flush >= self.flush_interval
                ):
                    yield from flush()
            if self._cancel.is_set():
                state = "cancelled"
                yield from _drain_queue(self._events)
                # Calls already sent may come back with a paid answer: keep each one, stored
                # as it arrives, until a second stop or the grace runs out.
                grace = self.options.cancel_grace if self.options.cancel_grace is not None else provider.longest_call
                if running and not self._abandon.is_set():
                    yield Stopping(len(running), grace)
                deadline = time.monotonic() + grace
                while running and not self._abandon.is_set() and time.monotonic() < deadline:
                    done, _ = wait(running, timeout=0.05, return_when=FIRST_COMPLETED)
                    collect(done)
                    yield from flush()
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
            left = len(journaled)  # sent, never answered: journaled as unknown
            not_attempted = plan.to_check - (counts["checked"] + counts["rejected"] + counts["failed"]) - left
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
                interrupted_calls=self._interrupted_calls,
                calls_left=left,
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
            data = Path(file_path(image.path)).read_bytes()
        except OSError as exc:
            return _WorkerResult(outcome(Status.FAILED, error_code="unreadable", error=f"The file could not be read: {exc.strerror or exc}."))
        if hashlib.sha256(data).hexdigest() != image.sha256:
            return _WorkerResult(
                outcome(Status.FAILED, error_code="changed", error="The file changed after it was scanned: scan it again.")
            )
        attempts = unknown_retries = 0
        call_seconds = 0.0
        pacer = self._pacer
        while True:
            turn = pacer.take_turn(self._cancel)
            if turn is None:
                if pacer.gave_up:
                    self._halt(self._down_sentence())
                return _WorkerResult(None)
            if self._halted.is_set():
                pacer.finish(turn, Call.NEUTRAL)
                return _WorkerResult(None)
            attempts += 1
            t0 = time.monotonic()
            failure: Exception | None = None
            try:
                result = provider.check(image, data, ctx)
            except Exception as exc:  # sorted below, once the pacer knows how the call ended
                failure = exc
            news = pacer.finish(turn, call_kind(failure), image.sha256)
            self._tell(news)
            if isinstance(failure, Cancelled):
                return _WorkerResult(None)
            if isinstance(failure, ProviderStopped):
                self._halt(failure.message, status=failure.status)
                return _WorkerResult(None)
            call_seconds += time.monotonic() - t0
            if failure is None:
                # Measured after the answer, on this worker, from the bytes already in memory.
                measured = measure(data)
                return _WorkerResult(
                    outcome(Status.CHECKED, result=result, attempts=attempts, duration_ms=round(call_seconds * 1000),
                            quality=measured, warnings=warnings_for_answer(measured, result.faces, self.options.quality))
                )
            if isinstance(failure, ImageRejected):
                return _WorkerResult(
                    outcome(Status.REJECTED, result=_error_result(failure), error_code=failure.code, error=failure.message,
                            attempts=attempts, duration_ms=round(call_seconds * 1000))
                )
            if not isinstance(failure, ProviderError):  # a bug in a provider: record it on the image, keep going
                log.error("provider %s crashed on %s", provider.id, image.path, exc_info=failure)
                return _WorkerResult(
                    outcome(Status.FAILED, error_code="internal_error", error=f"The {provider.label} provider failed unexpectedly: {type(failure).__name__}.",
                            attempts=attempts)
                )
            exc = failure
            wait_s = None if isinstance(exc, ProtocolError) else self.policy.next_wait(
                exc, attempts, unknown_retries, self._rng, streak=news.streak, reached=self._answered.is_set()
            )
            if isinstance(exc, RateLimited):
                # The account asked us to slow down: every worker waits, this photo included.
                hold = wait_s if wait_s is not None else self.policy.rate_limit_wait(exc, news.streak)
                if hold is not None:
                    self._hold_back(hold, exc)
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
            if not isinstance(exc, RateLimited):
                # A fault of this one request: only its retry waits, the other workers go on.
                pacer.rest(wait_s, self._cancel)

    def _tell(self, news: News) -> None:
        """Say what a finished call changed in the account's pace, when it matters."""
        if news.went_down:
            pacing = self._pacer.policy
            _, failures = self._pacer.down_report()
            self._events.put(Waiting(
                pacing.probe_wait,
                f"{self.provider.label} looks down ({failures} calls in a row failed), so every call is held and one "
                f"is tried now and then, for {format_duration(pacing.give_up_after)} at most",
            ))  # fmt: skip
        elif news.came_back:
            log.info("%s answers again: calls resume", self.provider.id)
        if news.limit_changed:
            log.info("%s: calls in flight now at most %d", self.provider.id, self._pacer.limit)

    def _down_sentence(self) -> str:
        seconds, failures = self._pacer.down_report()
        return (
            f"{self.provider.label} did not answer for {format_duration(seconds)} ({failures} calls in a row failed), "
            "so the run stopped."
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
        if self._pacer.hold(seconds):
            reason = "rate limited" if exc.code == "rate_limited" else _short_reason(exc)
            self._events.put(Waiting(seconds, reason))


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
