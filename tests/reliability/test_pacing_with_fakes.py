"""What the pool does when calls fail, read off the fakes' request logs: a fault of one photo
delays that photo's retry only, a rate limit holds every call, and against a server that
answers "busy" beyond what the account allows the calls in flight settle at that."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from core.events import ImageFinished, Waiting
from core.retry import RetryPolicy
from core.runner import BatchRunner, RunOptions
from tests.fakes import Succeed
from tests.fakes.cometapi import kling_error
from tests.fakes.useapi import USEAPI_ERRORS
from tests.reliability.test_faults import SEED, comet_sha, settled_requests, stored_rows


def some_photos(photo_folder: Path, target: Path, count: int) -> Path:
    target.mkdir()
    for path in sorted(photo_folder.iterdir())[:count]:
        shutil.copy(path, target / path.name)
    return target


def test_while_one_photo_waits_out_a_500_the_other_photos_are_called(tmp_path, photo_folder, useapi, make_app):
    app = make_app(tmp_path / "home", {"KLING_PREFLIGHT_USEAPI_KEY": useapi.key})
    provider = app.create_provider("useapi", {"base_url": useapi.base_url, "concurrency": 2})
    # The first photo answers (the pool opens up), the second photo's face call gets a 500.
    useapi.enqueue("faces", Succeed(), USEAPI_ERRORS["fault_500"])
    folder = some_photos(photo_folder, tmp_path / "photos", 8)
    # The provider's own policy: useapi's base wait is 10 s, which used to hold every worker.
    runner = BatchRunner(tmp_path / "results.db", provider, RunOptions(seed=SEED))

    events = list(runner.run([folder]))

    assert all(e.outcome.status.value == "checked" for e in events if isinstance(e, ImageFinished))
    log = settled_requests(useapi)
    [failed_at] = [i for i, r in enumerate(log) if r.status == 500]
    reference = log[failed_at].json["imageReference"]
    retried_at = next(i for i, r in enumerate(log) if i > failed_at and r.json and r.json.get("imageReference") == reference)
    between = log[failed_at + 1 : retried_at]
    # Photos started after the 500 went out before its retry: the pool did not wait for it.
    uploads = {hashlib.sha256(r.body).hexdigest() for r in between if r.endpoint == "upload"}
    assert len(uploads) >= 3, [(r.endpoint, r.status) for r in log]
    assert not any(isinstance(e, Waiting) for e in events)  # nothing to tell: one photo waited


def test_a_rate_limit_still_holds_every_call(tmp_path, photo_folder, comet, make_app):
    app = make_app(tmp_path / "home", {"KLING_PREFLIGHT_COMETAPI_KEY": comet.key})
    provider = app.create_provider("cometapi", {"base_url": comet.base_url, "concurrency": 4})
    comet.latency = 0.02
    comet.enqueue("recognize", *[Succeed()] * 6, kling_error(429, 1302, "API request is too fast", headers={"Retry-After": "1"}))
    folder = some_photos(photo_folder, tmp_path / "photos", 24)
    runner = BatchRunner(tmp_path / "results.db", provider, RunOptions(seed=SEED, retry=RetryPolicy(base_delay=0.001, cap=0.01)))

    events = list(runner.run([folder]))

    assert [str(e) for e in events if isinstance(e, Waiting)] == ["waiting 1 s: rate limited"]
    log = settled_requests(comet)
    [limited] = [r for r in log if r.status == 429]
    # Calls already on their way may land just after the 429; then nothing until the hold ends.
    started_during_hold = [r for r in log if limited.finished + 0.1 < r.arrived < limited.finished + 0.9]
    assert started_during_hold == []
    assert len(stored_rows(tmp_path / "results.db", "cometapi")) == 24


def test_calls_in_flight_settle_at_what_a_busy_account_allows(tmp_path, photo_folder, comet, make_app):
    app = make_app(tmp_path / "home", {"KLING_PREFLIGHT_COMETAPI_KEY": comet.key})
    provider = app.create_provider("cometapi", {"base_url": comet.base_url, "concurrency": 8})
    comet.latency = 0.02
    comet.max_concurrency = 2  # beyond two at once, Kling's 1303 "parallel task over resource pack limit"
    folder = some_photos(photo_folder, tmp_path / "photos", 160)
    patient = RetryPolicy(base_delay=0.001, cap=0.01, max_attempts=30)
    runner = BatchRunner(tmp_path / "results.db", provider, RunOptions(seed=SEED, retry=patient))

    events = list(runner.run([folder]))

    finished = [e for e in events if isinstance(e, ImageFinished)]
    assert len(finished) == 160 and all(e.outcome.status.value == "checked" for e in finished)
    log = settled_requests(comet)
    # Every image was billed once: a 1303 is not processed.
    billed = [comet_sha(r) for r in log if r.billed]
    assert len(billed) == len(set(billed)) == 160
    second_half = log[len(log) // 2 :]
    refused = sum(r.status == 429 for r in second_half)
    # At a fixed 8 in flight, 6 calls in 8 would be refused again and again.
    assert refused / len(second_half) < 0.25, refused
    settled = [e.progress.concurrency for e in finished[len(finished) // 2 :]]
    assert set(settled) <= {1, 2, 3} and max(set(settled), key=settled.count) in (2, 3), settled
