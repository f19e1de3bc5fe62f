"""How fast a batch calls one provider: the account's pace, shared by every worker.

Three things decide when a call may start, and each concerns the account rather than one
photo (a fault of one request waits in that request's worker alone, see ``core.retry``):

- **the gate**: after a rate limit nobody calls until the wait the server asked for is over;
- **the limit** on calls in flight, additive increase and multiplicative decrease (AIMD):
  when rate limits keep coming it is lowered, and once calls succeed it is raised again one
  at a time, so the pool settles at what the account allows instead of hammering it;
- **the down detector**: many failures in a row across several photos within a short
  window mean the service is down, not the photos. Then every call is held and one probe is
  let through now and then; an answer resumes the batch, and after ``give_up_after``
  seconds without one the batch stops (the runner leaves the rest pending).

No Qt, no store, no provider: workers ask :meth:`Pacer.take_turn` before each call and
report how it went with :meth:`Pacer.finish`. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Hashable

from .errors import ImageRejected, NotProcessed, OutcomeUnknown, RateLimited

#: Longest a waiting worker sleeps before looking again (it must notice a cancel).
_POLL = 0.1


@dataclass(frozen=True)
class PacingPolicy:
    #: A lowered limit is this share of the old one (rounded, and at least one less).
    decrease: float = 0.7
    #: Lower the limit when at least this many of the recent calls were rate limited...
    rate_limits_to_decrease: int = 3
    #: ... and they were at least this share of the recent calls. A stray rate limit now and
    #: then (5 % of calls) must not lower it; an account answering a third of them "busy" must.
    rate_limit_share: float = 0.25
    #: "Recent": the last max(window, 3 × limit) calls started at the current limit.
    window: int = 12
    #: Raise the limit by one after this many answers × the limit at the current one.
    increase_after: int = 10
    #: The service is down after this many failures in a row (no answer between them)...
    down_after_faults: int = 8
    #: ... on at least this many different photos...
    down_after_photos: int = 3
    #: ... all within this many seconds.
    down_window: float = 30.0
    #: Seconds before the first probe of a service that is down; doubles after each failed
    #: probe, up to ``probe_wait_cap``.
    probe_wait: float = 1.0
    probe_wait_cap: float = 30.0
    #: A service down for this long stops the batch.
    give_up_after: float = 300.0


class Call(Enum):
    """How a call ended, as far as the account's pace is concerned."""

    ANSWERED = "answered"  # the service answered about the photo (a result or a refusal)
    RATE_LIMITED = "rate_limited"
    FAULT = "fault"  # no usable answer: refused, dropped, timed out, a 5xx
    NEUTRAL = "neutral"  # says nothing about the account (cancelled, unreadable, a bug)


def call_kind(error: BaseException | None) -> Call:
    """How a call that raised ``error`` (None: succeeded) ended."""
    if error is None or isinstance(error, ImageRejected):
        return Call.ANSWERED
    if isinstance(error, RateLimited):
        return Call.RATE_LIMITED
    if isinstance(error, (NotProcessed, OutcomeUnknown)):
        return Call.FAULT
    return Call.NEUTRAL


@dataclass(frozen=True)
class Turn:
    """Leave to make one call. ``epoch`` is the limit's generation when it started, ``holds``
    how many holds had begun by then."""

    epoch: int
    probe: bool = False
    holds: int = 0


@dataclass(frozen=True)
class News:
    """What a finished call changed, for the runner to tell the user."""

    #: Rate limits in a row, this one included (0 unless it was a rate limit).
    streak: int = 0
    #: The limit on calls in flight changed (lowered or raised).
    limit_changed: bool = False
    #: The service has just been found down.
    went_down: bool = False
    #: A probe of a service that was down got an answer: calls resume.
    came_back: bool = False


class ConcurrencyLimit:
    """Additive increase, multiplicative decrease of the calls in flight. Not locked:
    :class:`Pacer` holds its lock around every use."""

    def __init__(self, ceiling: int, policy: PacingPolicy) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = self.ceiling
        self.epoch = 0
        self._policy = policy
        self._recent: deque[bool] = deque()  # True: rate limited
        self._answers = 0

    def rate_limited(self, epoch: int) -> bool:
        """Note a rate limit on a call started in ``epoch``; True when the limit was lowered.

        A call started before the last change says nothing about the current limit."""
        if epoch != self.epoch:
            return False
        self._note(True)
        limited, policy = sum(self._recent), self._policy
        if self.limit > 1 and limited >= policy.rate_limits_to_decrease and limited >= policy.rate_limit_share * len(self._recent):
            self._change(max(1, min(self.limit - 1, round(self.limit * policy.decrease))))
            return True
        return False

    def answered(self, epoch: int) -> bool:
        """Note an answer; True when the limit was raised."""
        if epoch != self.epoch:
            return False
        self._note(False)
        self._answers += 1
        if self.limit < self.ceiling and self._answers >= self._policy.increase_after * self.limit:
            self._change(self.limit + 1)
            return True
        return False

    def _note(self, limited: bool) -> None:
        self._recent.append(limited)
        while len(self._recent) > max(self._policy.window, 3 * self.limit):
            self._recent.popleft()

    def _change(self, limit: int) -> None:
        self.limit = limit
        self.epoch += 1
        self._recent.clear()
        self._answers = 0


class DownDetector:
    """Failures in a row across photos, forgotten at the first answer. Not locked."""

    def __init__(self, policy: PacingPolicy) -> None:
        self._policy = policy
        self._faults: deque[tuple[float, Hashable]] = deque()

    def fault(self, photo: Hashable, now: float) -> bool:
        """Note a failure on ``photo``; True when the failures now say the service is down."""
        self._faults.append((now, photo))
        while self._faults and now - self._faults[0][0] > self._policy.down_window:
            self._faults.popleft()
        return (
            len(self._faults) >= self._policy.down_after_faults
            and len({p for _, p in self._faults}) >= self._policy.down_after_photos
        )

    @property
    def count(self) -> int:
        return len(self._faults)

    def answered(self) -> None:
        self._faults.clear()


class Pacer:
    """The gate, the limit and the down detector of one batch's calls to one provider.

    :param ceiling: the most calls in flight (the batch's concurrency).
    :param clock: seconds, monotonic (tests may pass their own).
    """

    def __init__(self, ceiling: int, policy: PacingPolicy = PacingPolicy(), clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._cond = threading.Condition()
        self._limit = ConcurrencyLimit(ceiling, policy)
        self._detector = DownDetector(policy)
        self._in_flight = 0
        self._resting = 0
        self._hold_until = 0.0
        self._held = 0.0
        self._holds = 0
        self._streak = 0
        self._down_since: float | None = None
        self._probe_at = 0.0
        self._probe_wait = policy.probe_wait
        self._probe_out = False
        self._failed_in_row = 0
        self._gave_up = False

    # -- what the runner reads --

    @property
    def limit(self) -> int:
        """Calls allowed in flight right now."""
        with self._cond:
            return self._limit.limit

    @property
    def resting(self) -> int:
        """Workers waiting out a fault of their own request (they hold no call)."""
        with self._cond:
            return self._resting

    @property
    def held(self) -> float:
        """Seconds of holds so far (overlapping holds counted once): waits the server asked for."""
        with self._cond:
            return self._held

    @property
    def down(self) -> bool:
        with self._cond:
            return self._down_since is not None

    @property
    def gave_up(self) -> bool:
        """The service was down longer than ``give_up_after``: stop the batch."""
        with self._cond:
            return self._gave_up

    def down_report(self) -> tuple[float, int]:
        """Seconds the service has been down, and the failures in a row since it answered."""
        with self._cond:
            since = self._down_since
            return (0.0 if since is None else self._clock() - since), self._failed_in_row

    # -- what workers call --

    def take_turn(self, cancel: threading.Event) -> Turn | None:
        """Wait until a call may start and count it in flight.

        :returns: the turn, to hand to :meth:`finish`; None when ``cancel`` was set or the
            service has been down too long (see :attr:`gave_up`).
        """
        with self._cond:
            while True:
                if cancel.is_set() or self._gave_up:
                    return None
                now = self._clock()
                if self._down_since is not None:
                    if not self._probe_out and now - self._down_since >= self.policy.give_up_after:
                        self._gave_up = True
                        self._cond.notify_all()
                        return None
                    if not self._probe_out and self._in_flight == 0 and now >= self._probe_at:
                        self._probe_out = True
                        self._in_flight += 1
                        return Turn(self._limit.epoch, probe=True, holds=self._holds)
                    wait = self._probe_at - now if now < self._probe_at else _POLL
                elif now < self._hold_until:
                    wait = self._hold_until - now
                elif self._in_flight < self._limit.limit:
                    self._in_flight += 1
                    return Turn(self._limit.epoch, holds=self._holds)
                else:
                    wait = _POLL
                self._cond.wait(min(wait, _POLL))

    def finish(self, turn: Turn, how: Call, photo: Hashable = None) -> News:
        """Count a call out of flight and learn from how it ended.

        :param photo: which photo it was for (the down detector wants several).
        """
        with self._cond:
            self._in_flight -= 1
            now = self._clock()
            was_down = self._down_since is not None
            if turn.probe:
                self._probe_out = False
            news = News()
            if how in (Call.ANSWERED, Call.RATE_LIMITED):
                self._detector.answered()
                self._failed_in_row = 0
                if was_down:
                    self._down_since = None
                    self._probe_wait = self.policy.probe_wait
                    news = News(came_back=True)
            if how is Call.ANSWERED:
                self._streak = 0
                news = News(limit_changed=self._limit.answered(turn.epoch), came_back=news.came_back)
            elif how is Call.RATE_LIMITED:
                # Calls refused together while a hold began are one refusal, not a streak.
                if turn.holds == self._holds or self._streak == 0:
                    self._streak += 1
                news = News(streak=self._streak, limit_changed=self._limit.rate_limited(turn.epoch), came_back=news.came_back)
            elif how is Call.FAULT:
                self._failed_in_row += 1
                if was_down:
                    if turn.probe:  # still down: wait longer before the next probe
                        self._probe_wait = min(self.policy.probe_wait_cap, self._probe_wait * 2)
                        self._probe_at = now + self._probe_wait
                        if now - self._down_since >= self.policy.give_up_after:
                            self._gave_up = True
                elif self._detector.fault(photo, now):
                    self._down_since = now
                    self._probe_at = now + self._probe_wait
                    news = News(went_down=True)
            self._cond.notify_all()
            return news

    def hold(self, seconds: float) -> bool:
        """Start no call for ``seconds`` (a rate limit concerns the account).

        :returns: True when this moves the end of the hold by more than half a second
            (worth telling the user), False when a hold already covers it.
        """
        with self._cond:
            now = self._clock()
            until = now + seconds
            if now >= self._hold_until:
                self._holds += 1
            extend = until > self._hold_until + 0.5
            self._held += max(0.0, until - max(now, self._hold_until))
            self._hold_until = max(self._hold_until, until)
            return extend

    def rest(self, seconds: float, cancel: threading.Event) -> bool:
        """Wait out a fault of one request, without counting as a call in flight, so that
        the runner starts another photo meanwhile.

        :returns: False when ``cancel`` was set meanwhile.
        """
        with self._cond:
            self._resting += 1
        try:
            return not cancel.wait(seconds)
        finally:
            with self._cond:
                self._resting -= 1
