"""Never pay twice: Ctrl-C, a second Ctrl-C and kill -9 at random moments of paid runs.

The command line runs in a subprocess against the fake CometAPI and the fake useapi (with a
little latency, so calls are in flight when the signal lands). Each cycle starts a plain
``scan``, waits until this run has sent something, waits a random moment more, then sends
one of: SIGINT (stop: wait for the calls in flight and keep their answers), SIGINT twice
(leave the calls in flight), SIGKILL. After each cycle the database is read as the signal
left it and compared with the fake's log of what it billed (CometAPI) or uploaded (useapi)
during that cycle. After the cycles, a script-style loop runs ``scan --retry-failed`` (after
one plain ``scan`` for what was never tried) until it exits 0.

Counted, from the fakes' logs:

- billed (uploaded) twice while no run had ``--retry-failed`` or ``--retry-ambiguous``: 0;
- answers lost: a billed answer whose image, once the process has ended, has neither its
  answer stored nor its outcome on record as unknown (a journal row, or a failed result
  saying it may have been processed): 0; after a single Ctrl-C, every billed answer is
  stored (none is even unknown);
- every photo accounted for: one result each, all checked at the end of the loop; the only
  images paid twice are those whose outcome was unknown and which ``--retry-failed`` sent
  again, at the user's request.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


SEED = 1301
IMAGES = 150
CONCURRENCY = 4
LATENCY = 0.3
COMET_CYCLES = 12
USEAPI_CYCLES = 8
SIGNALS = ("int", "int_twice", "kill")
LOOP_LIMIT = 6


def cli(home: Path, env_key: str, key: str) -> dict[str, str]:
    env = {**os.environ, "KLING_PREFLIGHT_HOME": str(home), env_key: key}
    for other in ("KLING_PREFLIGHT_COMETAPI_KEY", "KLING_PREFLIGHT_USEAPI_KEY"):
        if other != env_key:
            env.pop(other, None)
    return env


def link_photos(source: Path, target: Path, count: int) -> dict[str, str]:
    """Hard links to ``count`` photos; returns sha256 -> path."""
    target.mkdir()
    shas = {}
    for photo in sorted(source.iterdir())[:count]:
        os.link(photo, target / photo.name)
        shas[hashlib.sha256(photo.read_bytes()).hexdigest()] = str(target / photo.name)
    return shas


def comet_sha(record) -> str | None:
    image = record.json.get("image") if isinstance(record.json, dict) else None
    return hashlib.sha256(base64.b64decode(image)).hexdigest() if image else None


def read_db(db: Path, provider: str) -> tuple[dict[str, dict], set[str], dict[str, str]]:
    """Results by sha256, the images with a journaled call, and the remembered values."""
    if not db.exists():
        return {}, set(), {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        results = {r["sha256"]: dict(r) for r in conn.execute("SELECT * FROM results WHERE provider = ?", [provider])}
        try:
            journal = {r["sha256"] for r in conn.execute("SELECT sha256 FROM calls WHERE provider = ?", [provider])}
        except sqlite3.OperationalError:  # a database without the journal (made by an older version)
            journal = set()
        memo = {r["sha256"]: r["value"] for r in conn.execute("SELECT sha256, value FROM memo WHERE provider = ?", [provider])}
    finally:
        conn.close()
    return results, journal, memo


class Campaign:
    """Cycles of one provider's CLI against its fake, with the counts the README shows."""

    def __init__(self, tmp_path: Path, photo_folder: Path, fake, provider: str, env_key: str, paid_endpoint: str):
        self.fake = fake
        self.provider = provider
        self.paid_endpoint = paid_endpoint
        self.home = tmp_path / "home"
        self.db = tmp_path / "results.db"
        self.logs = tmp_path / "runs"
        self.logs.mkdir()
        self.photos = tmp_path / "photos"
        self.shas = link_photos(photo_folder, self.photos, IMAGES)
        self.env = cli(self.home, env_key, fake.key)
        self.command = [sys.executable, "-m", "core.cli", "scan", str(self.photos), "--provider", provider,
                        "--db", str(self.db), "--yes"]  # fmt: skip
        setup = subprocess.run(
            [sys.executable, "-m", "core.cli", "settings", "set", provider, f"base_url={fake.base_url}",
             f"concurrency={CONCURRENCY}"],
            env=self.env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert setup.returncode == 0, setup.stderr
        self.runs = 0
        self.signals: Counter[str] = Counter()
        self.lost = 0
        self.lost_details: list[tuple] = []
        self.unknown_after_single_stop = 0

    def paid(self, records) -> list[str]:
        """The images of the billed requests (CometAPI) or successful uploads (useapi)."""
        shas = []
        for record in records:
            if record.endpoint != self.paid_endpoint or not record.billed:
                continue
            if self.provider == "cometapi":
                shas.append(comet_sha(record))
            else:
                shas.append(hashlib.sha256(record.body).hexdigest())
        return shas

    def stored(self, sha: str, results: dict, memo: dict) -> bool:
        """Whether the paid call's answer is in the database."""
        if self.provider == "useapi":
            return sha in memo  # an upload's answer is its URL
        return sha in results and results[sha]["status"] == "checked"

    def run(self, *extra: str) -> subprocess.CompletedProcess:
        self.runs += 1
        done = subprocess.run(self.command + list(extra), env=self.env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        (self.logs / f"run{self.runs:02d}.err").write_text(done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def cycle(self, rng: random.Random, how: str) -> None:
        self.runs += 1
        before = len(self.fake.requests)
        with open(self.logs / f"run{self.runs:02d}.out", "w") as out, open(self.logs / f"run{self.runs:02d}.err", "w") as err:
            proc = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 60
                while len(self.fake.requests) <= before and self.fake.in_flight == 0 and proc.poll() is None:
                    assert time.monotonic() < deadline, "the run sent nothing"
                    time.sleep(0.005)
                time.sleep(rng.uniform(0, 3 * LATENCY))
                if proc.poll() is None:
                    if how == "kill":
                        proc.send_signal(signal.SIGKILL)
                    else:
                        proc.send_signal(signal.SIGINT)
                        if how == "int_twice":
                            time.sleep(rng.uniform(0.02, 0.1))
                            if proc.poll() is None:
                                proc.send_signal(signal.SIGINT)
                    self.signals[how] += 1
                code = proc.wait(60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        # A second Ctrl-C that lands once the run has ended interrupts the summary: Python's
        # own exit by SIGINT (-2), after everything was written.
        allowed = (0, 1, -signal.SIGKILL) + ((-signal.SIGINT, 130) if how == "int_twice" else ())
        assert code in allowed, f"run {self.runs} ({how}) ended with {code}"
        assert "Traceback" not in (self.logs / f"run{self.runs:02d}.err").read_text()
        self.fake.wait_until_idle()
        results, journal, memo = read_db(self.db, self.provider)
        for sha in self.paid(self.fake.requests[before:]):
            if self.stored(sha, results, memo):
                continue
            if how == "int":
                self.unknown_after_single_stop += 1  # a single Ctrl-C waits for every answer
            unknown = sha in journal or (sha in results and results[sha]["error_code"] == "outcome_unknown")
            if not unknown:
                self.lost += 1
                row = results.get(sha, {})
                self.lost_details.append((self.runs, how, row.get("status"), row.get("error")))

    def loop_until_done(self) -> int:
        """One plain scan for the never-tried, then ``--retry-failed`` until exit 0."""
        self.run()
        self.retry_from = len(self.fake.requests)
        for attempt in range(1, LOOP_LIMIT + 1):
            if self.run("--retry-failed").returncode == 0:
                return attempt
        raise AssertionError(f"scan --retry-failed did not succeed in {LOOP_LIMIT} runs")


def campaign(tmp_path, photo_folder, fake, provider, env_key, paid_endpoint, cycles) -> tuple[Campaign, dict]:
    fake.latency = LATENCY
    c = Campaign(tmp_path, photo_folder, fake, provider, env_key, paid_endpoint)
    rng = random.Random(SEED)
    for n in range(cycles):
        c.cycle(rng, SIGNALS[n % len(SIGNALS)])
    results, journal, _ = read_db(c.db, provider)
    unknown = journal | {sha for sha, r in results.items() if r["error_code"] == "outcome_unknown"}
    fake.latency = 0.0
    loops = c.loop_until_done()

    results, journal, _ = read_db(c.db, provider)
    assert set(results) == set(c.shas), "every photo has exactly one result"
    assert {r["status"] for r in results.values()} == {"checked"} and not journal
    paid = Counter(c.paid(fake.requests))
    # The cycles and the loop's plain scan: no run without --retry-failed may pay twice.
    without_retry = Counter(c.paid(fake.requests[: c.retry_from]))
    twice_without_retry = sum(1 for n in without_retry.values() if n > 1)
    assert twice_without_retry == 0
    assert c.lost == 0 and c.unknown_after_single_stop == 0, c.lost_details
    again = {sha for sha, n in paid.items() if n > 1}
    assert again <= unknown, "only images whose outcome was unknown were paid for again"
    assert set(paid) == set(c.shas)
    return c, {
        "provider": provider,
        "images": IMAGES,
        "cycles": cycles,
        "signals": dict(c.signals),
        "paid_twice_without_retry": twice_without_retry,
        "answers_lost": c.lost,
        "unknown_after_single_ctrl_c": c.unknown_after_single_stop,
        "unknown_outcomes": len(unknown),
        "paid_again_by_retry_failed": len(again),
        "retry_failed_runs_until_exit_0": loops,
        "photos_accounted_for": len(results),
        "data_lost": c.lost,
    }


def test_cometapi_stopped_and_killed_at_random_never_bills_an_image_twice(tmp_path, photo_folder, comet, figures):
    _, counts = campaign(tmp_path, photo_folder, comet, "cometapi", "KLING_PREFLIGHT_COMETAPI_KEY", "recognize", COMET_CYCLES)
    figures("never_pay_twice", **counts)


def test_useapi_stopped_and_killed_at_random_never_uploads_an_image_twice(tmp_path, photo_folder, useapi, figures):
    _, counts = campaign(tmp_path, photo_folder, useapi, "useapi", "KLING_PREFLIGHT_USEAPI_KEY", "upload", USEAPI_CYCLES)
    figures("never_pay_twice", **counts)


DESKTOP_CYCLES = 8


def test_the_desktop_stop_pressed_at_random_moments_never_bills_an_image_twice(
    qtbot, tmp_path, photo_folder, comet, make_app, figures
):
    from core.runner import BatchRunner, RunOptions
    from desktop.worker import RunSession

    photos = tmp_path / "photos"
    shas = link_photos(photo_folder, photos, IMAGES)
    home, db = tmp_path / "home", tmp_path / "results.db"
    app = make_app(home, {"KLING_PREFLIGHT_HOME": str(home), "KLING_PREFLIGHT_COMETAPI_KEY": comet.key})
    overrides = {"base_url": comet.base_url, "concurrency": CONCURRENCY}
    comet.latency = LATENCY
    rng = random.Random(SEED)
    lost = unknown_after_single_stop = 0
    presses: Counter[str] = Counter()

    def run_session(**options) -> RunSession:
        runner = BatchRunner(db, app.create_provider("cometapi", overrides), RunOptions(**options))
        session = RunSession(runner, [str(photos)])
        session.confirmation_needed.connect(lambda _plan: session.answer_plan(True))
        return session

    for n in range(DESKTOP_CYCLES):
        twice = n % 2 == 1
        before = len(comet.requests)
        session = run_session()
        with qtbot.waitSignal(session.ended, timeout=60_000):
            session.start()
            qtbot.waitUntil(lambda: len(comet.requests) > before or comet.in_flight > 0, timeout=30_000)
            qtbot.wait(rng.randint(0, round(4000 * LATENCY)))
            if session.running:
                session.stop()
                if twice:
                    qtbot.wait(rng.randint(20, 100))
                    session.stop()
                presses["stop_twice" if twice else "stop"] += 1
        session.deleteLater()
        comet.wait_until_idle()
        results, journal, _ = read_db(db, "cometapi")
        for record in comet.requests[before:]:
            sha = comet_sha(record) if record.billed else None
            if sha is None or (sha in results and results[sha]["status"] == "checked"):
                continue
            unknown_after_single_stop += not twice
            lost += not (sha in journal or (sha in results and results[sha]["error_code"] == "outcome_unknown"))
    during_cycles = Counter(comet_sha(r) for r in comet.requests if r.billed)

    comet.latency = 0.0
    first = run_session()  # the first run after the last stop settles the journal
    with qtbot.waitSignal(first.ended, timeout=60_000):
        first.start()
    first.deleteLater()
    unknown = {sha for sha, r in read_db(db, "cometapi")[0].items() if r["error_code"] == "outcome_unknown"}
    for options in ({"retry_failed": True},):
        session = run_session(**options)
        with qtbot.waitSignal(session.ended, timeout=60_000):
            session.start()
        session.deleteLater()
    results, journal, _ = read_db(db, "cometapi")
    assert set(results) == set(shas) and {r["status"] for r in results.values()} == {"checked"} and not journal
    twice_without_retry = sum(1 for count in during_cycles.values() if count > 1)
    assert twice_without_retry == 0 and lost == 0 and unknown_after_single_stop == 0
    again = {sha for sha, count in Counter(comet_sha(r) for r in comet.requests if r.billed).items() if count > 1}
    assert again <= unknown
    figures(
        "never_pay_twice",
        provider="cometapi (desktop Stop)",
        images=IMAGES,
        cycles=DESKTOP_CYCLES,
        signals=dict(presses),
        paid_twice_without_retry=twice_without_retry,
        answers_lost=lost,
        unknown_after_single_ctrl_c=unknown_after_single_stop,
        unknown_outcomes=len(unknown),
        paid_again_by_retry_failed=len(again),
        photos_accounted_for=len(results),
        data_lost=lost,
    )
