"""`kling-preflight fix` and `collect` end to end, in a subprocess, as a user runs them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from core.copies import read_manifest
from core.models import Constraints, ScannedFile, is_valid
from core.probe import probe_file
from core.scan import OUTPUT_MARKER
from core.validate import validate
from tests.conftest import SAMPLES, read_export_csv
from tests.e2e.test_cli import cli
from tests.imagefiles import noise_image

GPS_IFD, ORIENTATION = 0x8825, 0x0112


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def probed(path: Path):
    st = os.stat(path)
    return probe_file(ScannedFile(str(path), st.st_size, st.st_mtime_ns))


def one_of_each_kind(folder: Path) -> dict[str, str]:
    """The done-when folder: every kind of photo a studio has that Kling refuses.

    :returns: file name -> what its copy's "changes" must mention.
    """
    folder.mkdir()
    portrait = Image.open(SAMPLES / "fr_obama.jpg").convert("RGB")
    portrait.save(folder / "IMG_0001.HEIC", "HEIF")
    portrait.save(folder / "saved_from_web.webp", "WEBP")
    portrait.save(folder / "from_the_web.avif", "AVIF")
    portrait.save(folder / "scan.tif", "TIFF")
    frames = [noise_image(400, 400) for _ in range(3)]
    frames[0].save(folder / "reaction.gif", save_all=True, append_images=frames[1:])
    noise_image(3300, 2800).save(folder / "export_40mp.png")  # over 25 MB
    noise_image(2000, 500).save(folder / "panorama.jpg")  # 4:1
    noise_image(400, 1200).save(folder / "tall_shot.jpg")  # 1:3
    noise_image(200, 200).save(folder / "thumb.jpg")
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # shown turned 90° clockwise: stored 1,500 × 500, upright 500 × 1,500
    exif.get_ifd(GPS_IFD)[1] = "N"
    noise_image(1500, 500).save(folder / "rotated.jpg", exif=exif)
    assert (folder / "export_40mp.png").stat().st_size > 25 * 1024 * 1024
    return {
        "IMG_0001.HEIC": "converted HEIC to JPG",
        "saved_from_web.webp": "converted WebP to JPG",
        "from_the_web.avif": "converted AVIF to JPG",
        "scan.tif": "converted TIFF to JPG",
        "reaction.gif": "kept the first of 3 frames",
        "export_40mp.png": "converted PNG to JPG",
        "panorama.jpg": "padded 2,000 × 500 to 2,000 × 800",
        "tall_shot.jpg": "padded 400 × 1,200 to 480 × 1,200",
        "thumb.jpg": "enlarged 200 × 200 to 300 × 300 (Lanczos)",
        "rotated.jpg": "turned upright (EXIF orientation 6)",
    }


def test_a_folder_of_every_kind_gets_copies_that_all_pass(tmp_path):
    photos = tmp_path / "photos"
    expected = one_of_each_kind(photos)
    before = {name: sha(photos / name) for name in expected}
    for name in expected:  # each really is refused and really is fixable
        problems = validate(probed(photos / name), Constraints())
        assert not is_valid(problems) and all(p.fixable for p in problems if p.blocking), name
    out = photos / "ready"  # inside the folder it fixes: its copies must not be fixed again

    result = cli("fix", str(photos), "--out", str(out), "--upscale", home=tmp_path / "home", timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert {name: sha(photos / name) for name in expected} == before  # originals untouched
    rows = {Path(row["original"]).name: row for row in read_manifest(out / "manifest.csv")}
    assert set(rows) == set(expected)
    for name, change in expected.items():
        row = rows[name]
        copy = Path(row["copy"])
        assert row["action"] == "fixed" and copy.parent == out, row
        assert copy.name == Path(name).stem + ".jpg"
        assert change in row["changes"], (name, row["changes"])
        assert row["why"], name
        assert int(row["bytes_before"]) == (photos / name).stat().st_size
        assert int(row["bytes_after"]) == copy.stat().st_size
        image = probed(copy)
        assert image.format == "JPEG"
        assert validate(image, Constraints()) == (), name  # the same rules pass the copy
        assert (int(row["width_after"]), int(row["height_after"])) == (image.width, image.height)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [OUTPUT_MARKER, "manifest.csv", *(Path(n).stem + ".jpg" for n in expected)]
    )
    # The rotation is in the pixels now, and the location is gone.
    with Image.open(out / "rotated.jpg") as upright:
        assert upright.size == (600, 1500)
        assert ORIENTATION not in upright.getexif() and GPS_IFD not in upright.getexif()
    assert "too_large" not in {p.code for p in validate(probed(out / "export_40mp.jpg"), Constraints())}


def test_a_second_run_never_overwrites_and_a_dry_run_writes_nothing(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    noise_image(2000, 500).save(photos / "panorama.jpg")
    out = tmp_path / "ready"

    dry = cli("fix", str(photos), "--out", str(out), "--dry-run", home=tmp_path / "home")
    assert dry.returncode == 0, dry.stderr
    assert f"would write {out / 'panorama.jpg'}" in dry.stdout
    assert not out.exists()

    first = cli("fix", str(photos), "--out", str(out), home=tmp_path / "home")
    second = cli("fix", str(photos), "--out", str(out), home=tmp_path / "home")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    first_copy = sha(out / "panorama.jpg")
    assert f"wrote {out / 'panorama-1.jpg'}" in second.stdout
    assert sha(out / "panorama.jpg") == first_copy
    assert [r["copy"] for r in read_manifest(out / "manifest-1.csv")] == [str(out / "panorama-1.jpg")]


def test_what_cannot_be_fixed_says_why_and_leaves_no_copy(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    noise_image(200, 200).save(photos / "thumb.jpg")  # no --upscale
    (photos / "notes.jpg").write_text("not a photo")
    good = photos / "good.jpg"
    noise_image(600, 400).save(good)
    out = tmp_path / "ready"

    result = cli("fix", str(photos), "--out", str(out), home=tmp_path / "home")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "thumb.jpg: 200 × 200 is under 300 px on its shorter side. Enlarging it needs --upscale." in result.stderr
    assert "notes.jpg: This is not an image" in result.stderr
    rows = {Path(r["original"]).name: r for r in read_manifest(out / "manifest.csv")}
    assert {name: r["action"] for name, r in rows.items()} == {"thumb.jpg": "not fixed", "notes.jpg": "not fixed", "good.jpg": "passes"}
    assert not any(r["copy"] for r in rows.values())
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "manifest.csv"]


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root (and Windows) may write anywhere")
def test_an_output_folder_that_cannot_be_written_gets_a_sentence_and_no_trace(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    noise_image(2000, 500).save(photos / "panorama.jpg")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)

    result = cli("fix", str(photos), "--out", str(locked / "ready"), home=tmp_path / "home")

    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "cannot be written: this account may not write there" in result.stderr
    assert list(locked.iterdir()) == []


def test_an_output_path_that_is_a_file_gets_a_sentence(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    noise_image(2000, 500).save(photos / "panorama.jpg")
    (tmp_path / "ready").write_text("a file")

    result = cli("fix", str(photos), "--out", str(tmp_path / "ready"), home=tmp_path / "home")

    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "is a file, not a folder" in result.stderr


def test_a_check_of_the_copy_shows_on_the_originals_row(tmp_path):
    home = tmp_path / "home"
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(SAMPLES / "fr_obama.jpg").convert("RGB").save(photos / "IMG_0001.HEIC", "HEIF")
    out = photos / "ready"
    db = tmp_path / "results.db"
    assert cli("scan", str(photos), "--db", str(db), home=home).returncode == 0
    fixed = cli("fix", str(photos), "--out", str(out), "--db", str(db), home=home)
    assert fixed.returncode == 0, fixed.stderr
    export = tmp_path / "before.csv"
    assert cli("export", "--db", str(db), "--out", str(export), home=home).returncode == 0
    assert [r["ready_copy"] for r in read_export_csv(export)] == [""]  # made, not checked yet
    as_json = tmp_path / "before.json"
    assert cli("export", "--db", str(db), "--out", str(as_json), home=home).returncode == 0
    (item,) = json.loads(as_json.read_text(encoding="utf-8"))
    assert item["problems"] == [
        {"code": "unsupported_format", "message": "HEIC is not supported: use JPG or PNG.", "fixable": True}
    ]

    scanned = cli("scan", str(out), "--db", str(db), home=home)  # the copy, named as a root
    assert scanned.returncode == 0, scanned.stderr
    assert cli("export", "--db", str(db), "--out", str(export), home=home).returncode == 0

    rows = {r["file"]: r for r in read_export_csv(export)}
    assert set(rows) == {"IMG_0001.HEIC", "IMG_0001.jpg"}
    assert rows["IMG_0001.HEIC"]["status"] == "invalid"
    assert rows["IMG_0001.HEIC"]["ready_copy"] == str(out / "IMG_0001.jpg")
    assert rows["IMG_0001.jpg"]["status"] == "checked"


def test_collect_copies_the_ready_photos_names_kept_and_links_on_request(tmp_path):
    home = tmp_path / "home"
    db = tmp_path / "results.db"
    assert cli("scan", str(SAMPLES), "--db", str(db), home=home).returncode == 0
    out = tmp_path / "avatars"

    dry = cli("collect", "--verdict", "avatar", "--out", str(out), "--db", str(db), "--dry-run", home=home)
    assert dry.returncode == 0 and not out.exists()
    first = cli("collect", "--verdict", "avatar", "--out", str(out), "--db", str(db), home=home)
    linked = cli("collect", "--verdict", "avatar", "--out", str(out), "--db", str(db), "--link", home=home)

    assert first.returncode == linked.returncode == 0, first.stderr + linked.stderr
    faces = ["fr_biden.jpg", "fr_obama.jpg", "mpl_grace_hopper.jpg", "sk_astronaut.png", "sk_camera.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [OUTPUT_MARKER, "manifest.csv", "manifest-1.csv", *faces, *(n.replace(".", "-1.") for n in faces)]
    )
    for name in faces:
        assert sha(out / name) == sha(SAMPLES / name)
        assert os.path.samefile(out / name.replace(".", "-1."), SAMPLES / name)  # a link, not a copy
    rows = read_manifest(out / "manifest.csv")
    assert {r["action"] for r in rows} == {"copied"} and len(rows) == 5
    assert {r["action"] for r in read_manifest(out / "manifest-1.csv")} == {"linked"}
