"""m151_quality upgrades a database made before quality was measured."""

import sqlite3

import pytest
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from core import store as store_module
from core.models import CheckResult, Outcome, Status
from core.quality import QualityWarning
from core.store import Store


def old_database(path):
    """A results database as the first schema made it, with one checked result, an extra index
    and a trigger on ``results`` (as another migration might add)."""
    before = Migrations(store_module.MIGRATIONS.name)
    before()(store_module.m001_initial_schema)
    db = Database(path)
    before.apply(db)
    db.execute("INSERT INTO files VALUES ('/p/a.jpg', '/p', 'a.jpg', 'aa', 10, 1, '[]', 'now')")
    db.execute("INSERT INTO images VALUES ('aa', 10, 'JPEG', 800, 600, '[]', 1, 'now')")
    db.execute(
        "INSERT INTO results (rowid, sha256, provider, status, path, valid, head_seg, face_seg, face_count, faces,"
        " verdict_avatar, verdict_tryon, verdict_asset, checked_at) VALUES (7, 'aa', 'local', 'checked', '/p/a.jpg', 1,"
        " 1, 1, 1, '[{\"x\": 0, \"y\": 100, \"width\": 60, \"height\": 80, \"confidence\": 0.95, \"crops\": []}]',"
        " 'yes', 'unknown', 'unknown', 'now')"
    )
    db.execute("CREATE INDEX idx_results_checked_at ON results (checked_at)")
    db.execute("CREATE TABLE touched (n INTEGER)")
    db.execute("CREATE TRIGGER results_touched AFTER UPDATE ON results BEGIN INSERT INTO touched VALUES (1); END")
    db.conn.commit()
    db.close()


def test_an_old_database_is_upgraded_and_keeps_its_rows_indexes_and_triggers(tmp_path):
    path = tmp_path / "old.db"
    old_database(path)
    with Store(path) as store:
        assert "m151_quality" in {m.name for m in store_module.MIGRATIONS.applied(store.db)}
        row = next(store.db.query("SELECT rowid, * FROM results"))
        assert row["rowid"] == 7 and row["verdict_avatar"] == "yes" and row["warnings"] == "[]"
        assert "quality" in store.db["images"].columns_dict
        names = {r["name"] for r in store.db.query("SELECT name FROM sqlite_master WHERE tbl_name = 'results'")}
        assert {"idx_results_checked_at", "idx_results_verdict_avatar", "results_touched"} <= names
        # Warnings for the old row, from its stored answer and size: no provider, no file.
        assert store.recompute_warnings() == 1
        row = next(store.db.query("SELECT verdict_avatar, warnings FROM results"))
        assert row["verdict_avatar"] == "review" and "face_cut_off" in row["warnings"]
        # The new value is accepted, and only it.
        result = CheckResult(head_seg=True, face_seg=True, faces=())
        store.save_outcomes([Outcome("aa", "local", "/p/a.jpg", Status.CHECKED, result=result,
                                     warnings=(QualityWarning("blurry", "Blurred."),))])
        assert next(store.db.query("SELECT verdict_avatar FROM results"))["verdict_avatar"] == "review"
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute("UPDATE results SET verdict_avatar = 'maybe'")


def test_images_checked_before_measuring_are_measured_from_their_files(tmp_path):
    import hashlib
    import io

    from PIL import Image

    from core.quality import measure_missing

    path = tmp_path / "old.db"
    old_database(path)
    photo = tmp_path / "dark.png"
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (10, 10, 10)).save(out, "PNG")
    photo.write_bytes(out.getvalue())
    digest = hashlib.sha256(out.getvalue()).hexdigest()
    with Store(path) as store:
        # The old row's file is gone; point a second file at a real photo.
        store.db.execute("UPDATE files SET path = ?, sha256 = ? WHERE path = '/p/a.jpg'", [str(photo), digest])
        store.db.execute("UPDATE images SET sha256 = ?", [digest])
        store.db.execute("UPDATE results SET sha256 = ?", [digest])
        assert measure_missing(store) == 1
        assert store.measured(digest).brightness < 20
        assert measure_missing(store) == 0  # measured once
        store.recompute_warnings()
        row = next(store.query_rows())
        assert "too_dark" in [w["code"] for w in row["warnings"]]


def test_an_image_whose_file_changed_is_not_measured_and_not_tried_again(tmp_path):
    from core.quality import measure_missing

    path = tmp_path / "old.db"
    old_database(path)
    with Store(path) as store:
        assert store.unmeasured() == [("aa", ["/p/a.jpg"])]
        assert measure_missing(store) == 0
        assert store.unmeasured() == []
        assert store.measured("aa") is None
