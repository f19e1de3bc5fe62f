"""The bridge between core's batch engine and the window: runs off the UI thread, talks in signals.

A :class:`RunSession` (on the UI thread) owns a ``QThread`` in which a worker iterates
``BatchRunner.run()``. The worker never emits an event as it comes: it drops it in a mailbox
and rings only when the mailbox was empty. The session empties the mailbox at most every
:data:`RELAY_INTERVAL` seconds and relays what it found, merged (:func:`coalesce`): a run of
finished images becomes one list. So a thousand results a second cost the event loop ten
relays, and a result is never held back waiting for the runner's next event (the runner
yields nothing while calls are slow, so batching in the worker thread alone could not promise that).

Before a run that costs money the worker stops at the plan, which arrives before any call is
made, and waits for :meth:`RunSession.answer_plan`; a stop answers no.

While a session runs, the objects the app made before it are frozen out of Python's garbage
collections (:func:`gc.freeze`): results streaming in make full collections frequent, and each
would otherwise walk all of them, holding the interpreter, and so the UI thread, for 20–100 ms.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from PySide6.QtCore import QObject, QThread, QThreadPool, QTimer, Signal, Slot

from core.errors import user_sentence
from core.events import (
    FileSkipped, Finished, ImageFinished, Paused, Plan, Progress, ProviderHalted, ScanProgress, Stopping, Waiting,
)
from core.models import Outcome
from core.runner import BatchRunner

log = logging.getLogger(__name__)

#: Seconds between two relays of the mailbox, at least: about ten a second.
RELAY_INTERVAL = 0.1


@dataclass(frozen=True)
class OutcomeBatch:
    """Consecutive finished images, already in the store, with the latest progress."""

    outcomes: tuple[Outcome, ...]
    progress: Progress


@dataclass(frozen=True)
class SkippedBatch:
    """Consecutive paths the scan could not use."""

    files: tuple[FileSkipped, ...]


@dataclass(frozen=True)
class ConfirmPlan:
    """The worker is waiting for the user to allow this paid plan."""

    plan: Plan


@dataclass(frozen=True)
class RunFailed:
    """The run could not go on; ``message`` is a sentence for the user."""

    message: str


def coalesce(items: Iterable[Any]) -> list[Any]:
    """Merge a mailbox's contents for relaying, keeping their order.

    A run of :class:`~core.events.ImageFinished` becomes one :class:`OutcomeBatch`, a run of
    :class:`~core.events.FileSkipped` one :class:`SkippedBatch`, and a run of
    :class:`~core.events.ScanProgress` its last member. Everything else passes unchanged.

    :param items: events and worker notices, in the order they were posted.
    :returns: the merged items, in order.
    """
    merged: list[Any] = []
    outcomes: list[Outcome] = []
    skipped: list[FileSkipped] = []
    progress: Progress | None = None

    def close_runs() -> None:
        nonlocal progress
        if outcomes:
            merged.append(OutcomeBatch(tuple(outcomes), progress))
            outcomes.clear()
            progress = None
        if skipped:
            merged.append(SkippedBatch(tuple(skipped)))
            skipped.clear()

    for item in items:
        if isinstance(item, ImageFinished):
            if skipped:
                close_runs()
            outcomes.append(item.outcome)
            progress = item.progress
        elif isinstance(item, FileSkipped):
            if outcomes:
                close_runs()
            skipped.append(item)
        else:
            close_runs()
            if isinstance(item, ScanProgress) and merged and isinstance(merged[-1], ScanProgress):
                merged[-1] = item
            else:
                merged.append(item)
    close_runs()
    return merged


class _Mailbox:
    """Items posted by the worker thread, taken all at once by the UI thread."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._lock = threading.Lock()

    def post(self, item: Any) -> bool:
        """:returns: True when the mailbox was empty, so the reader must be told."""
        with self._lock:
            self._items.append(item)
            return len(self._items) == 1

    def take_all(self) -> list[Any]:
        with self._lock:
            items, self._items = self._items, []
            return items


class _PlanAnswer:
    """The user's yes or no to a paid plan, handed from the UI thread to the worker."""

    def __init__(self) -> None:
        self._given = threading.Event()
        self._allowed = False

    def give(self, allowed: bool) -> None:
        if not self._given.is_set():
            self._allowed = allowed
            self._given.set()

    def wait(self) -> bool:
        self._given.wait()
        return self._allowed


class _RunWorker(QObject):
    """Lives in the session's thread and iterates the runner there."""

    mail = Signal()
    done = Signal()

    def __init__(self, runner: BatchRunner, roots: Sequence[str], mailbox: _Mailbox, answer: _PlanAnswer) -> None:
        super().__init__()
        self._runner = runner
        self._roots = list(roots)
        self._mailbox = mailbox
        self._answer = answer

    def _post(self, item: Any) -> None:
        if self._mailbox.post(item):
            self.mail.emit()

    @Slot()
    def run(self) -> None:
        events = self._runner.run(self._roots)
        try:
            for event in events:
                self._post(event)
                if isinstance(event, Plan) and event.costs_money and not self._runner.options.dry_run:
                    self._post(ConfirmPlan(event))
                    if not self._answer.wait():
                        self._runner.cancel()
        except Exception as exc:
            sentence = user_sentence(exc)
            if sentence is not None:
                self._post(RunFailed(f"The run stopped: {sentence.text}"))
            else:
                sys.excepthook(*sys.exc_info())  # a bug: logged and shown with a report
                self._post(RunFailed("The run stopped because of an unexpected error; the details are in the log."))
        finally:
            events.close()
            self.done.emit()
            # Quit from here, not from the UI thread: a caller blocked in RunSession.wait()
            # would never get to hear of ``done``.
            self.thread().quit()


class RunSession(QObject):
    """One batch, run in its own thread; its events arrive as these signals on the UI thread.

    Signals, in the order a batch produces them: ``scan_progress(ScanProgress)``,
    ``files_skipped(list[FileSkipped])``, ``plan_ready(Plan)``, ``confirmation_needed(Plan)``
    (paid runs: answer with :meth:`answer_plan`), ``outcomes(list[Outcome])`` with
    ``progress(Progress)`` right after, ``waiting(Waiting)``, ``halted(ProviderHalted)``,
    ``paused_changed(bool)``, ``stopping(Stopping)`` (after :meth:`stop`, while calls in
    flight are awaited), then ``finished(Summary)`` or ``failed(str)``, and last ``ended()``
    once the thread is gone.
    """

    scan_progress = Signal(object)
    files_skipped = Signal(list)
    plan_ready = Signal(object)
    confirmation_needed = Signal(object)
    outcomes = Signal(list)
    progress = Signal(object)
    waiting = Signal(object)
    halted = Signal(object)
    paused_changed = Signal(bool)
    stopping = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    ended = Signal()

    def __init__(self, runner: BatchRunner, roots: Sequence[str], parent: QObject | None = None) -> None:
        """:param runner: the batch to run (not started); a paid one asks first (``confirmation_needed``).
        :param roots: the folders and files to scan.
        """
        super().__init__(parent)
        self.runner = runner
        self._mailbox = _Mailbox()
        self._answer = _PlanAnswer()
        self._thread = QThread(self)
        self._thread.setObjectName(f"run-{runner.provider.id}")
        self._worker = _RunWorker(runner, roots, self._mailbox, self._answer)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.mail.connect(self._on_mail)
        self._worker.done.connect(self._on_worker_done)
        self._thread.finished.connect(self._on_thread_finished)
        self._relay_timer = QTimer(self)
        self._relay_timer.setSingleShot(True)
        self._relay_timer.timeout.connect(self._relay)
        self._last_relay = 0.0
        self._state = "new"  # new -> running -> ended

    # -- control, from the UI thread ------------------------------------------------------

    def start(self) -> None:
        if self._state == "new":
            self._state = "running"
            gc.freeze()  # until the run ends; see the module's docstring
            self._thread.start()

    def pause(self) -> None:
        """Finish what is in flight, start nothing new (``paused_changed(True)`` follows)."""
        self.runner.pause()

    def resume(self) -> None:
        self.runner.resume()

    def stop(self) -> None:
        """Stop: nothing new is sent, calls in flight are awaited (a bounded time) and every
        answer is kept. A second stop leaves those calls at once (their outcome stays unknown)."""
        if self.runner.stopping:
            self.runner.abandon()
        else:
            self.runner.cancel()
        self._answer.give(False)

    def answer_plan(self, allowed: bool) -> None:
        """Let the paid run go ahead, or not (then it ends without calling anyone)."""
        self._answer.give(allowed)

    @property
    def running(self) -> bool:
        """True from :meth:`start` until ``ended``."""
        return self._state == "running"

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block the calling (UI) thread until the run's thread has finished, then relay what is left.

        :returns: True when it finished in time.
        """
        if self._state == "new":
            return True
        finished = self._thread.wait(timeout_ms)
        if finished:
            self._on_thread_finished()
        return finished

    # -- relaying, on the UI thread -------------------------------------------------------

    @Slot()
    def _on_mail(self) -> None:
        if self._relay_timer.isActive():
            return
        since = time.monotonic() - self._last_relay
        if since >= RELAY_INTERVAL:
            self._relay()
        else:
            self._relay_timer.start(max(1, round((RELAY_INTERVAL - since) * 1000)))

    @Slot()
    def _relay(self) -> None:
        self._relay_timer.stop()
        self._last_relay = time.monotonic()
        for item in coalesce(self._mailbox.take_all()):
            self._dispatch(item)

    def _dispatch(self, item: Any) -> None:
        if isinstance(item, OutcomeBatch):
            self.outcomes.emit(list(item.outcomes))
            self.progress.emit(item.progress)
        elif isinstance(item, ScanProgress):
            self.scan_progress.emit(item)
        elif isinstance(item, SkippedBatch):
            self.files_skipped.emit(list(item.files))
        elif isinstance(item, Plan):
            self.plan_ready.emit(item)
        elif isinstance(item, ConfirmPlan):
            self.confirmation_needed.emit(item.plan)
        elif isinstance(item, Waiting):
            self.waiting.emit(item)
        elif isinstance(item, ProviderHalted):
            self.halted.emit(item)
        elif isinstance(item, Paused):
            self.paused_changed.emit(item.paused)
        elif isinstance(item, Stopping):
            self.stopping.emit(item)
        elif isinstance(item, Finished):
            self.finished.emit(item.summary)
        elif isinstance(item, RunFailed):
            self.failed.emit(item.message)

    @Slot()
    def _on_worker_done(self) -> None:
        self._relay()  # the last events, at once

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._state != "running":
            return
        self._relay()
        self._state = "ended"
        self._relay_timer.stop()
        gc.unfreeze()  # what died meanwhile in cycles is collected again
        self.ended.emit()


class _CallRelay(QObject):
    succeeded = Signal(object)
    failed = Signal(object)


def call_in_background(
    fn: Callable[[], Any],
    on_result: Callable[[Any], None],
    on_error: Callable[[BaseException], None],
    parent: QObject,
    pool: QThreadPool | None = None,
) -> None:
    """Run ``fn`` on a pool thread and hand its result or exception to the UI thread.

    :param fn: the work; it must not touch widgets.
    :param on_result: called on the UI thread with what ``fn`` returned.
    :param on_error: called on the UI thread with the exception ``fn`` raised.
    :param parent: owns the relay; the callbacks are dropped if it is deleted first.
    :param pool: the pool to use (default: the global one).
    """
    relay = _CallRelay(parent)
    relay.succeeded.connect(on_result)
    relay.failed.connect(on_error)
    relay.succeeded.connect(relay.deleteLater)
    relay.failed.connect(relay.deleteLater)

    def work() -> None:
        try:
            result = fn()
        except Exception as exc:  # handed to on_error, which decides what the user sees
            outcome, value = relay.failed, exc
        else:
            outcome, value = relay.succeeded, result
        try:
            outcome.emit(value)
        except RuntimeError:  # the parent (and the relay with it) was deleted meanwhile
            log.debug("a background result arrived after its window closed")

    (pool or QThreadPool.globalInstance()).start(work)
