"""The batch engine: plan, skip what is known, retries, halts, pause, cancel.

The provider here is a small scripted one defined in this file: the runner is the thing
under test, so the provider only counts calls and raises what each test asks for.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from pathlib import Path

from PIL import Image

from core.errors import ImageRejected, NotProcessed, OutcomeUnknown, ProtocolError, ProviderStopped, RateLimited
from core.events import FileSkipped, Finished, ImageFinished, Paused, Plan, ProviderHalted, Waiting
from core.models import CheckResult
from core.providers import Provider, ProviderConfig
from core.retry import RetryPolicy
from core.runner import BatchRunner, RunOptions
from core.store import RowFilter, Store

FAST = RetryPolicy(base_delay=0.001, cap=0.01)


class ScriptedProvider(Provider):
    """Answers face_seg=True unless ``script`` (file name -> list of exceptions to raise on
    successive calls) says otherwise. Counts calls per file name."""

    id = "scripted"
    label = "Scripted"
    remote = False
    default_concurrency = 2

    def __init__(self, script=None, gate: threading.Event | threading.Semaphore | None = None, retries_free=False):
        super().__init__(ProviderConfig())
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.gate = gate
        self.started = threading.Semaphore(0)
        self.max_outcome_unknown_retries = 1 if retries_free else 0
        self.retries_are_free = retries_free

    def check(self, image, data, ctx):
        with self.lock:
            self.calls[image.name] += 1
            planned = self.script.get(image.name)
            error = planned.pop(0) if planned else None
        self.started.release()
        if isinstance(self.gate, threading.Event):
            self.gate.wait(10)
        elif self.gate is not None:
            self.gate.acquire(timeout=10)
        if error is not None:
            raise error
        return CheckResult(face_seg=True, head_seg=True, raw='{"ok": true}')


def make_photos(folder: Path, names=("a.jpg", "b.jpg", "c.jpg", "d.jpg"), size=(400, 400)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        path = folder / name
        # Different colours so every file has different content.
        Image.new("RGB", size, (i * 40 % 256, 100, 200)).save(path, format="PNG" if name.endswith(".png") else "JPEG")
        paths.append(path)
    return paths


def run(db: Path, provider: Provider, roots, **options) -> list:
    options.setdefault("retry", FAST)
    return list(BatchRunner(db, provider, RunOptions(**options)).run(roots))


def summary_of(events):
    return next(e.summary for e in events if isinstance(e, Finished))


def plan_of(events) -> Plan:
    return next(e for e in events if isinstance(e, Plan))


def statuses(db: Path, provider_id="scripted") -> dict[str, str]:
    with Store(db) as store:
        return {Path(r["path"]).name: r["status"] for r in store.query_rows(RowFilter(provider=provider_id))}


def test_every_valid_image_is_checked_once_and_invalid_ones_never(tmp_path):
    folder = tmp_path / "photos"
    make_photos(folder)
    Image.new("RGB", (200, 200)).save(folder / "tiny.jpg")
    (folder / "notes.txt").write_text("not a photo")
    provider = ScriptedProvider()
    events = run(tmp_path / "r.db", provider, [folder])
    assert provider.calls == Counter({"a.jpg": 1, "b.jpg": 1, "c.jpg": 1, "d.jpg": 1})
    plan = plan_of(events)
    assert (plan.images, plan.invalid, plan.to_check, plan.not_images) == (5, 1, 4, 1)
    assert plan.invalid_by_code == {"too_small": 1}
    summary = summary_of(events)
    assert (summary.checked, summary.invalid, summary.failed, summary.complete) == (4, 1, 0, True)
    assert statuses(tmp_path / "r.db") == {"a.jpg": "checked", "b.jpg": "checked", "c.jpg": "checked",
                                           "d.jpg": "checked", "tiny.jpg": "invalid"}


def test_image_finished_events_report_progress_after_the_write(tmp_path):
    make_photos(tmp_path / "p")
    events = run(tmp_path / "r.db", ScriptedProvider(), [tmp_path / "p"])
    finished = [e for e in events if isinstance(e, ImageFinished)]
    assert len(finished) == 4
    last = finished[-1].progress
    assert (last.done, last.failed, last.total, last.remaining) == (4, 0, 4, 0)


def test_a_rerun_skips_known_images_force_rechecks_them(tmp_path):
    make_photos(tmp_path / "p")
    db = tmp_path / "r.db"
    run(db, ScriptedProvider(), [tmp_path / "p"])
    again = ScriptedProvider()
    events = run(db, again, [tmp_path / "p"])
    assert sum(again.calls.values()) == 0
    assert plan_of(events).already_known == 4
    forced = ScriptedProvider()
    run(db, forced, [tmp_path / "p"], force=True)
    assert sum(forced.calls.values()) == 4


def test_a_renamed_file_keeps_its_result(tmp_path):
    a, *_ = make_photos(tmp_path / "p")
    db = tmp_path / "r.db"
    run(db, ScriptedProvider(), [tmp_path / "p"])
    a.rename(a.with_name("renamed.jpg"))
    again = ScriptedProvider()
    run(db, again, [tmp_path / "p"])
    assert sum(again.calls.values()) == 0
    assert statuses(db)["renamed.jpg"] == "checked"
    assert "a.jpg" not in statuses(db)  # the old path is forgotten after a full rescan


def test_duplicate_files_are_checked_once(tmp_path):
    a, *_ = make_photos(tmp_path / "p")
    (tmp_path / "p" / "copy.jpg").write_bytes(a.read_bytes())
    provider = ScriptedProvider()
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"])
    assert sum(provider.calls.values()) == 4
    assert plan_of(events).duplicates == 1
    assert statuses(tmp_path / "r.db")["copy.jpg"] == "checked"


def test_retry_failed_reruns_only_failures(tmp_path):
    make_photos(tmp_path / "p")
    db = tmp_path / "r.db"
    first = ScriptedProvider({"b.jpg": [ProtocolError("unreadable answer")]})
    summary = summary_of(run(db, first, [tmp_path / "p"]))
    assert (summary.checked, summary.failed, summary.complete) == (3, 1, False)
    plain_rerun = ScriptedProvider()
    events = run(db, plain_rerun, [tmp_path / "p"])
    assert sum(plain_rerun.calls.values()) == 0 and plan_of(events).failed_before == 1
    retry = ScriptedProvider()
    run(db, retry, [tmp_path / "p"], retry_failed=True)
    assert retry.calls == Counter({"b.jpg": 1})
    assert set(statuses(db).values()) == {"checked"}


def test_a_provider_stopping_error_halts_after_one_call(tmp_path):
    make_photos(tmp_path / "p", names=[f"{i}.jpg" for i in range(8)])
    provider = ScriptedProvider({f"{i}.jpg": [ProviderStopped("The key was rejected.")] for i in range(8)})
    # Even with four workers: the first call goes alone until the provider has answered.
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"], concurrency=4)
    assert sum(provider.calls.values()) == 1
    halted = [e for e in events if isinstance(e, ProviderHalted)]
    assert [h.message for h in halted] == ["The key was rejected."]
    summary = summary_of(events)
    assert (summary.not_attempted, summary.halted, summary.complete) == (8, "The key was rejected.", False)
    # Nothing was recorded as failed: a rerun with a good key takes every image.
    assert set(statuses(tmp_path / "r.db").values()) == {"pending"}


def test_rate_limits_wait_then_succeed_and_say_so(tmp_path):
    make_photos(tmp_path / "p", names=["a.jpg"])
    provider = ScriptedProvider({"a.jpg": [RateLimited("busy", retry_after=0.01), RateLimited("busy")]})
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"])
    assert provider.calls["a.jpg"] == 3
    assert any(isinstance(e, Waiting) and e.reason == "rate limited" for e in events)
    with Store(tmp_path / "r.db") as store:
        (row,) = store.query_rows(RowFilter(provider="scripted"))
    assert (row["status"], row["attempts"]) == ("checked", 3)


def test_outcome_unknown_is_not_retried_by_default(tmp_path):
    make_photos(tmp_path / "p", names=["a.jpg"])
    provider = ScriptedProvider({"a.jpg": [OutcomeUnknown("The request timed out.")]})
    summary = summary_of(run(tmp_path / "r.db", provider, [tmp_path / "p"]))
    assert provider.calls["a.jpg"] == 1 and summary.failed == 1
    with Store(tmp_path / "r.db") as store:
        (row,) = store.query_rows(RowFilter(provider="scripted"))
    assert (row["error_code"], row["error"]) == ("outcome_unknown", "The request timed out.")


def test_outcome_unknown_is_retried_when_free_or_allowed(tmp_path):
    make_photos(tmp_path / "p", names=["a.jpg"])
    free = ScriptedProvider({"a.jpg": [OutcomeUnknown("500")]}, retries_free=True)
    run(tmp_path / "free.db", free, [tmp_path / "p"])
    assert free.calls["a.jpg"] == 2
    allowed = ScriptedProvider({"a.jpg": [OutcomeUnknown("500")]})
    run(tmp_path / "allowed.db", allowed, [tmp_path / "p"], retry_ambiguous=True)
    assert allowed.calls["a.jpg"] == 2


def test_outcome_unknown_is_not_retried_on_its_own_where_retries_are_billed(tmp_path):
    make_photos(tmp_path / "p", names=["a.jpg"])
    billed = ScriptedProvider({"a.jpg": [OutcomeUnknown("500")]})
    billed.max_outcome_unknown_retries = 1  # asks for a retry, but a retry costs money
    summary = summary_of(run(tmp_path / "r.db", billed, [tmp_path / "p"]))
    assert billed.calls["a.jpg"] == 1 and summary.failed == 1


def test_a_rejected_image_is_recorded_and_the_batch_goes_on(tmp_path):
    make_photos(tmp_path / "p")
    provider = ScriptedProvider({"a.jpg": [ImageRejected("Content policy.", raw='{"code": 1301}')]})
    summary = summary_of(run(tmp_path / "r.db", provider, [tmp_path / "p"]))
    assert (summary.checked, summary.rejected) == (3, 1)
    with Store(tmp_path / "r.db") as store:
        row = next(r for r in store.query_rows(RowFilter(provider="scripted")) if r["file"] == "a.jpg")
    assert (row["status"], row["error"], row["raw"]) == ("rejected", "Content policy.", '{"code": 1301}')
    # Refused by the provider: ready for nothing.
    assert (row["verdict_avatar"], row["verdict_tryon"], row["verdict_asset"]) == ("no", "no", "no")


def test_a_crashing_provider_fails_one_image_not_the_batch(tmp_path):
    make_photos(tmp_path / "p")
    provider = ScriptedProvider({"c.jpg": [ZeroDivisionError("bug")]})
    summary = summary_of(run(tmp_path / "r.db", provider, [tmp_path / "p"]))
    assert (summary.checked, summary.failed) == (3, 1)
    assert statuses(tmp_path / "r.db")["c.jpg"] == "failed"


def test_pause_starts_nothing_new_until_resumed(tmp_path):
    make_photos(tmp_path / "p", names=[f"{i}.jpg" for i in range(6)])
    gate = threading.Event()
    provider = ScriptedProvider(gate=gate)
    runner = BatchRunner(tmp_path / "r.db", provider, RunOptions(concurrency=2, retry=FAST))
    events = runner.run([tmp_path / "p"])
    for event in events:
        if isinstance(event, Plan):
            break
    runner.pause()
    # The first two calls may already be in flight; pausing lets them finish.
    gate.set()
    seen = []
    for event in events:
        seen.append(event)
        if isinstance(event, Paused) and event.paused:
            break
    threading.Timer(0.3, runner.resume).start()
    calls_while_paused = sum(provider.calls.values())
    rest = list(events)
    assert calls_while_paused <= 2
    assert any(isinstance(e, Paused) and not e.paused for e in rest)
    assert summary_of(rest).checked == 6


def test_cancel_keeps_every_result_obtained(tmp_path):
    make_photos(tmp_path / "p", names=[f"{i}.jpg" for i in range(10)])
    permits = threading.Semaphore(3)  # three calls may finish; the fourth hangs until released
    provider = ScriptedProvider(gate=permits)
    runner = BatchRunner(tmp_path / "r.db", provider, RunOptions(concurrency=1, retry=FAST, flush_size=1, cancel_grace=0.2))
    events = []
    for event in runner.run([tmp_path / "p"]):
        events.append(event)
        if isinstance(event, ImageFinished) and event.progress.done == 3:
            runner.cancel()
    permits.release(10)
    summary = summary_of(events)
    assert summary.cancelled and summary.checked == 3
    assert summary.not_attempted == 7
    assert list(statuses(tmp_path / "r.db").values()).count("checked") == summary.checked


def test_stopping_iteration_midway_still_writes_finished_work(tmp_path):
    """The consumer may simply drop the generator (window closed, Ctrl-C): the runner's
    cleanup writes what it had."""
    make_photos(tmp_path / "p", names=[f"{i}.jpg" for i in range(6)])
    provider = ScriptedProvider()
    runner = BatchRunner(tmp_path / "r.db", provider, RunOptions(concurrency=1, retry=FAST, flush_size=1000, flush_interval=1000))
    events = runner.run([tmp_path / "p"])
    for event in events:
        if isinstance(event, Plan):
            break
    while sum(provider.calls.values()) < 3:
        next(events)
    events.close()
    assert list(statuses(tmp_path / "r.db").values()).count("checked") >= 2


def test_dry_run_calls_nothing_and_writes_no_results(tmp_path):
    make_photos(tmp_path / "p")
    provider = ScriptedProvider()
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"], dry_run=True)
    assert sum(provider.calls.values()) == 0
    assert plan_of(events).to_check == 4
    assert summary_of(events).dry_run
    assert set(statuses(tmp_path / "r.db").values()) == {"pending"}


def test_a_file_changed_after_the_scan_is_not_sent(tmp_path):
    a, *_ = make_photos(tmp_path / "p", names=["a.jpg"])
    provider = ScriptedProvider()
    runner = BatchRunner(tmp_path / "r.db", provider, RunOptions(retry=FAST))
    events = runner.run([tmp_path / "p"])
    for event in events:
        if isinstance(event, Plan):
            Image.new("RGB", (500, 500), "red").save(a)  # edited between scan and check
            break
    summary = summary_of(list(events))
    assert sum(provider.calls.values()) == 0 and summary.failed == 1


def test_a_service_that_cannot_be_reached_stops_the_provider(tmp_path):
    """Connection refused from the start is about the provider, not the images: one image's
    free retries, then a halt, and nothing recorded as failed."""
    make_photos(tmp_path / "p", names=[f"{i}.jpg" for i in range(5)])
    refused = [NotProcessed("Could not connect to the service.")] * 10
    provider = ScriptedProvider({f"{i}.jpg": list(refused) for i in range(5)})
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"], concurrency=3, retry=RetryPolicy(max_attempts=3, base_delay=0.001, cap=0.01))
    assert sum(provider.calls.values()) == 3  # one image, three attempts
    summary = summary_of(events)
    assert summary.halted.startswith("Could not connect to the service.") and summary.not_attempted == 5
    assert set(statuses(tmp_path / "r.db").values()) == {"pending"}


def test_once_the_service_has_answered_an_unreachable_moment_fails_only_that_image(tmp_path):
    make_photos(tmp_path / "p", names=["a.jpg", "b.jpg", "c.jpg"])
    provider = ScriptedProvider({"b.jpg": [NotProcessed("Could not connect to the service.")] * 3})
    summary = summary_of(run(tmp_path / "r.db", provider, [tmp_path / "p"], concurrency=1,
                             retry=RetryPolicy(max_attempts=3, base_delay=0.001, cap=0.01)))
    assert (summary.checked, summary.failed, summary.halted) == (2, 1, None)
    assert statuses(tmp_path / "r.db")["b.jpg"] == "failed"


def test_a_file_that_stopped_being_an_image_is_forgotten(tmp_path):
    make_photos(tmp_path / "p")
    odd = tmp_path / "p" / "export.dat"  # a JPEG under a name that does not say so
    Image.new("RGB", (400, 400), (1, 2, 3)).save(odd, format="JPEG")
    db = tmp_path / "r.db"
    run(db, ScriptedProvider(), [tmp_path / "p"])
    assert statuses(db)["export.dat"] == "checked"
    odd.write_text("now a shopping list")
    os.utime(odd, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    events = run(db, ScriptedProvider(), [tmp_path / "p"])
    assert "export.dat" not in statuses(db)
    plan = plan_of(events)
    assert (plan.files_found, plan.images, plan.not_images, plan.already_known) == (5, 4, 1, 4)


def test_many_files_are_planned_and_checked_in_path_order_across_pages(tmp_path):
    names = [f"{n:03}.jpg" for n in range(30)]
    make_photos(tmp_path / "p", names=tuple(reversed(names)))
    provider = ScriptedProvider()
    order = []
    provider_check = provider.check
    provider.check = lambda image, data, ctx: (order.append(image.name), provider_check(image, data, ctx))[1]
    events = run(tmp_path / "r.db", provider, [tmp_path / "p"], concurrency=1, page_size=4)
    assert plan_of(events).to_check == 30
    assert order == names
    assert statuses(tmp_path / "r.db") == dict.fromkeys(names, "checked")


def test_what_a_walk_could_not_read_is_not_forgotten(tmp_path):
    make_photos(tmp_path / "p")
    db = tmp_path / "r.db"
    run(db, ScriptedProvider(), [tmp_path / "p"])
    # A folder no one can list, root included: its path is longer than the system allows.
    deep = tmp_path / "p" / "deep"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY)
    try:
        for _ in range(20):
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    with Store(db) as store:  # as an earlier scan, from a shorter mount point, found it
        photo = next(r for r in store.query_rows() if r["file"] == "a.jpg")
        store.db.execute("UPDATE files SET path = ? WHERE path = ?", [str(deep / "a.jpg"), photo["path"]])
    events = run(db, ScriptedProvider(), [tmp_path / "p"])
    assert any(isinstance(e, FileSkipped) for e in events)
    with Store(db) as store:
        assert str(deep / "a.jpg") in {r["path"] for r in store.query_rows()}
    # With the unreadable folder gone, the next full scan forgets what is no longer there.
    shutil.rmtree(deep)
    run(db, ScriptedProvider(), [tmp_path / "p"])
    with Store(db) as store:
        assert str(deep / "a.jpg") not in {r["path"] for r in store.query_rows()}
