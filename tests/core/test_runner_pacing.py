"""The runner with a service that goes down, comes back, or was never there."""

from __future__ import annotations

import threading

from core.errors import NotProcessed
from core.events import ImageFinished, ProviderHalted, Waiting
from core.models import CheckResult
from core.pacing import PacingPolicy
from core.providers import Provider, ProviderConfig
from core.retry import RetryPolicy
from tests.core.test_runner import ScriptedProvider, make_photos, run, statuses, summary_of

#: Probes a few milliseconds apart, so that a test of a service down takes no time.
QUICK_PROBES = PacingPolicy(probe_wait=0.005, probe_wait_cap=0.02)


class Outage(Provider):
    """Answers the first call, then refuses every connection until ``comes_back_after``
    calls made while it is down (None: never). Records how many calls were in flight at
    once while it was down, and how many calls it took after the outage began."""

    id = "outage"
    label = "Outage"
    remote = False
    default_concurrency = 4

    def __init__(self, comes_back_after: int | None) -> None:
        super().__init__(ProviderConfig())
        self.comes_back_after = comes_back_after
        self.lock = threading.Lock()
        self.calls = 0
        self.calls_while_down = 0
        self.in_flight = 0
        self.peak_while_down = 0
        self.down = False

    def check(self, image, data, ctx):
        with self.lock:
            self.calls += 1
            self.down = self.down or self.calls == 2
            if self.down and self.comes_back_after is not None and self.calls_while_down >= self.comes_back_after:
                self.down = False
            down = self.down
            if down:
                self.calls_while_down += 1
            self.in_flight += 1
            self.peak_while_down = max(self.peak_while_down, self.in_flight) if down else self.peak_while_down
        try:
            threading.Event().wait(0.002)  # in flight for a moment, as a real call is
            if down:
                raise NotProcessed("Could not connect to the service: the connection was refused.")
            return CheckResult(face_seg=True, head_seg=True, raw="{}")
        finally:
            with self.lock:
                self.in_flight -= 1


def photos(tmp_path, count: int):
    return make_photos(tmp_path / "p", names=[f"{i:02d}.jpg" for i in range(count)])


def test_a_service_that_goes_down_is_held_probed_one_call_at_a_time_and_resumed(tmp_path):
    photos(tmp_path, 30)
    provider = Outage(comes_back_after=14)
    patient = RetryPolicy(base_delay=0.001, cap=0.01, max_attempts=30)
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"], concurrency=4, retry=patient, pacing=QUICK_PROBES)

    said = [e for e in events if isinstance(e, Waiting)]
    assert len(said) == 1 and "looks down" in said[0].reason, said  # said once, in one sentence
    summary = summary_of(events)
    assert (summary.checked, summary.failed, summary.halted) == (30, 0, None)
    # Eight failures made it "down" (up to four at once); from then on, one probe at a time.
    assert provider.calls_while_down == 14
    assert provider.peak_while_down <= 4


def test_while_the_service_is_down_only_one_call_is_in_flight(tmp_path):
    photos(tmp_path, 30)
    provider = Outage(comes_back_after=40)
    patient = RetryPolicy(base_delay=0.001, cap=0.01, max_attempts=60)
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"], concurrency=4, retry=patient, pacing=QUICK_PROBES)
    assert summary_of(events).checked == 30
    # 40 refused calls, of which at most the first few (before the eighth failure) overlapped.
    assert provider.calls_while_down == 40
    assert provider.peak_while_down <= 4


def test_a_service_down_too_long_stops_the_run_with_the_rest_pending(tmp_path):
    photos(tmp_path, 30)
    provider = Outage(comes_back_after=None)
    patient = RetryPolicy(base_delay=0.001, cap=0.01, max_attempts=60)
    pacing = PacingPolicy(probe_wait=0.005, probe_wait_cap=0.02, give_up_after=0.3)
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"], concurrency=4, retry=patient, pacing=pacing)

    summary = summary_of(events)
    halted = [e for e in events if isinstance(e, ProviderHalted)]
    assert len(halted) == 1 and "did not answer for" in halted[0].message and "calls in a row failed" in halted[0].message
    assert summary.halted == halted[0].message
    assert summary.failed == 0 and summary.checked == 1 and summary.not_attempted == 29
    assert sorted(statuses(tmp_path / "r.db", "outage").values()) == ["checked"] + ["pending"] * 29


def test_a_service_never_reached_is_reported_after_three_quick_attempts(tmp_path):
    """Refused from the start: the default policy used to back off 1, 2, 4, 8 and 16 s (and
    useapi's ten times that) before saying anything."""
    photos(tmp_path, 3)
    provider = ScriptedProvider({f"{i:02d}.jpg": [NotProcessed("Could not connect to the service.")] * 10 for i in range(3)})
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"], concurrency=3, retry=RetryPolicy())
    assert sum(provider.calls.values()) == 3
    assert summary_of(events).halted.startswith("Could not connect to the service. Gave up after 3 attempts")
    assert not any(isinstance(e, ImageFinished) for e in events)


def test_a_fault_of_one_photo_does_not_hold_the_others(tmp_path):
    """One photo's refused connection is retried after its own backoff; meanwhile the other
    workers carry on (with a 10 s base wait they used to stop for 10 s)."""
    photos(tmp_path, 12)
    provider = ScriptedProvider({"00.jpg": [], "01.jpg": [NotProcessed("Refused.")]})
    provider.rate_limit_base_wait = 10.0
    order: list[str] = []
    original = provider.check

    def check(image, data, ctx):
        order.append(image.name)
        return original(image, data, ctx)

    provider.check = check
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"], concurrency=2, retry=RetryPolicy(fault_base_delay=0.2))
    assert summary_of(events).checked == 12
    first, retry = order.index("01.jpg"), len(order) - 1 - order[::-1].index("01.jpg")
    assert retry > first and len(set(order[first + 1 : retry]) - {"01.jpg"}) >= 3, order
    assert not any(isinstance(e, Waiting) for e in events)
