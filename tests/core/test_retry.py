"""The retry policy: what is retried, how long it waits, when it gives up."""

import random

import pytest

from core.errors import ImageRejected, NotProcessed, OutcomeUnknown, ProtocolError, ProviderStopped, RateLimited
from core.retry import RetryPolicy


@pytest.fixture
def rng():
    return random.Random(7)


def test_backoff_doubles_from_the_base_and_is_capped(rng):
    policy = RetryPolicy(base_delay=1.0, cap=10.0)
    waits = [policy.backoff(n, rng) for n in range(1, 8)]
    for n, w in enumerate(waits[:4], start=1):
        assert 2 ** (n - 1) <= w <= 1.5 * 2 ** (n - 1)
    assert all(w <= 10.0 for w in waits)
    assert waits[-1] == pytest.approx(10.0)


def test_jitter_spreads_workers_apart():
    policy = RetryPolicy(base_delay=1.0)
    waits = {round(policy.backoff(3, random.Random(seed)), 6) for seed in range(20)}
    assert len(waits) > 10


def test_rate_limit_honours_retry_after(rng):
    policy = RetryPolicy(base_delay=1.0)
    assert policy.next_wait(RateLimited("slow down", retry_after=8), 1, 0, rng) == 8


def test_rate_limit_without_retry_after_backs_off_at_least_a_second(rng):
    policy = RetryPolicy(base_delay=1.0)
    assert policy.next_wait(RateLimited("slow down"), 1, 0, rng) >= 1.0


def test_a_retry_after_beyond_the_limit_gives_up(rng):
    policy = RetryPolicy(max_retry_after=300)
    assert policy.next_wait(RateLimited("come back tomorrow", retry_after=86400), 1, 0, rng) is None


def test_free_retries_stop_at_max_attempts(rng):
    policy = RetryPolicy(max_attempts=3, base_delay=0.01)
    assert policy.next_wait(NotProcessed("refused"), 2, 0, rng) is not None
    assert policy.next_wait(NotProcessed("refused"), 3, 0, rng) is None
    assert policy.next_wait(RateLimited("busy"), 3, 0, rng) is None


def test_outcome_unknown_is_not_retried_unless_allowed(rng):
    assert RetryPolicy().next_wait(OutcomeUnknown("timeout"), 1, 0, rng) is None
    allowed_once = RetryPolicy(outcome_unknown_retries=1, base_delay=0.01)
    assert allowed_once.next_wait(OutcomeUnknown("500"), 1, 0, rng) is not None
    assert allowed_once.next_wait(OutcomeUnknown("500"), 2, 1, rng) is None


@pytest.mark.parametrize("error", [ImageRejected("bad"), ProviderStopped("bad key"), ProtocolError("html")])
def test_final_errors_are_never_retried(error, rng):
    assert RetryPolicy(outcome_unknown_retries=5).next_wait(error, 1, 0, rng) is None


def test_the_pools_wait_after_rate_limits_in_a_row_grows_to_twice_the_base_and_no_further():
    policy = RetryPolicy(base_delay=10.0)
    waits = [policy.rate_limit_wait(RateLimited("busy"), streak) for streak in range(1, 6)]
    assert waits[0] == 10.0 and waits == sorted(waits) and waits[1] > 10.0 and max(waits) == 20.0
    assert policy.rate_limit_wait(RateLimited("busy", retry_after=1), 5) == 1


def test_a_fault_of_one_request_backs_off_from_a_short_base_not_the_rate_limit_wait(rng):
    policy = RetryPolicy(base_delay=10.0)  # useapi's rate-limit wait
    first = policy.next_wait(NotProcessed("503"), 1, 0, rng)
    assert 0.5 <= first <= 0.75
    assert RetryPolicy(base_delay=0.001).fault_delay == 0.001


def test_a_service_never_reached_gives_up_after_three_attempts(rng):
    policy = RetryPolicy()
    assert policy.next_wait(NotProcessed("refused"), 2, 0, rng, reached=False) is not None
    assert policy.next_wait(NotProcessed("refused"), 3, 0, rng, reached=False) is None
    assert policy.next_wait(NotProcessed("refused"), 3, 0, rng) is not None
