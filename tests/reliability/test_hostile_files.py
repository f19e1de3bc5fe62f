"""Hostile files and names: each gets a clear result, and both exports stay well-formed.

One folder holds every kind of awkward file a photo folder can hold. It is run through the
real pipeline twice, with the offline provider (its decoder sees every pixel format) and with
the fake CometAPI. Files that change or vanish are changed at the moments that matter: after
the scan listed them but before it read them, and after the scan but before the check.

The exports are read back with the csv and json modules. A spreadsheet reads a cell that
starts with ``= + - @``, a tab or a carriage return as a formula, so every such cell must
have been neutralised; where LibreOffice is installed (``soffice``) the CSV is also converted
to .xlsx, with formula evaluation on, and the workbook must hold no formula.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
import unicodedata
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

from core.events import FileSkipped, Finished, Plan, ScanProgress
from core.export import export_file
from core.providers import ProviderConfig
from core.retry import RetryPolicy
from core.runner import BatchRunner, RunOptions
from core.scan import file_path
from core.store import RowFilter, Store
from plugins.local import LocalProvider
from tests.conftest import SAMPLES, read_export_csv
from tests.imagefiles import (
    make_jpeg,
    make_png_claiming,
    make_truncated_jpeg,
    make_truncated_png,
    png_chunk,
)
from tests.reliability.counts import count_crashes, count_lost

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FAST_RETRIES = RetryPolicy(base_delay=0.001, cap=0.01)

#: Names that trip up file systems, shells, CSV readers and spreadsheets.
HOSTILE_NAMES = [
    "東京の写真.jpg", "Фотография.jpg", "صورة شخصية.jpg", "चित्र.jpg", "Φωτογραφία.jpg", "사진.jpg",
    "📷 selfie 🙂.jpg", "family 👨‍👩‍👧.jpg",
    "with  two  spaces .jpg", " leading space.jpg",
    "a,b,c.jpg", 'say "cheese".jpg', "it's mine.jpg", "semi;colon.jpg",
    "line\nbreak.jpg", "carriage\rreturn.jpg", "tab\there.jpg",
    "=1+1.jpg", "=HYPERLINK(\"http:evil.example\",\"click\").jpg", "+1+1.jpg", "-1+1.jpg", "@SUM(1,1).jpg",
    "\t=1+1.jpg", "\r=1+1.jpg",
    unicodedata.normalize("NFC", "café.jpg"), unicodedata.normalize("NFD", "café.jpg"),
    "x" * 251 + ".jpg",
]  # fmt: skip


def rgb16_png(path: Path, width: int = 400, height: int = 400) -> Path:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), made chunk by chunk."""
    row = b"".join(struct.pack(">HHH", x * 163, (x * 97) % 65536, 40000) for x in range(width))
    raw = b"".join(b"\x00" + row for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    )
    return path


def gradient(mode: str, size=(400, 400), shift: int = 0) -> Image.Image:
    base = Image.linear_gradient("L").resize(size).point(lambda v: (v + shift) % 256)
    across = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize(size)
    return Image.merge("RGB", (base, across, base)).convert(mode)


def exif_rotated(path: Path, orientation: int, size=(600, 300)) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    gradient("RGB", size, shift=orientation).save(path, "JPEG", exif=exif.tobytes())
    return path


def make_hostile_folder(root: Path, photo_folder: Path) -> dict[str, tuple[str, str | None]]:
    """Write every hostile file; returns name -> (expected status, expected problem code).

    Names are relative to ``root``. Status "skipped" means the scan must report the path
    and skip it; the other statuses are what the results table must say.
    """
    root.mkdir()
    expect: dict[str, tuple[str, str | None]] = {}

    def put(name: str, status: str, code: str | None = None) -> Path:
        expect[name] = (status, code)
        return root / name

    put("empty.jpg", "invalid", "empty").write_bytes(b"")
    make_truncated_jpeg(put("truncated.jpg", "invalid", "truncated"))
    make_truncated_png(put("truncated.png", "invalid", "truncated"))
    make_png_claiming(put("claims_100000x100000.png", "invalid", "decompression_bomb"), 100_000, 100_000)
    gradient("RGB").convert("I;16").save(put("grey_16bit.png", "checked"))
    rgb16_png(put("rgb_16bit.png", "checked"))
    gradient("CMYK").save(put("cmyk.jpg", "checked"), "JPEG")
    palette = gradient("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.save(put("palette_transparent.png", "checked"), transparency=0)
    gradient("RGBA").save(put("rgba.png", "checked"))
    frames = [gradient("RGB", shift=s) for s in (0, 80, 160)]
    frames[0].save(put("animated.png", "checked"), save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(put("animated.gif", "invalid", "unsupported_format"), save_all=True, append_images=frames[1:],
                   duration=100, loop=0)  # fmt: skip
    for orientation in range(1, 9):
        exif_rotated(put(f"exif_orientation_{orientation}.jpg", "checked"), orientation)
    # A face photo stored on its side, turned upright by its EXIF orientation.
    upright = Image.open(SAMPLES / "mpl_grace_hopper.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    upright.transpose(Image.Transpose.ROTATE_90).save(put("face_stored_sideways.jpg", "checked"), exif=exif.tobytes())
    upright.save(put("face_upright.jpg", "checked"))
    make_jpeg(put("changed_after_scan.jpg", "failed", "changed"), 400, 400)
    make_jpeg(put("vanished_after_scan.jpg", "failed", "unreadable"), 400, 400)
    make_jpeg(put("vanished_during_scan.jpg", "invalid", "unreadable"), 400, 400)
    os.symlink("nowhere.jpg", put("dangling_link.jpg", "skipped", "dangling symlink"))
    os.symlink(".", put("loop", "skipped", "symlink loop"))
    os.symlink("loop_b.jpg", put("loop_a.jpg", "skipped", "symlink loop"))
    os.symlink("loop_a.jpg", put("loop_b.jpg", "skipped", "symlink loop"))
    photos = sorted(photo_folder.iterdir())
    for name, source in zip(HOSTILE_NAMES, photos):
        shutil.copyfile(source, put(name, "checked"))
    (root / "=folder").mkdir()
    shutil.copyfile(photos[len(HOSTILE_NAMES)], put("=folder/@inside.jpg", "checked"))
    return expect


def run_with_tampering(db: Path, provider, root: Path) -> list:
    """Run a batch, vanishing one file after the scan listed it and before it read it, and
    changing and vanishing two others after the scan, before the check."""
    events = []
    runner = BatchRunner(db, provider, RunOptions(retry=FAST_RETRIES, concurrency=2))
    for event in runner.run([root]):
        events.append(event)
        if isinstance(event, ScanProgress) and event.probed == event.from_cache and not event.scanning_done:
            (root / "vanished_during_scan.jpg").unlink(missing_ok=True)
        if isinstance(event, Plan):
            Image.new("RGB", (500, 500), "red").save(root / "changed_after_scan.jpg")
            (root / "vanished_after_scan.jpg").unlink()
    return events


def sentence(text: str) -> bool:
    return bool(text) and text[:1].isupper() and text.rstrip(")").endswith(".") and "Traceback" not in text


def check_results(root: Path, db: Path, events: list, expect: dict) -> dict[str, dict]:
    """Every hostile input has its expected, clearly worded result; returns rows by name."""
    assert isinstance(events[-1], Finished), "the batch did not finish"
    skipped = {os.path.relpath(e.path, root): e.reason for e in events if isinstance(e, FileSkipped)}
    with Store(db) as store:
        rows = {os.path.relpath(r["path"], root): r for r in store.query_rows(RowFilter())}
    for name, (status, code) in expect.items():
        if status == "skipped":
            assert skipped.get(name) == code, (name, skipped.get(name))
            assert name not in rows
            continue
        assert name in rows, f"no result for {name!r}"
        row = rows[name]
        assert row["status"] == status, (name, row["status"], row["problems"], row["error"])
        if status == "invalid":
            assert code in [p["code"] for p in row["problems"]], (name, row["problems"])
            assert all(sentence(p["message"]) for p in row["problems"]), row["problems"]
        elif status == "failed":
            assert row["error_code"] == code and sentence(row["error"]), (name, row["error"])
    assert set(rows) == {n for n, (s, _) in expect.items() if s != "skipped"}
    return rows


def check_csv(path: Path, names: set[str], root: Path) -> list[dict]:
    rows = read_export_csv(path)
    assert len(rows) == len(names)
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(FORMULA_STARTS), f"{column} would be read as a formula: {cell!r}"
    # Each name comes back whole: newlines, quotes and commas stay inside their cell.
    written = {("'" + n if n.startswith(FORMULA_STARTS) else n) for n in (Path(n).name for n in names)}
    assert {row["file"] for row in rows} == written
    assert {row["path"] for row in rows} == {str(root / n) for n in names}
    return rows


def check_json(path: Path, names: set[str], root: Path) -> None:
    items = json.loads(path.read_text(encoding="utf-8"))
    assert {item["path"] for item in items} == {str(root / n) for n in names}
    assert {item["file"] for item in items} == {Path(n).name for n in names}


def xlsx_formulas(csv_path: Path, out_dir: Path) -> tuple[int, int]:
    """Convert a CSV to .xlsx with LibreOffice, evaluating formulas as a user's import may.

    :returns: the number of formula cells and of rows in the first sheet.
    """
    out_dir.mkdir(exist_ok=True)
    # Fields: separator, quote, UTF-8, first line, cell format, language, quoted as text,
    # detect special numbers, (3 export-only), evaluate formulas.
    infilter = "CSV Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,true"
    profile = (out_dir / "profile").resolve().as_uri()
    subprocess.run(
        ["soffice", f"-env:UserInstallation={profile}", "--headless", "--norestore",
         f"--infilter={infilter}", "--convert-to", "xlsx", "--outdir", str(out_dir), str(csv_path)],
        check=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    with zipfile.ZipFile(out_dir / (csv_path.stem + ".xlsx")) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode("utf-8")
    return sheet.count("<f>") + sheet.count("<f "), sheet.count("<row ")


def test_hostile_files_and_names_get_clear_results_and_safe_exports(tmp_path, photo_folder, comet, make_app, figures, caplog):
    totals = {}
    lost = crashes = 0
    for provider_id in ("local", "cometapi"):
        root = tmp_path / provider_id / "photos"
        root.parent.mkdir()
        expect = make_hostile_folder(root, photo_folder)
        app = make_app(tmp_path / provider_id / "home", {"KLING_PREFLIGHT_COMETAPI_KEY": comet.key})
        overrides = {"base_url": comet.base_url, "read_timeout": 5.0} if provider_id == "cometapi" else {}
        provider = app.create_provider(provider_id, overrides)
        db = tmp_path / provider_id / "results.db"

        events = run_with_tampering(db, provider, root)

        rows = check_results(root, db, events, expect)
        lost += count_lost({n for n, (s, _) in expect.items() if s != "skipped"}, rows)
        crashes += count_crashes(rows.values(), caplog.records)
        caplog.clear()
        # Stored and displayed shapes differ: the size recorded is the stored one, and the
        # face the offline detector finds on the upright picture is boxed in stored pixels.
        sideways = rows["face_stored_sideways.jpg"]
        assert (sideways["width"], sideways["height"]) == Image.open(root / "face_stored_sideways.jpg").size
        if provider_id == "local":
            assert sideways["face_count"] == rows["face_upright.jpg"]["face_count"] == 1
            face, seen = sideways["faces"][0], rows["face_upright.jpg"]["faces"][0]
            # Orientation 6 shows stored pixel (v, W - u) at (u, v): the upright box, turned.
            width = rows["face_upright.jpg"]["width"]
            turned = (seen["y"], width - seen["x"] - seen["width"], seen["height"], seen["width"])
            found = (face["x"], face["y"], face["width"], face["height"])
            assert all(abs(a - b) <= 8 for a, b in zip(found, turned)), (found, turned)
        names = set(rows)
        with Store(db) as store:
            export_file(store, tmp_path / provider_id / "results.csv")
            export_file(store, tmp_path / provider_id / "results.json")
        check_csv(tmp_path / provider_id / "results.csv", names, root)
        check_json(tmp_path / provider_id / "results.json", names, root)
        totals[provider_id] = len(expect)
    assert (lost, crashes) == (0, 0)

    figures(
        "hostile_files",
        hostile_files=totals["local"],
        hostile_names=len(HOSTILE_NAMES) + 1,
        providers=sorted(totals),
        inputs_tried=sum(totals.values()),
        exports_checked=4,
        crashes=crashes,
        data_lost=lost,
    )


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_finds_no_formula_in_the_exported_csv(tmp_path, photo_folder, figures):
    root = tmp_path / "photos"
    root.mkdir()
    for name, source in zip(HOSTILE_NAMES, sorted(photo_folder.iterdir())):
        shutil.copyfile(source, root / name)
    provider = LocalProvider(ProviderConfig(data_dir=tmp_path / "crops"))
    db = tmp_path / "results.db"
    events = list(BatchRunner(db, provider, RunOptions(retry=FAST_RETRIES)).run([root]))
    assert events[-1].summary.checked == len(HOSTILE_NAMES)
    with Store(db) as store:
        export_file(store, tmp_path / "results.csv")
    # The control: the same conversion does turn an unprotected cell into a formula.
    control = tmp_path / "control.csv"
    control.write_text("file,cell\nx,=1+1\ny,@SUM(1;2)\n", encoding="utf-8")
    assert xlsx_formulas(control, tmp_path / "xlsx")[0] >= 1

    formulas, sheet_rows = xlsx_formulas(tmp_path / "results.csv", tmp_path / "xlsx")

    assert formulas == 0
    assert sheet_rows == len(HOSTILE_NAMES) + 1  # a newline inside a name stays in its cell
    figures("hostile_files", libreoffice_conversions=2, libreoffice_formulas=formulas)


@pytest.fixture
def roomy_folder(tmp_path) -> Path:
    """An empty folder for many small files: in memory (/dev/shm) where there is one, since
    creating 50,000 files on a journaling disk takes longer than scanning them."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="kp-many-", dir=shm))
    else:
        folder = tmp_path / "many"
        folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_50000_files_in_one_folder_are_scanned_and_reported(tmp_path, roomy_folder, make_app, figures):
    folder = roomy_folder
    not_photos, fake_photos = 49_000, 1_000
    for i in range(not_photos):
        os.close(os.open(folder / f"note_{i:05d}.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    for i in range(fake_photos):
        (folder / f"IMG_{i:04d}.jpg").write_bytes(b"not a photo %d" % i)
    app = make_app(tmp_path / "home", {})
    db = tmp_path / "results.db"

    events = list(BatchRunner(db, app.create_provider("local"), RunOptions(retry=FAST_RETRIES)).run([folder]))

    plan = next(e for e in events if isinstance(e, Plan))
    assert isinstance(events[-1], Finished)
    assert plan.files_found == not_photos + fake_photos and plan.not_images == not_photos
    assert plan.invalid == fake_photos and plan.invalid_by_code == {"not_an_image": fake_photos}
    with Store(db) as store:
        stored = store.count_rows(RowFilter(statuses=("invalid",)))
        written = export_file(store, tmp_path / "many.csv")
    assert stored == written == fake_photos
    figures("hostile_files", files_in_one_folder=not_photos + fake_photos, data_lost=fake_photos - stored)


def test_a_name_that_is_not_utf8_is_checked_and_exported_without_loss(tmp_path, photo_folder, make_app):
    """A Latin-1 name (an old archive) is stored as text, ``\\xe9`` for its odd byte, and
    can be checked, exported, summed up and scanned again: nothing is dropped."""
    root = tmp_path / "photos"
    root.mkdir()
    photos = sorted(photo_folder.iterdir())
    latin1_name = os.fsdecode(b"caf\xe9.jpg")  # how Python names it: 'caf\udce9.jpg'
    shutil.copyfile(photos[0], root / latin1_name)
    shutil.copyfile(photos[1], root / "plain.jpg")
    app = make_app(tmp_path / "home", {})
    db = tmp_path / "results.db"

    events = list(BatchRunner(db, app.create_provider("local"), RunOptions()).run([root]))

    assert [e for e in events if isinstance(e, FileSkipped)] == []
    assert isinstance(events[-1], Finished) and events[-1].summary.checked == 2
    with Store(db) as store:
        rows = {row["file"]: row for row in store.query_rows(RowFilter())}
        assert set(rows) == {"caf\\xe9.jpg", "plain.jpg"}
        assert rows["caf\\xe9.jpg"]["status"] == "checked"
        assert file_path(rows["caf\\xe9.jpg"]["path"]) == str(root / latin1_name)
        assert store.summary(RowFilter(provider="local", roots=(str(root),))).statuses["checked"] == 2
        export_file(store, tmp_path / "out.csv")
        export_file(store, tmp_path / "out.json")
    check_csv(tmp_path / "out.csv", {"caf\\xe9.jpg", "plain.jpg"}, root)
    check_json(tmp_path / "out.json", {"caf\\xe9.jpg", "plain.jpg"}, root)
    # Scanned again: recognised as unchanged, not read or checked twice.
    again = list(BatchRunner(db, app.create_provider("local"), RunOptions()).run([root]))
    assert again[-1].summary.checked == 0 and again[-1].summary.skipped_known == 2
