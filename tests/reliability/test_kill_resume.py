"""kill -9 the command line at 20 random moments across one batch, re-running after each.

The command line runs in a subprocess against the fake CometAPI (with a little latency, so
a batch takes a few seconds). Kills land at random: some at a random time after start (during
start-up, the schema migration, the scan), most once a random number of further results have
been committed (the runner writes results in small batches, so such a kill lands anywhere
between, or in the middle of, those writes). After each kill the database, as the kill left it, is copied and inspected;
the fake's request log says which images were sent after that moment.

At the end every image has exactly one result, ``PRAGMA integrity_check`` says ok, every
result that was committed before a kill is still there unchanged, and no image whose result
was committed was ever sent again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.reliability.counts import count_changed

KILLS = 20
IMAGES = 250
SEED = 1009
LATENCY = 0.03
CONCURRENCY = 2
#: Kills at a random time after start, before results are counted: start-up and the scan.
TIMED_KILLS = 5


def cli_env(home: Path, key: str) -> dict[str, str]:
    env = {**os.environ, "KLING_PREFLIGHT_HOME": str(home), "KLING_PREFLIGHT_COMETAPI_KEY": key}
    env.pop("KLING_PREFLIGHT_USEAPI_KEY", None)
    return env


def snapshot(db: Path, scratch: Path) -> tuple[dict[str, str], str]:
    """The committed results and the integrity check of the database exactly as the kill
    left it: a copy (with its -wal and -shm) is opened, so the next run recovers the
    original by itself."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir()
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            shutil.copy2(source, scratch / f"results.db{suffix}")
    copy = scratch / "results.db"
    if not copy.exists():
        return {}, "ok"
    conn = sqlite3.connect(copy)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        try:
            # Answers only: a call in flight at an earlier kill is recorded as failed "may have
            # been billed" at the next start, and --retry-failed is meant to redo exactly those.
            rows = dict(conn.execute(
                "SELECT sha256, checked_at FROM results WHERE provider = 'cometapi' AND status = 'checked'"))
        except sqlite3.OperationalError:  # killed before the schema was made
            rows = {}
    finally:
        conn.close()
    return rows, integrity


def committed_count(db: Path) -> int:
    """Results committed so far, read while the command line writes (WAL lets us)."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # not created yet, or mid-migration
        return 0


def request_sha(record) -> str | None:
    image = record.json.get("image") if isinstance(record.json, dict) else None
    return hashlib.sha256(base64.b64decode(image)).hexdigest() if image else None


def test_kill_9_twenty_times_across_one_batch_loses_and_repeats_nothing(tmp_path, photo_folder, comet, figures):
    photos = tmp_path / "photos"
    photos.mkdir()
    for source in sorted(photo_folder.iterdir())[:IMAGES]:
        os.link(source, photos / source.name)
    home, db, logs = tmp_path / "home", tmp_path / "results.db", tmp_path / "runs"
    logs.mkdir()
    env = cli_env(home, comet.key)
    setup = subprocess.run(
        [sys.executable, "-m", "core.cli", "settings", "set", "cometapi", f"base_url={comet.base_url}",
         f"concurrency={CONCURRENCY}"],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert setup.returncode == 0, setup.stderr
    comet.latency = LATENCY
    command = [sys.executable, "-m", "core.cli", "scan", str(photos), "--provider", "cometapi", "--db", str(db), "--yes"]
    rng = random.Random(SEED)
    kills: list[dict] = []

    for n in range(KILLS):
        timed = n < TIMED_KILLS
        with open(logs / f"run{n:02d}.out", "w") as out, open(logs / f"run{n:02d}.err", "w") as err:
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            try:
                if timed:
                    time.sleep(rng.uniform(0.05, 1.0))
                else:
                    # Once this run has committed something, at a random moment after.
                    before = committed_count(db)
                    deadline = time.monotonic() + 60
                    while committed_count(db) <= before and proc.poll() is None and time.monotonic() < deadline:
                        time.sleep(0.005)
                    time.sleep(rng.uniform(0, 0.15))
                assert proc.poll() is None, f"run {n} ended before its kill: {proc.returncode}"
                proc.send_signal(signal.SIGKILL)
                assert proc.wait(10) == -signal.SIGKILL
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        comet.wait_until_idle()
        rows, integrity = snapshot(db, tmp_path / "snapshot")
        assert integrity == "ok", f"after kill {n}: {integrity}"
        kills.append({"rows": rows, "requests": len(comet.requests), "timed": timed, "integrity": integrity})

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    (logs / "resumed.err").write_text(resumed.stderr)
    assert "Traceback" not in resumed.stderr
    # Calls in flight at a kill were journaled: the resumed run records them as failed (they
    # may have been billed) instead of sending them again; --retry-failed sends them.
    with sqlite3.connect(db) as conn:
        unknown = {sha for (sha,) in conn.execute(
            "SELECT sha256 FROM results WHERE provider = 'cometapi' AND error_code = 'outcome_unknown'")}
    requests_before_retry = len(comet.requests)
    final = subprocess.run(
        command + ["--retry-failed", "--export", str(tmp_path / "final.json")],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    (logs / "final.out").write_text(final.stdout)
    (logs / "final.err").write_text(final.stderr)
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in final.stderr

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        results = dict(conn.execute("SELECT sha256, checked_at FROM results WHERE provider = 'cometapi'"))
        statuses = {row[0] for row in conn.execute("SELECT DISTINCT status FROM results")}
        paths = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    expected = {hashlib.sha256(p.read_bytes()).hexdigest() for p in photos.iterdir()}
    # Exactly one result per image, all of them answered.
    assert set(results) == expected and statuses == {"checked"} and paths == IMAGES
    exported = json.loads((tmp_path / "final.json").read_text())
    assert sorted(item["sha256"] for item in exported) == sorted(expected)

    log = comet.requests
    resent = 0
    lost = len(expected - set(results))
    survived = 0
    for n, kill in enumerate(kills):
        # Answered before the kill: still there, unchanged (not lost, not redone). The
        # snapshot holds answers only, not the failed "may have been billed" ones that
        # --retry-failed was asked to send again.
        changed = count_changed(kill["rows"], results)
        assert not changed, f"results committed before kill {n} were lost or redone: {changed}"
        lost += changed
        survived += kill["integrity"] == "ok" and not changed
        later = {request_sha(r) for r in log[kill["requests"]:]}
        resent += len(later & set(kill["rows"]))
    assert resent == 0, f"{resent} images whose result was committed were sent again"
    # A request cut off by a kill before its body arrived names no image: leave it out.
    sent = [sha for sha in map(request_sha, log) if sha is not None]
    assert set(sent) == expected
    # A kill -9 loses the answers of the calls in flight. Those are journaled, so nothing is
    # sent again until --retry-failed asks for exactly those images.
    repeats = len(sent) - len(set(sent))
    before_retry = [sha for sha in map(request_sha, log[:requests_before_retry]) if sha is not None]
    assert len(before_retry) == len(set(before_retry)), "an image was sent twice without --retry-failed"
    assert {sha for sha in map(request_sha, log[requests_before_retry:])} <= unknown
    assert repeats <= len(unknown) <= KILLS * CONCURRENCY

    figures(
        "kills",
        kills=KILLS,
        kills_survived=survived,
        timed_kills=sum(k["timed"] for k in kills),
        kills_after_new_results=sum(1 for a, b in zip([{}] + kills, kills) if len(b["rows"]) > len(a.get("rows", {}))),
        images=IMAGES,
        requests=len(sent),
        resent_after_commit=resent,
        calls_repeated_after_unwritten_answers=repeats,
        integrity_checks_ok=sum(kill["integrity"] == "ok" for kill in kills) + 1,  # + the final one, asserted above
        data_lost=lost,
        sent_twice_without_retry_failed=len(before_retry) - len(set(before_retry)),
        unknown_outcomes=len(unknown),
            )
