"""When to try a provider call again, and how long to wait first.

The rules come from ``providers.md``: a request the server certainly did not process (rate
limit, connection refused, a gateway 503) is retried with capped exponential backoff and
jitter; a request whose fate is unknown (read timeout, 500, 502, 504, 524) may have been
billed, so it is retried only as often as the provider says is free or the user allowed.
Everything else is final.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import NotProcessed, OutcomeUnknown, ProviderError, RateLimited


@dataclass(frozen=True)
class RetryPolicy:
    #: Attempts in all for one image when retries are free (rate limits, not processed).
    max_attempts: int = 6
    #: First backoff in seconds; doubles each attempt. None: the provider's own
    #: ``rate_limit_base_wait`` (CometAPI 1 s, as Kling asks; useapi 10 s, as its scripts do).
    base_delay: float | None = None
    #: No single backoff is longer than this.
    cap: float = 60.0
    #: A server's Retry-After is honoured up to this; asking for longer fails the image.
    max_retry_after: float = 300.0
    #: Extra attempts allowed after an outcome-unknown failure (they may be billed).
    outcome_unknown_retries: int = 0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Exponential from ``base_delay``, capped, with up to 50 % jitter added so that
        workers that were refused together do not come back together.
        """
        delay = min(self.cap, (self.base_delay or 1.0) * 2 ** (attempt - 1))
        return min(self.cap, delay * (1 + 0.5 * rng.random()))

    def next_wait(
        self, error: ProviderError, attempt: int, unknown_retries_used: int, rng: random.Random
    ) -> float | None:
        """Decide what follows a failed attempt.

        :param error: what the attempt raised.
        :param attempt: how many attempts have been made for this image, this one included.
        :param unknown_retries_used: how many of them were retries after an outcome-unknown
            failure.
        :returns: seconds to wait before trying again, or None to give up.
        """
        if isinstance(error, RateLimited):
            if attempt >= self.max_attempts:
                return None
            if error.retry_after is not None:
                if error.retry_after > self.max_retry_after:
                    return None
                return max(0.0, error.retry_after)
            return self.backoff(attempt, rng)
        if isinstance(error, NotProcessed):
            return self.backoff(attempt, rng) if attempt < self.max_attempts else None
        if isinstance(error, OutcomeUnknown):
            if unknown_retries_used < self.outcome_unknown_retries and attempt < self.max_attempts:
                return self.backoff(attempt, rng)
            return None
        return None
