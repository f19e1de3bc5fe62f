"""`kling-preflight fix` on storage that fails: a disk that fills, a read-only disk.

Real small tmpfs folders (root only, see test_storage_faults.py), else skipped: the run must
end with a sentence, leave no half-written file, and never touch an original.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.models import Constraints, ScannedFile
from core.probe import probe_file
from core.scan import OUTPUT_MARKER
from core.validate import validate
from tests.e2e.test_cli import cli
from tests.imagefiles import noise_image
from tests.reliability.test_storage_faults import _remount, mounts  # noqa: F401  (a fixture)


def panoramas(folder: Path, count: int) -> dict[str, str]:
    folder.mkdir()
    for n in range(count):
        noise_image(900, 300).save(folder / f"pano_{n:02d}.jpg", quality=90)  # copies of about 300 KB
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_a_disk_that_fills_mid_run_leaves_whole_copies_and_a_sentence(tmp_path, mounts):  # noqa: F811
    disk = tmp_path / "disk"
    if not mounts(disk, "1m"):
        pytest.skip("needs root and permission to mount a tmpfs")
    photos = tmp_path / "photos"
    before = panoramas(photos, 8)

    result = cli("fix", str(photos), "--out", str(disk / "ready"), home=tmp_path / "home")

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the disk is full. Nothing half-written was left." in result.stderr
    written = [p for p in (disk / "ready").iterdir() if p.suffix == ".jpg"]
    assert 0 < len(written) < 8
    assert not [p for p in (disk / "ready").iterdir() if p.name.startswith(".partial-")]
    for copy in written:  # every copy there is whole and passes
        probed = probe_file(ScannedFile(str(copy), copy.stat().st_size, 0))
        assert validate(probed, Constraints()) == (), copy.name
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in photos.iterdir()} == before


def test_a_read_only_disk_gets_a_sentence_and_no_trace(tmp_path, mounts):  # noqa: F811
    disk = tmp_path / "disk"
    if not mounts(disk, "1m"):
        pytest.skip("needs root and permission to mount a tmpfs")
    _remount(disk, "ro")
    photos = tmp_path / "photos"
    panoramas(photos, 1)

    result = cli("fix", str(photos), "--out", str(disk / "ready"), home=tmp_path / "home")

    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"The folder {disk / 'ready'} cannot be written: the disk is read-only." in result.stderr
    assert list(disk.iterdir()) == []
    assert OUTPUT_MARKER not in {p.name for p in photos.iterdir()}
