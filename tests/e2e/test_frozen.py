"""Smoke test of the frozen (PyInstaller) app.

`make test` builds it first (`make dist`) and names the folder in KLING_PREFLIGHT_FROZEN_DIR,
so CI proves on every run that the double-click app and its command line work. Run bare,
outside make, these tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, read_export_csv

FROZEN_ENV = "KLING_PREFLIGHT_FROZEN_DIR"


def program(folder: Path, name: str) -> Path:
    """An executable of the bundle by its name, with Windows' suffix there."""
    return folder / (f"{name}.exe" if sys.platform == "win32" else name)


@pytest.fixture(scope="module")
def frozen() -> Path:
    folder = os.environ.get(FROZEN_ENV)
    if not folder:
        pytest.skip(f"{FROZEN_ENV} is not set: `make test` builds the frozen app and sets it")
    path = Path(folder)
    if not path.is_absolute():
        path = ROOT / path
    assert program(path, "kling-preflight").exists(), f"no frozen build in {path}: run `make dist`"
    return path


def run(exe: Path, *args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLING_PREFLIGHT_")}
    env["KLING_PREFLIGHT_HOME"] = str(home)
    env["QT_QPA_PLATFORM"] = "offscreen"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def test_the_frozen_cli_lists_its_providers(frozen, tmp_path):
    result = run(program(frozen, "kling-preflight"), "providers", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "local" in result.stdout and "ready" in result.stdout
    assert "cometapi" in result.stdout and "useapi" in result.stdout
    assert "was skipped" not in result.stdout  # no built-in plugin failed to load
    keys = run(program(frozen, "kling-preflight"), "keys", "status", home=tmp_path)
    assert keys.returncode == 0 and "Key store:" in keys.stdout  # the keyring backend in use


def test_the_frozen_cli_scans_the_samples_into_a_csv(frozen, tmp_path):
    out = tmp_path / "samples.csv"
    result = run(program(frozen, "kling-preflight"), "scan", str(SAMPLES), "--export", str(out), home=tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_export_csv(out)
    assert len(rows) == 16
    faces = sorted(r["file"] for r in rows if r["face_count"] == "1")
    assert faces == ["fr_biden.jpg", "fr_obama.jpg", "mpl_grace_hopper.jpg", "sk_astronaut.png", "sk_camera.png"]
    assert sum(r["status"] == "invalid" for r in rows) == 5
    assert sum(r["status"] == "checked" for r in rows) == 11
    # The detector the installed app uses here survived freezing, called the same way (for
    # yuface: its C function was found in the bundle, "ctypes").
    as_json = tmp_path / "samples.json"
    exported = run(program(frozen, "kling-preflight"), "export", "--out", str(as_json), home=tmp_path / "home")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    checked = [r for r in json.loads(as_json.read_text(encoding="utf-8")) if r["status"] == "checked"]
    from plugins.detectors import choose

    here = choose()
    assert len(checked) == 11
    assert {(r["raw"]["detector"], r["raw"]["call"]) for r in checked} == {(here.name, here.call)}


def test_the_frozen_desktop_app_opens_a_database_and_quits(frozen, tmp_path):
    home = tmp_path / "home"
    scanned = run(program(frozen, "kling-preflight"), "scan", str(SAMPLES), home=home)
    assert scanned.returncode == 0, scanned.stderr
    result = run(program(frozen, "kling-preflight-gui"), "--self-test", "--db", str(home / "results.db"), home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    if sys.platform != "win32":  # Windows gives a windowed app no console to print to; 0 says it painted
        assert "self-test: ok" in result.stdout + result.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="the .desktop file is Linux's menu entry")
def test_the_bundle_ships_the_desktop_file_and_icon(frozen):
    desktop_file = (frozen / "kling-preflight.desktop").read_text()
    assert "Exec=kling-preflight-gui" in desktop_file and "Icon=kling-preflight" in desktop_file
    assert (frozen / "kling-preflight.png").stat().st_size > 1000


def test_the_frozen_cli_fixes_a_heic_and_an_avif(frozen, tmp_path):
    from PIL import Image

    import core.probe  # noqa: F401  (registers pillow-heif's HEIF writer in this Python)

    photos = tmp_path / "photos"
    photos.mkdir()
    portrait = Image.open(SAMPLES / "fr_obama.jpg").convert("RGB")
    portrait.save(photos / "IMG_0001.HEIC", "HEIF")  # pillow-heif, in this (unfrozen) Python
    portrait.save(photos / "web.avif", "AVIF")
    out = tmp_path / "ready"
    result = run(frozen / "kling-preflight", "fix", str(photos), "--out", str(out), home=tmp_path / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "converted HEIC to JPG" in result.stdout and "converted AVIF to JPG" in result.stdout
    for name in ("IMG_0001.jpg", "web.jpg"):
        with Image.open(out / name) as copy:
            assert copy.format == "JPEG" and copy.size == portrait.size
