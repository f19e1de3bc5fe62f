"""The run bridge: events relayed in order and in batches, the paid-run hand-off, pause, stop."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from PySide6.QtCore import QObject

from core.events import FileSkipped, Finished, ImageFinished, Plan, Progress, ScanProgress, Summary, Waiting
from core.models import Outcome, Status
from core.runner import BatchRunner, RunOptions
from core.store import RowFilter, Store
from desktop.worker import OutcomeBatch, RunSession, SkippedBatch, call_in_background, coalesce

from .conftest import WAIT_MS


def _finished(n: int) -> ImageFinished:
    outcome = Outcome(f"{n:064x}", "local", f"/p/{n}.jpg", Status.CHECKED)
    return ImageFinished(outcome, Progress(done=n, failed=0, total=10, elapsed=1.0, per_second=float(n)))


def test_coalesce_merges_runs_of_results_and_keeps_the_order():
    scans = [ScanProgress(n, 0, 0) for n in (1, 2, 3)]
    waiting = Waiting(8, "rate limited")
    skipped = FileSkipped("/p/loop", "a symlink loop")
    finished = Finished(Summary("local", checked=4))
    items = [*scans, skipped, _finished(1), _finished(2), waiting, _finished(3), _finished(4), finished]

    merged = coalesce(items)

    assert merged == [
        scans[-1],
        SkippedBatch((skipped,)),
        OutcomeBatch((items[4].outcome, items[5].outcome), items[5].progress),
        waiting,
        OutcomeBatch((items[7].outcome, items[8].outcome), items[8].progress),
        finished,
    ]


def test_coalesce_keeps_separate_scan_reports_apart_when_something_comes_between():
    first, second = ScanProgress(1, 0, 0), ScanProgress(5, 5, 0, scanning_done=True)
    plan = Plan("local", "Offline", False, 5, 5, 0, 0)
    assert coalesce([first, plan, second]) == [first, plan, second]


class _Recorder(QObject):
    """Every signal of a session, in the order received."""

    def __init__(self, session: RunSession) -> None:
        super().__init__()
        self.events: list[tuple[str, object]] = []
        for name in ("scan_progress", "files_skipped", "plan_ready", "confirmation_needed", "outcomes", "progress",
                     "waiting", "halted", "paused_changed", "finished", "failed"):
            getattr(session, name).connect(lambda value, name=name: self.events.append((name, value)))
        session.ended.connect(lambda: self.events.append(("ended", None)))

    def named(self, name: str) -> list:
        return [value for event, value in self.events if event == name]

    def names(self) -> list[str]:
        return [event for event, _ in self.events]


def _session(app_context, photos: Path, provider_id: str = "local", overrides=None, **options) -> RunSession:
    provider = app_context.create_provider(provider_id, overrides)
    runner = BatchRunner(app_context.paths.database, provider, RunOptions(**options))
    return RunSession(runner, [str(photos)])


def _comet(app_context, fake) -> dict:
    app_context.keystore.set("cometapi", fake.key)
    return {"base_url": fake.base_url}


def test_results_that_arrive_while_the_window_is_busy_come_as_one_list(qtbot, app_context, photos, no_leaks):
    session = _session(app_context, photos)
    recorder = _Recorder(session)
    session.start()
    # Block the UI thread until the whole batch is done: everything waits in the mailbox.
    assert session.wait(WAIT_MS)

    outcome_lists = recorder.named("outcomes")
    assert len(outcome_lists) == 1
    assert len(outcome_lists[0]) == 11  # 16 image files, 5 invalid: 11 checked
    assert recorder.names()[-2:] == ["finished", "ended"]
    assert recorder.names().index("plan_ready") < recorder.names().index("outcomes")
    with Store.open_readonly(app_context.paths.database) as store:
        checked = {row["sha256"] for row in store.query_rows(RowFilter(statuses=("checked",)))}
    assert checked == {o.sha256 for o in outcome_lists[0]}


def test_a_run_relays_progress_with_its_results_and_ends_with_the_summary(qtbot, app_context, photos, no_leaks):
    session = _session(app_context, photos)
    recorder = _Recorder(session)
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        session.start()

    outcomes = [o for batch in recorder.named("outcomes") for o in batch]
    assert len(outcomes) == len({o.sha256 for o in outcomes}) == 11
    progress = recorder.named("progress")
    assert len(progress) == len(recorder.named("outcomes"))
    assert progress[-1].done + progress[-1].failed == 11
    (summary,) = recorder.named("finished")
    assert summary.checked == 11 and summary.invalid == 5 and summary.complete
    assert recorder.named("confirmation_needed") == []  # the offline provider costs nothing
    assert not session.running


def test_a_paid_run_waits_for_the_answer_and_a_no_sends_nothing(qtbot, app_context, photos, fake_cometapi, no_leaks):
    session = _session(app_context, photos, "cometapi", _comet(app_context, fake_cometapi))
    recorder = _Recorder(session)
    with qtbot.waitSignal(session.confirmation_needed, timeout=WAIT_MS) as asked:
        session.start()
    plan = asked.args[0]
    assert (plan.to_check, plan.invalid, plan.already_known, plan.provider) == (11, 5, 0, "cometapi")
    assert fake_cometapi.requests == []  # the question comes before any call

    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        session.answer_plan(False)
    (summary,) = recorder.named("finished")
    assert summary.cancelled and summary.not_attempted == 11
    assert fake_cometapi.requests == []


def test_a_paid_run_answered_yes_checks_each_image_once(qtbot, app_context, photos, fake_cometapi, no_leaks):
    session = _session(app_context, photos, "cometapi", _comet(app_context, fake_cometapi))
    recorder = _Recorder(session)
    session.confirmation_needed.connect(lambda _plan: session.answer_plan(True))
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        session.start()
    (summary,) = recorder.named("finished")
    assert summary.checked == 11 and summary.complete
    assert len(fake_cometapi.requests) == 11


def test_stopping_while_the_question_is_open_ends_the_run(qtbot, app_context, photos, fake_cometapi, no_leaks):
    session = _session(app_context, photos, "cometapi", _comet(app_context, fake_cometapi))
    with qtbot.waitSignal(session.confirmation_needed, timeout=WAIT_MS):
        session.start()
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        session.stop()
    assert fake_cometapi.requests == []


def test_pause_starts_no_new_call_until_resumed(qtbot, app_context, photos, fake_cometapi, no_leaks):
    fake_cometapi.latency = 0.2
    overrides = {**_comet(app_context, fake_cometapi), "concurrency": 2}
    session = _session(app_context, photos, "cometapi", overrides)
    recorder = _Recorder(session)
    session.confirmation_needed.connect(lambda _plan: session.answer_plan(True))
    with qtbot.waitSignal(session.outcomes, timeout=WAIT_MS):
        session.start()
    with qtbot.waitSignal(session.paused_changed, timeout=WAIT_MS, check_params_cb=lambda paused: paused):
        session.pause()
    qtbot.waitUntil(lambda: fake_cometapi.in_flight == 0, timeout=WAIT_MS)
    sent = len(fake_cometapi.requests)
    qtbot.wait(800)  # several latencies: a call started now would have been seen
    assert len(fake_cometapi.requests) == sent < 11

    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        session.resume()
    assert len(fake_cometapi.requests) == 11
    assert recorder.named("paused_changed") == [True, False]
    assert recorder.named("finished")[0].checked == 11


def test_stop_keeps_what_was_obtained_and_leaves_no_thread(qtbot, app_context, photos, fake_cometapi, no_leaks):
    fake_cometapi.latency = 0.2
    overrides = {**_comet(app_context, fake_cometapi), "concurrency": 1}
    session = _session(app_context, photos, "cometapi", overrides)
    recorder = _Recorder(session)
    session.confirmation_needed.connect(lambda _plan: session.answer_plan(True))
    with qtbot.waitSignal(session.outcomes, timeout=WAIT_MS):
        session.start()
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        session.stop()
    (summary,) = recorder.named("finished")
    assert summary.cancelled and summary.not_attempted > 0
    with Store.open_readonly(app_context.paths.database) as store:
        assert store.count_rows(RowFilter(provider="cometapi", statuses=("checked",))) == summary.checked > 0


def test_a_database_that_cannot_be_used_is_a_sentence_not_a_crash(qtbot, app_context, photos, no_leaks):
    not_a_db = photos / "notes_not_a_photo.jpg"  # a text file
    provider = app_context.create_provider("local")
    session = RunSession(BatchRunner(not_a_db, provider, RunOptions()), [str(photos)])
    recorder = _Recorder(session)
    with qtbot.waitSignal(session.ended, timeout=WAIT_MS):
        session.start()
    (message,) = recorder.named("failed")
    assert str(not_a_db) in message and "Traceback" not in message
    assert recorder.named("finished") == []


def test_call_in_background_hands_back_results_and_errors(qtbot, no_leaks):
    owner = QObject()
    got: list = []
    call_in_background(lambda: hashlib.sha256(b"x").hexdigest(), got.append, got.append, owner)
    qtbot.waitUntil(lambda: len(got) == 1, timeout=WAIT_MS)
    assert got == [hashlib.sha256(b"x").hexdigest()]

    def broken():
        raise ValueError(base64.b64encode(b"no").decode())

    call_in_background(broken, got.append, got.append, owner)
    qtbot.waitUntil(lambda: len(got) == 2, timeout=WAIT_MS)
    assert isinstance(got[1], ValueError) and str(got[1]) == "bm8="

