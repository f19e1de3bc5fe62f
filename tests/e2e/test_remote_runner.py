"""The batch runner in this process with the real CometAPI and useapi providers, built by
``AppContext`` as the front ends build them, against the fake servers: transient faults,
unclear failures and ``Retry-After``. Backoff is made tiny with ``RetryPolicy`` where the
test is about how often a call is made, not how long the runner waits.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

from keyring.backends import fail

from core.context import AppContext
from core.events import Finished, ImageFinished, Waiting
from core.retry import RetryPolicy
from core.runner import BatchRunner, RunOptions
from tests.conftest import SAMPLES, make_context
from tests.e2e.test_remote_cli import (
    COMET_ENV,
    USEAPI_ENV,
    make_photos,
    sha_of_comet_request,
    sha_of_useapi_request,
)
from tests.fakes.cometapi import COMET_ERRORS, kling_error
from tests.fakes.server import Drop, Respond
from tests.fakes.useapi import DEFAULT_ACCOUNT, USEAPI_ERRORS

FAST = RetryPolicy(base_delay=0.001, cap=0.01)
#: A fifth of the calls fail: rate limits and gateway 503s (never processed, free to retry)
#: and connections reset before the body was read (the client cannot tell whether the
#: request was processed: an unclear failure).
NOT_PROCESSED = {"cometapi": (COMET_ERRORS["bare_429"], COMET_ERRORS["unavailable_503_text"]),
                 "useapi": (USEAPI_ERRORS["busy_429"], Respond(503, "Service Unavailable"))}
DROP = Drop(after_body=False)


def app_for(tmp_path: Path, **keys: str) -> AppContext:
    """The app as a front end builds it, with keys only in its environment."""
    return make_context(tmp_path / "home", fail.Keyring(), environ=keys)


def runner_for(app: AppContext, provider_id: str, fake, **options) -> BatchRunner:
    overrides = {"base_url": fake.base_url}
    if provider_id == "useapi":
        overrides["email"] = DEFAULT_ACCOUNT
    options.setdefault("seed", 7)
    return BatchRunner(app.paths.database, app.create_provider(provider_id, overrides), RunOptions(**options))


def rows(app: AppContext, provider_id: str) -> dict[str, dict]:
    with sqlite3.connect(f"file:{app.paths.database}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        return {r["sha256"]: dict(r) for r in conn.execute("select * from results where provider = ?", (provider_id,))}


def summary_of(events):
    return next(e.summary for e in events if isinstance(e, Finished))


def one_photo(tmp_path: Path, name: str = "mpl_grace_hopper.jpg") -> Path:
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(SAMPLES / name, folder / name)
    return folder


# -- 3. a fifth of the calls fail transiently --------------------------------------------------


def assert_policy_failure(result: dict, free_faults: int | None = None) -> None:
    """A failed image gave up where the policy says: after an unclear failure (CometAPI), or
    after the last unclear failure allowed (useapi), or when free retries ran out (faults
    cluster when every worker comes back from the same wait)."""
    if result["error_code"] == "outcome_unknown":
        if free_faults is not None:  # CometAPI: the unclear failure was the last call
            assert result["attempts"] == free_faults + 1
    else:
        assert result["error_code"] in ("rate_limited", "unavailable"), result
        assert result["attempts"] == FAST.max_attempts
        assert free_faults in (None, FAST.max_attempts)


def test_cometapi_batch_with_a_fifth_of_calls_failing_makes_the_fewest_calls(fake_cometapi, tmp_path):
    photos = make_photos(tmp_path / "photos", 30)
    app = app_for(tmp_path, **{COMET_ENV: fake_cometapi.key})
    rate_limited, unavailable = NOT_PROCESSED["cometapi"]
    fake_cometapi.set_faults(41, {rate_limited: 0.08, unavailable: 0.07, DROP: 0.05})
    summary = summary_of(runner_for(app, "cometapi", fake_cometapi, concurrency=4, retry=FAST).run([tmp_path / "photos"]))
    assert summary.not_attempted == 0 and summary.halted is None

    log = fake_cometapi.requests
    answers = defaultdict(list)  # per image, the statuses it was answered with, in order
    for record in log:
        answers[sha_of_comet_request(record)].append(record.status)
    drops = answers.pop(None, [])  # a reset before the body was read: nobody knows the image
    assert drops == [None] * len(drops)
    assert len(drops) >= 1 and sum(s in (429, 503) for a in answers.values() for s in a) >= 3  # the mix hit
    results = rows(app, "cometapi")
    assert set(results) == set(photos.values())
    checked = {sha for sha, r in results.items() if r["status"] == "checked"}
    failed = {sha for sha, r in results.items() if r["status"] == "failed"}
    assert checked | failed == set(results)
    for sha in checked:  # retried through free faults, then answered once; nothing after
        assert answers[sha][-1] == 200 and set(answers[sha][:-1]) <= {429, 503}, answers[sha]
        assert results[sha]["attempts"] == len(answers[sha])
    for sha in failed:
        assert set(answers[sha]) <= {429, 503}
        assert_policy_failure(results[sha], free_faults=len(answers[sha]))
    # An unclear failure may have been billed: CometAPI's are recorded, not retried.
    assert sum(results[sha]["error_code"] == "outcome_unknown" for sha in failed) == len(drops)
    assert sum(r["attempts"] for r in results.values()) == len(log)

    fake_cometapi.set_faults(0, {})
    retried = summary_of(runner_for(app, "cometapi", fake_cometapi, retry_failed=True, retry=FAST).run([tmp_path / "photos"]))
    assert retried.checked == len(failed) and retried.failed == 0
    assert Counter(sha_of_comet_request(r) for r in fake_cometapi.requests[len(log):]) == Counter(failed)
    billed = Counter(sha_of_comet_request(r) for r in fake_cometapi.requests if r.billed)
    assert billed == Counter(set(photos.values()))  # every image paid for exactly once


def test_useapi_batch_with_a_fifth_of_calls_failing_uploads_once_and_makes_the_fewest_calls(fake_useapi, tmp_path):
    photos = make_photos(tmp_path / "photos", 24)
    app = app_for(tmp_path, **{USEAPI_ENV: fake_useapi.key})
    busy, unavailable = NOT_PROCESSED["useapi"]
    fake_useapi.set_faults(46, {busy: 0.08, unavailable: 0.07, DROP: 0.05}, endpoints=["upload", "faces"])
    summary = summary_of(runner_for(app, "useapi", fake_useapi, concurrency=4, retry=FAST).run([tmp_path / "photos"]))
    assert summary.not_attempted == 0 and summary.halted is None

    log = fake_useapi.requests
    assert sum(r.status in (429, 503) for r in log) >= 3 and sum(r.status is None for r in log) >= 1  # the mix hit
    results = rows(app, "useapi")
    checked = {sha for sha, r in results.items() if r["status"] == "checked"}
    failed = {sha for sha, r in results.items() if r["status"] == "failed"}
    assert checked | failed == set(photos.values())
    # Each image is uploaded once, whatever happened to its face calls.
    assert Counter(fake_useapi.uploads) == Counter(checked | set(fake_useapi.uploads))
    assert max(Counter(fake_useapi.uploads).values()) == 1
    faces = defaultdict(list)
    for record in log:
        if record.endpoint == "faces" and record.status is not None:
            faces[sha_of_useapi_request(record)].append(record.status)
    for sha in checked:  # answered once, and never asked again after the answer
        assert faces[sha][-1] == 200 and set(faces[sha][:-1]) <= {429, 503}, faces[sha]
    # Unclear failures of a face call are retried once (face detection is free), so such a
    # failure took two; an upload's is never retried on its own (it may have made an asset).
    for sha in failed:
        assert_policy_failure(results[sha])
    drops = sum(r.status is None for r in log)
    unclear = [sha for sha in failed if results[sha]["error_code"] == "outcome_unknown"]
    upload_lost = sum("may already be an asset" in results[sha]["error"] for sha in unclear)
    assert 2 * (len(unclear) - upload_lost) + upload_lost <= drops
    # Every attempt is one face call, or one upload that failed before it.
    attempts = sum(r["attempts"] for r in results.values())
    assert attempts == sum(r.endpoint == "faces" for r in log) + sum(r.endpoint == "upload" and r.status != 200 for r in log)


# -- 6. useapi's 500 is retried once -------------------------------------------------------------


def test_useapi_500_is_retried_once_then_succeeds(fake_useapi, tmp_path):
    app = app_for(tmp_path, **{USEAPI_ENV: fake_useapi.key})
    fake_useapi.enqueue("faces", USEAPI_ERRORS["fault_500"])
    summary = summary_of(runner_for(app, "useapi", fake_useapi, retry=FAST).run([one_photo(tmp_path)]))
    assert summary.checked == 1
    assert [(r.endpoint, r.status) for r in fake_useapi.requests] == [("upload", 200), ("faces", 500), ("faces", 200)]
    [result] = rows(app, "useapi").values()
    assert (result["status"], result["attempts"], result["face_count"]) == ("checked", 2, 0)


def test_useapi_500_twice_fails_after_two_calls(fake_useapi, tmp_path):
    app = app_for(tmp_path, **{USEAPI_ENV: fake_useapi.key})
    fake_useapi.enqueue("faces", USEAPI_ERRORS["moderation_500"], USEAPI_ERRORS["moderation_500"])
    summary = summary_of(runner_for(app, "useapi", fake_useapi, retry=FAST).run([one_photo(tmp_path)]))
    assert summary.failed == 1
    assert [(r.endpoint, r.status) for r in fake_useapi.requests] == [("upload", 200), ("faces", 500), ("faces", 500)]
    [result] = rows(app, "useapi").values()
    assert (result["status"], result["attempts"], result["error_code"]) == ("failed", 2, "outcome_unknown")
    assert "gave up after 2 attempts" in result["error"]


def test_cometapi_500_is_not_retried_unless_allowed(fake_cometapi, tmp_path):
    app = app_for(tmp_path, **{COMET_ENV: fake_cometapi.key})
    fake_cometapi.enqueue("recognize", COMET_ERRORS["server_error_5000"])
    summary = summary_of(runner_for(app, "cometapi", fake_cometapi, retry=FAST).run([one_photo(tmp_path)]))
    assert summary.failed == 1 and [r.status for r in fake_cometapi.requests] == [500]

    fake_cometapi.enqueue("recognize", COMET_ERRORS["server_error_5000"])
    allowed = runner_for(app, "cometapi", fake_cometapi, retry=FAST, retry_failed=True, retry_ambiguous=True)
    assert summary_of(allowed.run([tmp_path / "one"])).checked == 1
    assert [r.status for r in fake_cometapi.requests] == [500, 500, 200]


# -- 7. Retry-After ------------------------------------------------------------------------------


def run_watching_waits(runner: BatchRunner, roots, fake) -> tuple[list, list[tuple[Waiting, int]]]:
    """Run to the end; note each Waiting event with how many requests the fake had by then."""
    events, waits = [], []
    for event in runner.run(roots):
        events.append(event)
        if isinstance(event, Waiting):
            waits.append((event, len(fake.requests)))
    return events, waits


def test_cometapi_honours_retry_after_over_its_own_backoff(fake_cometapi, tmp_path):
    app = app_for(tmp_path, **{COMET_ENV: fake_cometapi.key})
    fake_cometapi.enqueue("recognize", kling_error(429, 1302, "API request is too fast", headers={"Retry-After": "1"}))
    # Its own backoff would be milliseconds: only the header can make it wait a second.
    events, waits = run_watching_waits(runner_for(app, "cometapi", fake_cometapi, retry=FAST), [one_photo(tmp_path)],
                                       fake_cometapi)
    [(waiting, requests_so_far)] = waits
    assert waiting.seconds >= 1 and waiting.reason == "rate limited"
    assert requests_so_far == 1  # announced before the next call was made
    [finished] = [e for e in events if isinstance(e, ImageFinished)]
    assert (finished.outcome.status.value, finished.outcome.attempts) == ("checked", 2)
    assert [r.status for r in fake_cometapi.requests] == [429, 200]


def test_useapi_honours_retry_after_instead_of_its_ten_second_wait(fake_useapi, tmp_path):
    app = app_for(tmp_path, **{USEAPI_ENV: fake_useapi.key})
    fake_useapi.enqueue("faces", Respond(429, {"error": "All accounts are busy"}, {"Retry-After": "1"}))
    # The default policy: without the header the first wait would be 10 s or more.
    events, waits = run_watching_waits(runner_for(app, "useapi", fake_useapi), [one_photo(tmp_path)], fake_useapi)
    [(waiting, requests_so_far)] = waits
    assert 1 <= waiting.seconds < 10
    assert requests_so_far == 2  # the upload and the refused face call
    assert [(r.endpoint, r.status) for r in fake_useapi.requests] == [("upload", 200), ("faces", 429), ("faces", 200)]
    assert summary_of(events).checked == 1


# -- the connection pool follows the run's concurrency -------------------------------------------


def test_concurrency_8_keeps_one_connection_per_call_and_warns_of_no_full_pool(tmp_path, fake_cometapi, caplog):
    # The provider's own setting says 4; the run asks for 8 (as --concurrency 8 does).
    app = app_for(tmp_path, **{COMET_ENV: fake_cometapi.key})
    fake_cometapi.latency = 0.05
    make_photos(tmp_path / "photos", 40)
    runner = runner_for(app, "cometapi", fake_cometapi, concurrency=8)
    with caplog.at_level("WARNING", logger="urllib3.connectionpool"):
        summary = summary_of(list(runner.run([tmp_path / "photos"])))
    assert summary.checked == 40
    assert fake_cometapi.peak_concurrency == 8
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
