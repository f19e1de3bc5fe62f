"""Storage faults: a read-only database, a locked one, and a disk that fills mid-run.

The command line runs in a subprocess against the fake CometAPI. Each scenario first commits
some results, then breaks the storage and runs again: the run must end with a sentence
(no traceback), every result committed before stays exactly as it was, and once the storage
is mended a re-run finishes the batch.

Where the tests run as root and may mount file systems, the database lives on a small tmpfs
(remounted read-only, or too small for the second run). Elsewhere, read-only means file
permissions (which root ignores), and a full disk is a per-process file size limit
(``RLIMIT_FSIZE``): SQLite then sees its writes fail as they would on a full disk.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest

from tests.reliability.counts import count_changed

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
FIRST_RUN, SECOND_RUN = 20, 300


def cli(args: list[str], home: Path, key: str, logs: Path, *, file_size_limit: int | None = None,
        while_running: Callable[[subprocess.Popen], None] | None = None):
    """Run the command line; its output is kept in ``logs`` (the secrets sweep reads it).

    :param while_running: called with the process once it has started (to break the storage
        under it part way), before its output is collected.
    """
    env = {**os.environ, "KLING_PREFLIGHT_HOME": str(home), "KLING_PREFLIGHT_COMETAPI_KEY": key}
    command = [sys.executable, "-m", "core.cli", *args]
    if file_size_limit is not None:
        # Set the limit, ignore SIGXFSZ (so a write past it fails with EFBIG instead of
        # killing the process), then become the command line.
        launcher = (
            "import os, resource, signal, sys; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({file_size_limit}, {file_size_limit})); "
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "os.execv(sys.executable, [sys.executable] + sys.argv[1:])"
        )
        command = [sys.executable, "-c", launcher, "-m", "core.cli", *args]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL) as process:
        try:
            if while_running is not None:
                while_running(process)
            stdout, stderr = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    logs.mkdir(exist_ok=True)
    stem = uuid.uuid4().hex[:8]
    (logs / f"{stem}.out").write_text(result.stdout)
    (logs / f"{stem}.err").write_text(result.stderr)
    return result


def link_photos(source: Path, target: Path, start: int, count: int) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for photo in sorted(source.iterdir())[start : start + count]:
        os.link(photo, target / photo.name)
    return target


def result_rows(db: Path, *, immutable: bool = False) -> dict[str, tuple]:
    """Every result row, whole, by image hash (read-only; ``immutable`` for read-only media)."""
    uri = db.resolve().as_uri() + ("?immutable=1" if immutable else "?mode=ro")
    conn = sqlite3.connect(uri, uri=True)
    try:
        return {row[0]: row for row in conn.execute("SELECT * FROM results ORDER BY sha256")}
    finally:
        conn.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def assert_one_clear_sentence(result, *words: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and last.endswith("."), last
    for word in words:
        assert word in last, last


class Storage:
    """A folder for the database that a test can break and mend."""

    def __init__(self, path: Path, breaks: Callable[[], None], mends: Callable[[], None], how: str) -> None:
        self.path, self.breaks, self.mends, self.how = path, breaks, mends, how


def _try_mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def _fill_once_answers_come(folder: Path, db: Path, answered_before: int, process: subprocess.Popen) -> None:
    """Shrink the tmpfs at ``folder`` to what it holds (plus a page or two) as soon as the run
    has committed new answers, so that the disk fills in the middle of its checks."""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            answered = len(result_rows(db))
        except sqlite3.Error:  # busy at that moment: look again
            answered = answered_before
        if answered >= answered_before + 3:
            for _ in range(50):  # usage may grow between the look and the remount
                stats = os.statvfs(folder)
                used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
                if _try_remount(folder, f"size={used + 8192}"):
                    return
            raise AssertionError("could not shrink the tmpfs under the run")
        time.sleep(0.005)


def _try_remount(path: Path, options: str) -> bool:
    return subprocess.run(["mount", "-o", f"remount,{options}", str(path)], capture_output=True).returncode == 0


def _remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


@pytest.fixture
def mounts():
    """Mount small tmpfs folders (root only); all are unmounted afterwards."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> bool:
        if not IS_ROOT or not _try_mount(path, f"size={size},mode=0755"):
            return False
        mounted.append(path)
        return True

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(params=["read-only mount", "file permissions"])
def read_only_storage(request, tmp_path, mounts) -> Storage:
    folder = tmp_path / "storage"
    if request.param == "read-only mount":
        if not mounts(folder, "16m"):
            pytest.skip("needs root and permission to mount a tmpfs")
        return Storage(folder, lambda: _remount(folder, "ro"), lambda: _remount(folder, "rw"), request.param)
    if IS_ROOT:
        pytest.skip("root ignores file permissions; the read-only mount covers this case")
    folder.mkdir()

    def protect(mode_dir: int, mode_file: int) -> None:
        for item in folder.iterdir():
            item.chmod(mode_file)
        folder.chmod(mode_dir)

    return Storage(folder, lambda: protect(0o555, 0o444), lambda: protect(0o755, 0o644), request.param)


def test_a_read_only_database_gives_a_clear_message_and_keeps_every_result(
    tmp_path, photo_folder, comet, read_only_storage, figures
):
    storage, logs, home = read_only_storage, tmp_path / "logs", tmp_path / "home"
    db = storage.path / "results.db"
    photos = link_photos(photo_folder, tmp_path / "photos", 0, FIRST_RUN)
    scan = ["scan", str(photos), "--provider", "cometapi", "--yes", "--set", f"base_url={comet.base_url}", "--db", str(db)]
    assert cli(scan, home, comet.key, logs).returncode == 0
    before = result_rows(db)
    assert len(before) == FIRST_RUN
    link_photos(photo_folder, photos, FIRST_RUN, 10)
    storage.breaks()
    try:
        refused = cli(scan, home, comet.key, logs)
        assert_one_clear_sentence(refused, "results database")
        assert any(w in refused.stderr for w in ("readonly", "read-only", "unable to open")), refused.stderr
        assert result_rows(db, immutable=True) == before
    finally:
        storage.mends()
    assert integrity(db) == "ok" and result_rows(db) == before
    again = cli(scan, home, comet.key, logs)
    assert again.returncode == 0, again.stderr
    after = result_rows(db)
    lost = count_changed(before, after)
    assert len(after) == FIRST_RUN + 10 and lost == 0
    figures("storage", scenario=f"read-only database ({storage.how})", committed_kept=len(before), data_lost=lost)


def test_results_on_read_only_storage_can_still_be_exported(tmp_path, photo_folder, comet, read_only_storage):
    storage, logs, home = read_only_storage, tmp_path / "logs", tmp_path / "home"
    db = storage.path / "results.db"
    photos = link_photos(photo_folder, tmp_path / "photos", 0, FIRST_RUN)
    scan = ["scan", str(photos), "--provider", "cometapi", "--yes", "--set", f"base_url={comet.base_url}", "--db", str(db)]
    assert cli(scan, home, comet.key, logs).returncode == 0
    storage.breaks()
    try:
        exported = cli(["export", "--db", str(db), "--format", "json"], home, comet.key, logs)
    finally:
        storage.mends()
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.count('"sha256"') == FIRST_RUN


def hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another program writing to the database: its write lock is held until it commits."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_a_database_locked_for_the_whole_run_gives_a_clear_message_and_keeps_every_result(
    tmp_path, photo_folder, comet, figures
):
    logs, home, db = tmp_path / "logs", tmp_path / "home", tmp_path / "results.db"
    photos = link_photos(photo_folder, tmp_path / "photos", 0, FIRST_RUN)
    scan = ["scan", str(photos), "--provider", "cometapi", "--yes", "--set", f"base_url={comet.base_url}", "--db", str(db)]
    assert cli(scan, home, comet.key, logs).returncode == 0
    before = result_rows(db)
    link_photos(photo_folder, photos, FIRST_RUN, 10)
    other = hold_write_lock(db)
    try:
        refused = cli(scan, home, comet.key, logs)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert_one_clear_sentence(refused, "locked")
    assert result_rows(db) == before and integrity(db) == "ok"
    again = cli(scan, home, comet.key, logs)
    assert again.returncode == 0, again.stderr
    after = result_rows(db)
    lost = count_changed(before, after)
    assert len(after) == FIRST_RUN + 10 and lost == 0
    figures("storage", scenario="database locked by another program", committed_kept=len(before), data_lost=lost)


def test_a_briefly_locked_database_is_waited_for(tmp_path, photo_folder, comet):
    logs, home, db = tmp_path / "logs", tmp_path / "home", tmp_path / "results.db"
    photos = link_photos(photo_folder, tmp_path / "photos", 0, FIRST_RUN)
    scan = ["scan", str(photos), "--provider", "cometapi", "--yes", "--set", f"base_url={comet.base_url}", "--db", str(db)]
    assert cli(scan, home, comet.key, logs).returncode == 0
    link_photos(photo_folder, photos, FIRST_RUN, 10)
    other = hold_write_lock(db)
    release = threading.Timer(1.0, lambda: (other.execute("ROLLBACK"), other.close()))
    release.start()
    try:
        waited = cli(scan, home, comet.key, logs)
    finally:
        release.join()
    assert waited.returncode == 0, waited.stderr
    assert len(result_rows(db)) == FIRST_RUN + 10


@pytest.mark.parametrize("how", ["full tmpfs", "file size limit"])
def test_a_disk_that_fills_mid_run_gives_a_clear_message_and_keeps_every_result(
    how, tmp_path, photo_folder, comet, mounts, figures
):
    logs, home = tmp_path / "logs", tmp_path / "home"
    folder = tmp_path / "storage"
    limit = None
    if how == "full tmpfs":
        # Room for the first run; the second has its disk shrunk to what it holds, once it has
        # written a few answers, so it fills part way through the checks whatever the sizes.
        if not mounts(folder, "64m"):
            pytest.skip("needs root and permission to mount a tmpfs")
    else:
        folder.mkdir()
        limit = 600_000  # bytes per file: the second run's write-ahead log outgrows it part way
    db = folder / "results.db"
    first = link_photos(photo_folder, tmp_path / "first", 0, FIRST_RUN)
    second = link_photos(photo_folder, tmp_path / "second", FIRST_RUN, SECOND_RUN)
    base = ["--provider", "cometapi", "--yes", "--set", f"base_url={comet.base_url}", "--db", str(db)]
    assert cli(["scan", str(first), *base], home, comet.key, logs).returncode == 0
    before = result_rows(db)
    requests_before = len(comet.requests)

    full = cli(["scan", str(second), *base], home, comet.key, logs, file_size_limit=limit,
               while_running=(lambda process: _fill_once_answers_come(folder, db, len(before), process))
               if how == "full tmpfs" else None)

    assert_one_clear_sentence(full, "results database")
    assert any(words in full.stderr for words in ("disk is full", "disk I/O error")), full.stderr
    assert integrity(db) == "ok"
    during = result_rows(db)
    assert all(during[sha] == row for sha, row in before.items())
    committed_mid_run = len(during) - len(before)
    assert committed_mid_run > 0 and len(comet.requests) > requests_before, "the disk should fill mid-check"
    if how == "full tmpfs":
        _remount(folder, "size=64m")
    mended = cli(["scan", str(first), str(second), *base], home, comet.key, logs)
    # The calls in flight when the disk filled may have been billed: the mended run records
    # them as failed instead of buying them again (exit 1), and --retry-failed sends them.
    assert mended.returncode in (0, 1), mended.stderr
    if mended.returncode == 1:
        assert "in flight when an earlier run was interrupted" in mended.stdout, mended.stdout
        retried = cli(["scan", str(first), str(second), "--retry-failed", *base], home, comet.key, logs)
        assert retried.returncode == 0, retried.stdout + retried.stderr
    after = result_rows(db)
    lost = count_changed(during, after)
    assert len(after) == FIRST_RUN + SECOND_RUN and lost == 0
    figures(
        "storage",
        scenario=f"disk full mid-run ({how})",
        committed_kept=len(during),
        committed_before_the_disk_filled=committed_mid_run,
        data_lost=lost,
    )
