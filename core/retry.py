"""When to try a provider call again, and how long to wait first.

The rules come from ``providers.md``: a request the server certainly did not process (rate
limit, connection refused, a gateway 503) is retried with capped exponential backoff; a
request whose fate is unknown (read timeout, 500, 502, 504, 524) may have been billed, so it
is retried only as often as the provider says is free or the user allowed. Everything else
is final.

Two kinds of wait, because they concern different things (``core.pacing`` applies them):

- a rate limit concerns the account: the whole pool waits, ``Retry-After`` when the server
  gives one, else the provider's base wait (longer, up to twice it, when they repeat);
- a fault of one request (500, 503, a dropped connection, a timeout) concerns that request:
  only its retry waits, from a short base with jitter, while the other workers go on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import CreatedMaybe, NotProcessed, OutcomeUnknown, ProviderError, RateLimited

#: Default first wait before retrying one request after a fault, in seconds.
FAULT_BASE_DELAY = 0.5
#: Each rate limit in a row makes the pool's wait this much longer, up to RATE_LIMIT_MOST
#: times the base wait.
RATE_LIMIT_GROWTH = 1.5
RATE_LIMIT_MOST = 2.0


@dataclass(frozen=True)
class RetryPolicy:
    #: Attempts in all for one image when retries are free (rate limits, not processed).
    max_attempts: int = 6
    #: Wait of the pool after a rate limit without Retry-After, in seconds (see
    #: ``rate_limit_wait``). None: the provider's own ``rate_limit_base_wait`` (CometAPI
    #: 1 s, as Kling asks; useapi 10 s, as its scripts do).
    base_delay: float | None = None
    #: First wait before one request is retried after a fault; doubles each attempt. None:
    #: FAULT_BASE_DELAY, or ``base_delay`` when that is shorter.
    fault_base_delay: float | None = None
    #: No single backoff is longer than this.
    cap: float = 60.0
    #: A server's Retry-After is honoured up to this; asking for longer fails the image.
    max_retry_after: float = 300.0
    #: Extra attempts allowed after an outcome-unknown failure (they may be billed).
    outcome_unknown_retries: int = 0
    #: The user allowed retries after unclear failures (--retry-ambiguous): only then is a
    #: call that may have created something (:class:`CreatedMaybe`) tried again at once.
    ambiguous_allowed: bool = False
    #: Attempts before a service that has never answered (refused, unknown host) is reported
    #: as unreachable: seconds, not the minute a full backoff would take.
    unreachable_attempts: int = 3

    @property
    def fault_delay(self) -> float:
        if self.fault_base_delay is not None:
            return self.fault_base_delay
        return min(FAULT_BASE_DELAY, self.base_delay) if self.base_delay is not None else FAULT_BASE_DELAY

    def backoff(self, attempt: int, rng: random.Random, base: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Exponential from ``base`` (default ``base_delay``), capped, with up to 50 % jitter
        added so that requests that failed together do not come back together.
        """
        start = base if base is not None else (self.base_delay or 1.0)
        delay = min(self.cap, start * 2 ** (attempt - 1))
        return min(self.cap, delay * (1 + 0.5 * rng.random()))

    def rate_limit_wait(self, error: RateLimited, streak: int) -> float | None:
        """How long the whole pool waits after a rate limit, or None when the server asks
        for longer than we wait.

        :param streak: rate limits in a row, this one included, with no answer between.
        Without Retry-After: the base wait, half as long again for each rate limit in a row,
        up to twice the base wait. It grows no further because the pacer also lowers the
        calls in flight when rate limits repeat, and a longer pause would only leave the
        account idle. No jitter: one gate releases every worker at once anyway.
        """
        if error.retry_after is not None:
            return None if error.retry_after > self.max_retry_after else max(0.0, error.retry_after)
        base = self.base_delay or 1.0
        return min(self.cap, base * min(RATE_LIMIT_GROWTH ** (max(1, streak) - 1), RATE_LIMIT_MOST))

    def next_wait(
        self,
        error: ProviderError,
        attempt: int,
        unknown_retries_used: int,
        rng: random.Random,
        *,
        streak: int = 1,
        reached: bool = True,
    ) -> float | None:
        """Decide what follows a failed attempt.

        :param error: what the attempt raised.
        :param attempt: how many attempts have been made for this image, this one included.
        :param unknown_retries_used: how many of them were retries after an outcome-unknown
            failure.
        :param streak: for a rate limit, how many the account has given in a row.
        :param reached: whether the service has answered at all in this batch.
        :returns: seconds to wait before trying again (the pool's wait for a rate limit,
            this request's for a fault), or None to give up.
        """
        if isinstance(error, RateLimited):
            if attempt >= self.max_attempts:
                return None
            return self.rate_limit_wait(error, streak)
        if isinstance(error, NotProcessed):
            limit = self.max_attempts if reached else min(self.max_attempts, self.unreachable_attempts)
            return self.backoff(attempt, rng, self.fault_delay) if attempt < limit else None
        if isinstance(error, OutcomeUnknown):
            if isinstance(error, CreatedMaybe) and not self.ambiguous_allowed:
                return None
            if unknown_retries_used < self.outcome_unknown_retries and attempt < self.max_attempts:
                return self.backoff(attempt, rng, self.fault_delay)
            return None
        return None
