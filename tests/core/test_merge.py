"""``merge``: another machine's results come in by content hash; the better answer wins."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.merge import merge_databases
from core.models import CheckResult, Outcome, Status
from core.store import RowFilter, Store, StoreError
from tests.core.records import probe, sha

ROOT = Path(__file__).resolve().parents[2]


def outcome(n, status, *, provider="local", path=None, faces=1):
    path = path or f"/a/img{n}.jpg"
    if status is Status.CHECKED:
        result = CheckResult(face_seg=faces > 0, faces=())
        return Outcome(sha(n), provider, path, status, result=result, attempts=1, duration_ms=10)
    return Outcome(sha(n), provider, path, status, error_code="timeout", error="No answer.", attempts=3)


def build(path, folder, numbers, status=Status.CHECKED, *, provider="local", memo=(), runs=()):
    """A database as a machine that scanned ``folder`` and checked images ``numbers`` leaves it."""
    with Store(path) as store:
        store.save_probes([probe(f"{folder}/img{n}.jpg", sha(n)) for n in numbers])
        store.save_outcomes([outcome(n, status, provider=provider, path=f"{folder}/img{n}.jpg") for n in numbers])
        store.save_memo("useapi", memo)
        for started in runs:
            run = store.start_run(provider, {"n": len(numbers)})
            store.db.execute("UPDATE runs SET started_at = ? WHERE id = ?", [started, run])
    return path


def set_checked_at(path, n, when, provider="local"):
    with Store(path) as store:
        store.db.execute("UPDATE results SET checked_at = ? WHERE sha256 = ? AND provider = ?", [when, sha(n), provider])


def dump(path):
    """Everything a merge may change, rowids left out (a replaced row gets a new one)."""
    conn = sqlite3.connect(path)
    try:
        return {
            table: sorted(map(repr, conn.execute(f"SELECT * FROM {table}").fetchall()))
            for table in ("files", "images", "results", "memo")
        } | {"runs": sorted(conn.execute("SELECT provider, started_at, state, options FROM runs").fetchall())}
    finally:
        conn.close()


def results(path):
    conn = sqlite3.connect(path)
    try:
        return {(s, p): (st, at) for s, p, st, at in conn.execute("SELECT sha256, provider, status, checked_at FROM results")}
    finally:
        conn.close()


def merge(target, *sources):
    with Store(target) as store:
        return merge_databases(store, sources)


def assert_refused(target, *sources, match):
    """The merge is refused with a sentence matching ``match``, and ``target`` is unchanged."""
    before = dump(target)
    with pytest.raises(StoreError, match=match):
        merge(target, *sources)
    assert dump(target) == before


def test_overlapping_databases_combine_by_content_hash(tmp_path):
    mine = build(tmp_path / "mine.db", "/a", [1, 2, 3], memo=[(sha(1), "upload", "https://u/1")], runs=["2026-01-01T00:00:00"])
    # The other machine saw images 2 and 3 under other paths, and 4 and 5 that this one never saw.
    theirs = build(tmp_path / "theirs.db", "/mnt/b", [2, 3, 4, 5], memo=[(sha(4), "upload", "https://u/4")],
                   runs=["2026-01-02T00:00:00"])  # fmt: skip
    for n in (2, 3):
        set_checked_at(theirs, n, "2000-01-01T00:00:00")  # older answers: mine stay
    before = results(mine)
    [report] = merge(mine, theirs)
    after = results(mine)
    assert set(after) == {(sha(n), "local") for n in range(1, 6)}
    assert all(after[key] == before[key] for key in before)
    assert (report.results_added, report.results_replaced, report.images, report.memo, report.runs) == (2, 0, 2, 1, 1)
    with Store.open_readonly(mine) as store:
        paths = {row["path"] for row in store.query_rows()}
        assert {"/mnt/b/img4.jpg", "/mnt/b/img5.jpg", "/a/img1.jpg"} <= paths
        assert store.memo_items("useapi") == {(sha(1), "upload"): "https://u/1", (sha(4), "upload"): "https://u/4"}
        assert store.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2


def test_conflicting_answers_newest_checked_wins_and_failed_never_replaces_checked(tmp_path):
    mine = tmp_path / "mine.db"
    with Store(mine) as store:
        store.save_probes([probe(f"/a/img{n}.jpg", sha(n)) for n in range(1, 6)])
        store.save_outcomes([outcome(1, Status.CHECKED), outcome(2, Status.CHECKED), outcome(3, Status.FAILED),
                             outcome(4, Status.CHECKED), outcome(5, Status.REJECTED)])  # fmt: skip
    theirs = tmp_path / "theirs.db"
    with Store(theirs) as store:
        store.save_probes([probe(f"/b/img{n}.jpg", sha(n)) for n in range(1, 6)])
        store.save_outcomes([outcome(1, Status.CHECKED, faces=0), outcome(2, Status.FAILED), outcome(3, Status.CHECKED),
                             outcome(4, Status.CHECKED, faces=0), outcome(5, Status.FAILED)])  # fmt: skip
    for n, mine_at, theirs_at in [(1, "2026-01-01", "2026-02-01"), (2, "2026-01-01", "2026-03-01"),
                                  (3, "2026-05-01", "2026-01-01"), (4, "2026-02-01", "2026-01-01"),
                                  (5, "2026-01-01", "2026-02-01")]:  # fmt: skip
        set_checked_at(mine, n, mine_at)
        set_checked_at(theirs, n, theirs_at)
    [report] = merge(mine, theirs)
    after = results(mine)
    assert after[(sha(1), "local")] == ("checked", "2026-02-01")  # the newer checked answer
    assert after[(sha(2), "local")] == ("checked", "2026-01-01")  # a newer failure does not replace it
    assert after[(sha(3), "local")] == ("checked", "2026-01-01")  # an answer replaces a failure, however old
    assert after[(sha(4), "local")] == ("checked", "2026-02-01")  # an older answer does not
    assert after[(sha(5), "local")] == ("rejected", "2026-01-01")  # a failure replaces no answer
    assert report.results_replaced == 2
    with Store.open_readonly(mine) as store:
        faces = {row["sha256"]: row["face_seg"] for row in store.query_rows(RowFilter(provider="local"))}
    assert faces[sha(1)] is False  # the whole row came along, not just its status


def test_merging_the_same_file_twice_changes_nothing(tmp_path):
    mine = build(tmp_path / "mine.db", "/a", [1, 2], runs=["2026-01-01T00:00:00"])
    theirs = build(tmp_path / "theirs.db", "/b", [2, 3], Status.FAILED, memo=[(sha(3), "upload", "u")],
                   runs=["2026-01-03T00:00:00"])  # fmt: skip
    merge(mine, theirs)
    once = dump(mine)
    [report] = merge(mine, theirs)
    assert dump(mine) == once
    assert (report.results_added, report.results_replaced, report.files, report.images, report.memo, report.runs) == (0,) * 6


def test_results_of_other_providers_are_kept_apart(tmp_path):
    mine = build(tmp_path / "mine.db", "/a", [1], provider="local")
    theirs = build(tmp_path / "theirs.db", "/a", [1], Status.FAILED, provider="cometapi")
    merge(mine, theirs)
    assert results(mine)[(sha(1), "local")][0] == "checked"
    assert results(mine)[(sha(1), "cometapi")][0] == "failed"


def test_a_file_that_is_not_a_database_is_refused_and_nothing_changes(tmp_path):
    mine = build(tmp_path / "mine.db", "/a", [1])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not SQLite at all" * 100)
    assert_refused(mine, junk, match="not a SQLite database")


def test_a_damaged_database_is_refused_and_nothing_changes(tmp_path):
    mine = build(tmp_path / "mine.db", "/a", [1])
    theirs = build(tmp_path / "theirs.db", "/b", range(2, 400))
    with Store(theirs) as store:
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # Scribble over a page in the middle of the file: the header still says SQLite.
    data = bytearray(theirs.read_bytes())
    page = 4096
    data[page * 3 : page * 3 + 2000] = os.urandom(2000)
    theirs.write_bytes(bytes(data))
    assert_refused(mine, theirs, match="is damaged and cannot be merged")


def test_a_database_from_a_newer_version_is_refused_with_a_sentence(tmp_path):
    mine = build(tmp_path / "mine.db", "/a", [1])
    theirs = build(tmp_path / "theirs.db", "/b", [2])
    conn = sqlite3.connect(theirs)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('kling_preflight', 'm999_future', 'x')")
    conn.commit()
    conn.close()
    assert_refused(mine, theirs, match="newer version of Kling Preflight; update this app before merging")


def test_nothing_is_merged_when_any_of_the_files_is_refused(tmp_path):
    mine = build(tmp_path / "mine.db", "/a", [1])
    good = build(tmp_path / "good.db", "/b", [2])
    assert_refused(mine, good, tmp_path / "missing.db", match="no results database")
    assert_refused(mine, good, mine, match="being merged into")


# The merge under test, in a process of its own. When the merge has written rows inside its
# transaction (SQLite's progress handler sees the change count grow), it says so on a marker
# file and waits there to be killed: the kill lands mid-transaction every time.
KILLED_MERGE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from core.merge import merge_databases
    from core.store import Store

    target, source, marker = sys.argv[1:4]
    store = Store(target)
    conn = store.db.conn
    baseline = conn.total_changes

    def progress():
        if conn.in_transaction and conn.total_changes > baseline:
            Path(marker).write_text("writing")
            time.sleep(600)
        return 0

    conn.set_progress_handler(progress, 1000)
    merge_databases(store, [source])
    """
)


def test_a_merge_killed_part_way_leaves_the_target_as_it_was(tmp_path):
    mine = build(tmp_path / "mine.db", "/a", range(0, 50))
    theirs = build(tmp_path / "theirs.db", "/b", range(25, 3000))
    before = dump(mine)
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_MERGE, str(mine), str(theirs), str(marker)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the merge never started writing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    conn = sqlite3.connect(mine)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert dump(mine) == before
    # And the merge can simply be run again.
    [report] = merge(mine, theirs)
    assert report.results_added == 2950
