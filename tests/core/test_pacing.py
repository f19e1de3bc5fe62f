"""The account's pace: the rate-limit gate, the AIMD limit on calls in flight, the down detector."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from core.errors import ImageRejected, NotProcessed, OutcomeUnknown, ProtocolError, RateLimited
from core.pacing import Call, ConcurrencyLimit, DownDetector, Pacer, PacingPolicy, call_kind

POLICY = PacingPolicy()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def simulate(limiter: ConcurrencyLimit, allows, rounds: int, rng: random.Random | None = None) -> list[tuple[int, int, int]]:
    """Run ``rounds`` rounds of calls: each round starts ``limiter.limit`` calls, of which the
    account takes ``allows`` and rate-limits the rest (and, with ``rng``, 5 % at random).

    :returns: per round (limit, calls, rate limits).
    """
    history = []
    for _ in range(rounds):
        limit, epoch = limiter.limit, limiter.epoch
        limited = 0
        for i in range(limit):
            if i >= allows or (rng is not None and rng.random() < 0.05):
                limited += 1
                limiter.rate_limited(epoch)
            else:
                limiter.answered(epoch)
        history.append((limit, limit, limited))
    return history


def test_under_a_busy_account_the_limit_settles_at_what_it_allows():
    limiter = ConcurrencyLimit(8, POLICY)
    history = simulate(limiter, allows=2, rounds=400)
    late = history[200:]
    limits = Counter(limit for limit, _, _ in late)
    assert set(limits) <= {2, 3} and limits[2] > limits[3]
    calls = sum(c for _, c, _ in late)
    refused = sum(r for _, _, r in late)
    assert refused / calls < 0.15  # against 6 of 8 calls refused at a fixed 8


def test_stray_rate_limits_do_not_lower_the_limit_for_long():
    limiter = ConcurrencyLimit(4, POLICY)
    history = simulate(limiter, allows=99, rounds=500, rng=random.Random(3))
    at_full = sum(1 for limit, _, _ in history if limit == 4)
    assert at_full / len(history) > 0.8


def test_the_limit_goes_back_up_one_at_a_time_once_calls_succeed():
    limiter = ConcurrencyLimit(6, POLICY)
    simulate(limiter, allows=2, rounds=50)
    low = limiter.limit
    assert low < 6
    seen = [limiter.limit]
    for _ in range(2000):
        limiter.answered(limiter.epoch)
        if limiter.limit != seen[-1]:
            seen.append(limiter.limit)
    assert seen == list(range(low, 7))


def test_rate_limits_of_calls_started_before_a_decrease_do_not_lower_it_again():
    limiter = ConcurrencyLimit(8, POLICY)
    old = limiter.epoch
    for _ in range(3):
        limiter.rate_limited(old)
    assert limiter.limit == 6
    for _ in range(6):  # the rest of the first burst comes back refused
        assert not limiter.rate_limited(old)
    assert limiter.limit == 6


def test_the_service_is_down_after_failures_in_a_row_on_several_photos():
    detector = DownDetector(POLICY)
    results = [detector.fault(f"photo-{i % 3}", 10.0 + i) for i in range(POLICY.down_after_faults)]
    assert results == [False] * (POLICY.down_after_faults - 1) + [True]


def test_one_photo_failing_again_and_again_is_not_a_service_down():
    detector = DownDetector(POLICY)
    assert not any(detector.fault("one photo", 10.0 + i) for i in range(20))


def test_an_answer_or_a_long_gap_breaks_the_run_of_failures():
    detector = DownDetector(POLICY)
    for i in range(POLICY.down_after_faults - 1):
        detector.fault(f"p{i}", 10.0)
    detector.answered()
    assert not detector.fault("p-last", 10.0)
    spread = DownDetector(POLICY)
    gap = POLICY.down_window / 2 + 1
    assert not any(spread.fault(f"p{i}", i * gap) for i in range(20))


@pytest.mark.parametrize(
    "error, kind",
    [
        (None, Call.ANSWERED),
        (ImageRejected("bad image"), Call.ANSWERED),
        (RateLimited("slow down"), Call.RATE_LIMITED),
        (NotProcessed("refused"), Call.FAULT),
        (OutcomeUnknown("500"), Call.FAULT),
        (ProtocolError("not JSON"), Call.NEUTRAL),
        (ValueError("a bug"), Call.NEUTRAL),
    ],
)
def test_calls_are_sorted_by_what_they_say_about_the_account(error, kind):
    assert call_kind(error) is kind


def start_turn(pacer: Pacer, cancel: threading.Event) -> tuple[threading.Thread, list]:
    got: list = []
    thread = threading.Thread(target=lambda: got.append(pacer.take_turn(cancel)), daemon=True)
    thread.start()
    return thread, got


def test_a_hold_stops_every_call_until_it_ends():
    clock, cancel = Clock(), threading.Event()
    pacer = Pacer(4, POLICY, clock=clock)
    assert pacer.hold(5.0) is True
    assert pacer.hold(4.8) is False  # already covered: nothing new to say
    thread, got = start_turn(pacer, cancel)
    thread.join(0.3)
    assert thread.is_alive() and got == []
    clock.now += 5.0
    thread.join(5)
    assert got and got[0] is not None


def test_calls_in_flight_never_exceed_the_limit():
    clock, cancel = Clock(), threading.Event()
    pacer = Pacer(2, POLICY, clock=clock)
    first, second = pacer.take_turn(cancel), pacer.take_turn(cancel)
    thread, got = start_turn(pacer, cancel)
    thread.join(0.3)
    assert thread.is_alive()
    pacer.finish(first, Call.ANSWERED)
    thread.join(5)
    assert got[0] is not None
    cancel.set()
    assert pacer.take_turn(cancel) is None
    assert second is not None


def go_down(pacer: Pacer, cancel: threading.Event) -> None:
    news = [pacer.finish(pacer.take_turn(cancel), Call.FAULT, f"p{i % 3}") for i in range(POLICY.down_after_faults)]
    assert [n.went_down for n in news].count(True) == 1 and news[-1].went_down and pacer.down


def test_a_service_down_gets_one_probe_at_a_time_and_resumes_when_it_answers():
    clock, cancel = Clock(), threading.Event()
    pacer = Pacer(4, POLICY, clock=clock)
    go_down(pacer, cancel)
    thread, got = start_turn(pacer, cancel)
    thread.join(0.3)
    assert thread.is_alive()  # no probe before the probe wait
    clock.now += POLICY.probe_wait
    thread.join(5)
    probe = got[0]
    assert probe.probe
    other, other_got = start_turn(pacer, cancel)
    other.join(0.3)
    assert other.is_alive()  # one probe at a time
    news = pacer.finish(probe, Call.ANSWERED, "p0")
    assert news.came_back and not pacer.down
    other.join(5)
    assert other_got[0] is not None and not other_got[0].probe


def test_a_service_down_too_long_gives_up():
    clock, cancel = Clock(), threading.Event()
    pacer = Pacer(4, POLICY, clock=clock)
    go_down(pacer, cancel)
    probes = 0
    while not pacer.gave_up:
        clock.now += POLICY.probe_wait_cap
        turn = pacer.take_turn(cancel)
        if turn is None:
            break
        assert turn.probe
        probes += 1
        pacer.finish(turn, Call.FAULT, "p0")
    assert pacer.gave_up and pacer.take_turn(cancel) is None
    seconds, failures = pacer.down_report()
    assert seconds >= POLICY.give_up_after and failures == POLICY.down_after_faults + probes


def test_a_photo_resting_after_a_fault_is_counted_apart():
    pacer = Pacer(2, POLICY)
    cancel = threading.Event()
    seen: list[int] = []
    thread = threading.Thread(target=lambda: pacer.rest(5, cancel), daemon=True)
    thread.start()
    for _ in range(100):
        if pacer.resting:
            break
        threading.Event().wait(0.01)
    seen.append(pacer.resting)
    cancel.set()
    thread.join(5)
    assert seen == [1] and pacer.resting == 0


def test_calls_refused_together_make_one_rate_limit_and_a_refusal_after_the_hold_makes_two():
    clock, cancel = Clock(), threading.Event()
    pacer = Pacer(4, POLICY, clock=clock)
    together = [pacer.take_turn(cancel) for _ in range(3)]
    first = pacer.finish(together[0], Call.RATE_LIMITED)
    pacer.hold(10.0)
    rest = [pacer.finish(turn, Call.RATE_LIMITED).streak for turn in together[1:]]
    assert first.streak == 1 and rest == [1, 1]
    clock.now += 10.0
    after = pacer.take_turn(cancel)
    assert pacer.finish(after, Call.RATE_LIMITED).streak == 2
    pacer.hold(15.0)
    clock.now += 15.0
    assert pacer.finish(pacer.take_turn(cancel), Call.ANSWERED).streak == 0
    assert pacer.finish(pacer.take_turn(cancel), Call.RATE_LIMITED).streak == 1
