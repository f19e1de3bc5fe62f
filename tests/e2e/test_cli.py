"""The command line end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import SAMPLES, read_export_csv

FACE_PHOTOS = ["sk_astronaut.png", "sk_camera.png", "mpl_grace_hopper.jpg", "fr_obama.jpg", "fr_biden.jpg"]
NO_FACE_PHOTOS = ["sk_coffee.png", "sk_chelsea.png", "sk_rocket.png", "china.jpg", "flower.jpg"]
INVALID = {
    "astronaut_thumbnail.jpg": "too_small",
    "temple_panorama.jpg": "too_wide",
    "flower.gif": "unsupported_format",
    "hopper_truncated.jpg": "truncated",
    "notes_not_a_photo.jpg": "not_an_image",
}


def cli(*args: str, home: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "KLING_PREFLIGHT_HOME": str(home)}
    env.pop("KLING_PREFLIGHT_COMETAPI_KEY", None)
    env.pop("KLING_PREFLIGHT_USEAPI_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL, **kw,
    )


def test_scan_of_the_samples_gives_the_right_summary_and_csv(tmp_path):
    out = tmp_path / "samples.csv"
    result = cli("scan", str(SAMPLES), "--provider", "local", "--export", str(out), home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    rows = {row["file"]: row for row in read_export_csv(out)}
    assert set(rows) == set(FACE_PHOTOS) | set(NO_FACE_PHOTOS) | set(INVALID) | {"coffee_really_a_png.jpg"}
    for name in FACE_PHOTOS:
        assert (rows[name]["status"], rows[name]["face_seg"], rows[name]["verdict_avatar"]) == ("checked", "yes", "yes")
        assert rows[name]["face_count"] == "1"
    for name in NO_FACE_PHOTOS + ["coffee_really_a_png.jpg"]:
        assert (rows[name]["status"], rows[name]["face_seg"], rows[name]["verdict_avatar"]) == ("checked", "no", "no")
        # Clothing and main subject cannot be measured offline: unknown, never guessed.
        assert (rows[name]["cloth_seg"], rows[name]["object_seg"]) == ("", "")
    for name, code in INVALID.items():
        assert rows[name]["status"] == "invalid"
        assert code in rows[name]["problem_codes"].split(";")
    assert "extension_mismatch" in rows["coffee_really_a_png.jpg"]["problem_codes"]
    # The summary a user reads.
    assert "Images with a face: 5" in result.stdout
    assert "avatar" in result.stdout and "Invalid (not sent)" in result.stdout


def test_a_second_scan_checks_nothing_again(tmp_path):
    home = tmp_path / "home"
    assert cli("scan", str(SAMPLES), home=home).returncode == 0
    again = cli("scan", str(SAMPLES), "--dry-run", home=home)
    assert again.returncode == 0, again.stderr
    assert "11 already checked with this provider, skipped" in again.stdout
    assert "0 to check" in again.stdout
    rerun = cli("scan", str(SAMPLES), home=home)
    assert rerun.returncode == 0, rerun.stderr
    [line] = [line for line in rerun.stdout.splitlines() if line.startswith("This run:")]
    assert line.startswith("This run: 0 checked in ") and line.endswith("; 11 known from earlier runs were skipped.")


def test_usage_mistakes_exit_2_with_a_sentence(tmp_path):
    unknown = cli("scan", str(SAMPLES), "--provider", "nosuch", home=tmp_path / "home")
    assert unknown.returncode == 2
    assert "There is no provider called 'nosuch'" in unknown.stderr and "Traceback" not in unknown.stderr
    both = cli("scan", str(SAMPLES), "--force", "--retry-failed", home=tmp_path / "home")
    assert both.returncode == 2 and "cannot be used together" in both.stderr
    missing = cli("scan", str(tmp_path / "nowhere"), home=tmp_path / "home")
    assert missing.returncode == 2
    not_a_db = tmp_path / "junk.db"
    not_a_db.write_text("hello")
    bad_db = cli("export", "--db", str(not_a_db), home=tmp_path / "home")
    assert bad_db.returncode == 2 and "Traceback" not in bad_db.stderr


def test_a_provider_that_needs_a_key_says_so(tmp_path):
    result = cli("scan", str(SAMPLES), "--provider", "cometapi", home=tmp_path / "home")
    assert result.returncode == 2
    assert "KLING_PREFLIGHT_COMETAPI_KEY" in result.stderr


def test_providers_lists_every_provider_and_its_state(tmp_path):
    result = cli("providers", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("* local") and "ready" in line for line in lines)
    assert any("cometapi" in line and "needs a key" in line for line in lines)
    assert any("useapi" in line and "needs a key" in line for line in lines)


def test_export_filters_and_formats(tmp_path):
    home = tmp_path / "home"
    assert cli("scan", str(SAMPLES), home=home).returncode == 0
    avatar = tmp_path / "avatar.csv"
    assert cli("export", "--verdict", "avatar", "--out", str(avatar), home=home).returncode == 0
    assert sorted(r["file"] for r in read_export_csv(avatar)) == sorted(FACE_PHOTOS)
    invalid = cli("export", "--status", "invalid", "--format", "json", home=home)
    assert invalid.returncode == 0
    items = json.loads(invalid.stdout)
    assert sorted(i["file"] for i in items) == sorted(INVALID)
    assert all(i["problems"] and i["problems"][0]["message"] for i in items)
    no_face = cli("export", "--no-face", "--status", "checked", "--format", "json", home=home)
    assert sorted(i["file"] for i in json.loads(no_face.stdout)) == sorted(NO_FACE_PHOTOS + ["coffee_really_a_png.jpg"])


def make_variants(folder: Path, copies: int) -> int:
    """Distinct images with faces: the face photos with one pixel changed per copy."""
    folder.mkdir()
    count = 0
    for name in FACE_PHOTOS[:3]:
        base = Image.open(SAMPLES / name).convert("RGB")
        for i in range(copies):
            img = base.copy()
            img.putpixel((0, 0), (i, 0, 0))
            img.save(folder / f"{Path(name).stem}_{i:03d}.png")
            count += 1
    return count


def result_rows(db: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return dict(conn.execute("select sha256, checked_at from results where provider = 'local' and status = 'checked'"))


@pytest.mark.slow
def test_resume_after_kill_9_loses_and_repeats_nothing(tmp_path):
    photos = tmp_path / "photos"
    total = make_variants(photos, 30)
    home = tmp_path / "home"
    db = tmp_path / "results.db"
    env = {**os.environ, "KLING_PREFLIGHT_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "scan", str(photos), "--db", str(db), "--concurrency", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        before: dict[str, str] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    before = result_rows(db)
                except sqlite3.OperationalError:  # tables not created yet
                    before = {}
                if len(before) >= 10:
                    break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = result_rows(db)
    assert 10 <= len(before) < total, "the kill should land mid-run"
    resumed = cli("scan", str(photos), "--db", str(db), home=home)
    assert resumed.returncode == 0, resumed.stderr
    after = result_rows(db)
    assert len(after) == total
    # Work finished before the kill was neither lost nor done again.
    assert {sha: after[sha] for sha in before} == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
