import json
import sqlite3
import threading
from dataclasses import replace
from decimal import Decimal

import pytest

from core.models import CheckResult, Face, Outcome, Problem, ScannedFile, Status
from core.store import LOOKUP_CHUNK, MIGRATIONS, ROW_COLUMNS, RowFilter, Store, StoreError
from tests.core.records import probe, sha, unreadable

MISMATCH = Problem("extension_mismatch", "photo.jpg holds a PNG image.", blocking=False)
TRUNCATED = Problem("truncated", "The image data ends early.")
TOO_SMALL = Problem("too_small", "200 × 200 is smaller than 300 px.")


def checked(digest, path, *, provider="local", faces=(), **flags):
    result = CheckResult(faces=tuple(faces) if faces is not None else None, **flags)
    return Outcome(digest, provider, path, Status.CHECKED, result=result, attempts=1, duration_ms=20)


def paths_of(rows):
    return [row["path"] for row in rows]


# --- opening ---------------------------------------------------------------------------------


def test_new_file_gets_schema_and_reopen_applies_nothing_twice(tmp_path):
    db_path = tmp_path / "deep" / "folder" / "results.db"
    with Store(db_path) as s:
        s.save_probes([probe("/p/a.jpg", sha(1))])
    with Store(db_path) as s:
        assert {"files", "images", "results", "memo", "runs"} <= set(s.db.table_names())
        assert MIGRATIONS.pending(s.db) == []
        applied = list(s.db.query("SELECT name FROM _sqlite_migrations WHERE migration_set = 'kling_preflight'"))
        assert len(applied) == len({row["name"] for row in applied}) == len(MIGRATIONS._migrations)
        assert s.count_rows() == 1


def test_file_is_in_wal_mode_with_normal_sync(tmp_path):
    db_path = tmp_path / "results.db"
    with Store(db_path) as s:
        assert next(s.db.query("PRAGMA synchronous"))["synchronous"] == 1  # NORMAL
        other = sqlite3.connect(db_path)
        try:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            other.close()


def test_a_file_that_is_not_sqlite_gives_store_error(tmp_path):
    bogus = tmp_path / "results.db"
    bogus.write_bytes(b"this is a text file, not a database\n" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store(bogus)
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store.open_readonly(bogus)


def test_a_database_made_by_another_program_gives_store_error(tmp_path):
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="another program"):
        Store(foreign)
    # Nothing was added to it.
    conn = sqlite3.connect(foreign)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["customers"]
    conn.close()


def test_a_database_from_a_newer_version_gives_store_error(tmp_path):
    db_path = tmp_path / "results.db"
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('kling_preflight', 'm999_future', 'x')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer version"):
        Store(db_path)


def test_readonly_needs_an_existing_database_and_refuses_writes(tmp_path):
    with pytest.raises(StoreError, match="no results database"):
        Store.open_readonly(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    db_path = tmp_path / "results.db"
    with Store(db_path) as writer:
        writer.save_probes([probe("/p/a.jpg", sha(1))])
    with Store.open_readonly(db_path) as reader:
        assert paths_of(reader.query_rows()) == ["/p/a.jpg"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.save_probes([probe("/p/b.jpg", sha(2))])


def test_a_reader_in_another_thread_sees_committed_writes(tmp_path):
    db_path = tmp_path / "results.db"
    counts = []

    def read():
        with Store(db_path) as reader:
            counts.append(reader.count_rows())

    with Store(db_path) as writer:
        writer.save_probes([probe(f"/p/{n}.jpg", sha(n)) for n in range(3)])
        thread = threading.Thread(target=read)
        thread.start()
        thread.join(timeout=30)
    assert counts == [3]


# --- scanning --------------------------------------------------------------------------------


def test_cached_probes_returns_only_unchanged_files(store):
    same = probe("/p/same.jpg", sha(1), problems=(TRUNCATED, MISMATCH))
    store.save_probes(
        [
            same,
            probe("/p/grown.jpg", sha(2), size=100),
            probe("/p/touched.jpg", sha(3), mtime_ns=5),
            unreadable("/p/locked.jpg"),
        ]
    )
    found = store.cached_probes(
        [
            ScannedFile("/p/same.jpg", same.size, same.mtime_ns),
            ScannedFile("/p/grown.jpg", 200, 1),
            ScannedFile("/p/touched.jpg", 1000, 6),
            ScannedFile("/p/locked.jpg", 10, 1),  # unreadable last time: read it again
            ScannedFile("/p/new.jpg", 1000, 1),
        ]
    )
    assert found == {"/p/same.jpg": same}


def test_problems_are_split_between_path_and_content(store):
    store.save_probes([probe("/p/a.jpg", sha(1), problems=(TRUNCATED, MISMATCH))])
    notes = json.loads(store.db["files"].get("/p/a.jpg")["notes"])
    image = store.db["images"].get(sha(1))
    assert [n["code"] for n in notes] == ["extension_mismatch"]
    assert [p["code"] for p in json.loads(image["problems"])] == ["truncated"]
    assert image["valid"] == 0


def test_cached_probes_of_many_files_takes_one_query_per_chunk(store):
    count = LOOKUP_CHUNK * 2 + 7
    probes = [probe(f"/p/{n:05}.jpg", sha(n), mtime_ns=n) for n in range(count)]
    store.save_probes(probes)
    statements = []
    with store.db.tracer(lambda sql, params: statements.append(sql)):
        found = store.cached_probes(ScannedFile(p.path, p.size, p.mtime_ns) for p in probes)
    assert found == {p.path: p for p in probes}
    assert len(statements) == 3


def test_first_seen_at_survives_a_second_probe(store):
    store.save_probes([probe("/p/a.jpg", sha(1))])
    first = store.db["images"].get(sha(1))["first_seen_at"]
    store.db.execute("UPDATE images SET first_seen_at = '2001-01-01T00:00:00.000+00:00'")
    store.save_probes([probe("/p/copy.jpg", sha(1), width=1024)])
    image = store.db["images"].get(sha(1))
    assert first != image["first_seen_at"] == "2001-01-01T00:00:00.000+00:00"
    assert image["width"] == 1024


# --- checking --------------------------------------------------------------------------------


def test_a_recheck_replaces_the_earlier_result(store):
    store.save_probes([probe("/p/a.jpg", sha(1))])
    failed = Outcome(sha(1), "cometapi", "/p/a.jpg", Status.FAILED, error_code="outcome_unknown", error="Timed out.")
    store.save_outcomes([failed])
    store.save_outcomes([checked(sha(1), "/p/a.jpg", provider="cometapi", faces=None, head_seg=True, cloth_seg=False)])
    rows = list(store.db.query("SELECT * FROM results"))
    assert len(rows) == 1
    assert rows[0]["status"] == "checked"
    assert (rows[0]["error_code"], rows[0]["error"]) == (None, None)
    assert (rows[0]["head_seg"], rows[0]["cloth_seg"], rows[0]["face_seg"]) == (1, 0, None)
    assert (rows[0]["face_count"], rows[0]["faces"]) == (None, None)
    assert (rows[0]["verdict_avatar"], rows[0]["verdict_tryon"]) == ("unknown", "no")


def test_known_statuses_are_per_provider(store):
    store.save_outcomes(
        [
            checked(sha(1), "/p/a.jpg"),
            Outcome(sha(2), "local", "/p/b.jpg", Status.INVALID, problems=(TOO_SMALL,)),
            Outcome(sha(1), "useapi", "/p/a.jpg", Status.REJECTED, error_code="rejected", error="Refused."),
        ]
    )
    assert store.known_statuses("local") == {sha(1): Status.CHECKED, sha(2): Status.INVALID}
    assert store.known_statuses("useapi") == {sha(1): Status.REJECTED}
    assert store.known_statuses("cometapi") == {}
    assert store.providers() == ["local", "useapi"]
    assert not store.has_rows()  # results alone are no rows: rows are files
    store.save_probes([probe("/p/a.jpg", sha(1))])
    assert store.has_rows()


def test_outcome_columns(store):
    face = Face(10, 20, 30, 40, confidence=0.97, crops=("/crops/a.png",))
    result = CheckResult(
        head_seg=True,
        face_seg=True,
        cloth_seg=None,
        object_seg=False,
        faces=(face, Face(1, 2, 3, 4, confidence=float("nan"))),
        result_urls={"head_seg": "https://x/head.png"},
        cost="0.2",
        request_id="req-1",
        raw='{"code": 0}',
    )
    store.save_outcomes([Outcome(sha(1), "useapi", "/p/a.jpg", Status.CHECKED, (MISMATCH,), result, attempts=2)])
    row = store.db["results"].get((sha(1), "useapi"))
    assert row["face_count"] == 2
    faces = json.loads(row["faces"])
    assert faces[0] == {"x": 10, "y": 20, "width": 30, "height": 40, "confidence": 0.97, "crops": ["/crops/a.png"]}
    assert faces[1]["confidence"] is None
    assert json.loads(row["result_urls"]) == {"head_seg": "https://x/head.png"}
    assert (row["cost"], row["request_id"], row["raw"], row["attempts"], row["valid"]) == ("0.2", "req-1", '{"code": 0}', 2, 1)
    assert (row["verdict_avatar"], row["verdict_tryon"], row["verdict_asset"]) == ("yes", "unknown", "no")


def test_invalid_outcomes_have_every_verdict_no(store):
    store.save_outcomes([Outcome(sha(1), "local", "/p/a.jpg", Status.INVALID, problems=(TOO_SMALL,))])
    row = store.db["results"].get((sha(1), "local"))
    assert (row["verdict_avatar"], row["verdict_tryon"], row["verdict_asset"], row["valid"]) == ("no", "no", "no", 0)


def test_memo_round_trip(store):
    store.save_memo("useapi", [(sha(1), "upload_url", "https://a"), (sha(2), "upload_url", "https://b")])
    store.save_memo("useapi", [(sha(1), "upload_url", "https://a2")])
    store.save_memo("other", [(sha(1), "upload_url", "https://c")])
    assert store.memo_items("useapi") == {(sha(1), "upload_url"): "https://a2", (sha(2), "upload_url"): "https://b"}
    assert store.memo_items("cometapi") == {}


def test_runs_record_start_and_end(store):
    run_id = store.start_run("local", {"retry_failed": True, "roots": ["/p"]})
    store.finish_run(run_id, "stopped", {"checked": 3, "failed": 1})
    run = store.db["runs"].get(run_id)
    assert (run["provider"], run["state"]) == ("local", "stopped")
    assert json.loads(run["options"]) == {"retry_failed": True, "roots": ["/p"]}
    assert json.loads(run["counts"]) == {"checked": 3, "failed": 1}
    assert run["finished_at"] is not None
    with pytest.raises(ValueError):
        store.finish_run(run_id, "running", {})


# --- reading ---------------------------------------------------------------------------------


@pytest.fixture
def filled(store):
    """Six files: face, no face, a copy of the face under another name, invalid, unreadable,
    and one no provider has seen yet."""
    store.save_probes(
        [
            probe("/photos/Portrait.jpg", sha(1), problems=(MISMATCH,)),
            probe("/photos/landscape.png", sha(2), fmt="PNG"),
            probe("/photos/trip/Straße Ünïcode.jpg", sha(1)),
            probe("/photos/tiny.jpg", sha(3), width=200, height=200),
            unreadable("/photos/locked.jpg"),
            probe("/other/new.jpg", sha(4)),
        ]
    )
    store.save_outcomes(
        [
            checked(sha(1), "/photos/Portrait.jpg", faces=[Face(1, 2, 3, 4)], head_seg=True, face_seg=True),
            checked(sha(2), "/photos/landscape.png", faces=[], head_seg=False, face_seg=False, object_seg=True),
            Outcome(sha(3), "local", "/photos/tiny.jpg", Status.INVALID, problems=(TOO_SMALL,)),
            # A provider that does not locate faces: only its flag says.
            checked(sha(1), "/photos/Portrait.jpg", provider="cometapi", faces=None, head_seg=True, face_seg=True),
            checked(sha(2), "/photos/landscape.png", provider="cometapi", faces=None, face_seg=False, cost="0.2"),
            Outcome(sha(4), "cometapi", "/other/new.jpg", Status.FAILED, error_code="unavailable", error="Down."),
        ]
    )
    store.save_outcomes([checked(sha(1), "/photos/Portrait.jpg", provider="cometapi", faces=None, face_seg=True, cost="0.35")])
    return store


def rows_for(store, **fields):
    return sorted(paths_of(store.query_rows(RowFilter(**fields))))


def test_rows_have_the_row_columns_and_merged_problems(filled):
    [row] = filled.query_rows(RowFilter(provider="local", text="portrait"))
    assert tuple(row) == ROW_COLUMNS
    assert (row["folder"], row["file"], row["bytes"], row["format"]) == ("/photos", "Portrait.jpg", 1000, "JPEG")
    assert row["problems"] == [{"code": "extension_mismatch", "message": MISMATCH.message, "blocking": False}]
    assert row["valid"] is True
    assert (row["head_seg"], row["cloth_seg"], row["face_count"]) == (True, None, 1)
    assert row["faces"] == [{"x": 1, "y": 2, "width": 3, "height": 4, "confidence": None, "crops": []}]
    assert row["result_urls"] == {}


def test_without_provider_every_result_is_a_row_and_unseen_files_are_pending(filled):
    rows = list(filled.query_rows())
    assert len(rows) == 9
    assert {(r["path"], r["provider"], r["status"]) for r in rows if r["provider"] is None} == {
        ("/photos/locked.jpg", None, "invalid")
    }


def test_provider_filter_shows_pending_files(filled):
    rows = {r["path"]: r for r in filled.query_rows(RowFilter(provider="local"))}
    assert len(rows) == 6
    assert {p: r["status"] for p, r in rows.items()} == {
        "/photos/Portrait.jpg": "checked",
        "/photos/landscape.png": "checked",
        "/photos/trip/Straße Ünïcode.jpg": "checked",
        "/photos/tiny.jpg": "invalid",
        "/photos/locked.jpg": "invalid",
        "/other/new.jpg": "pending",
    }
    assert {r["provider"] for r in rows.values()} == {"local"}
    assert rows["/photos/tiny.jpg"]["valid"] is False
    assert rows["/photos/locked.jpg"]["problems"][0]["code"] == "unreadable"


def test_content_problems_make_an_unchecked_file_invalid(store):
    store.save_probes([probe("/p/cut.jpg", sha(1), problems=(TRUNCATED,))])
    [row] = store.query_rows(RowFilter(provider="local"))
    assert (row["status"], row["valid"]) == ("invalid", False)


def test_status_filter(filled):
    assert rows_for(filled, provider="local", statuses=("pending", "invalid")) == [
        "/other/new.jpg",
        "/photos/locked.jpg",
        "/photos/tiny.jpg",
    ]
    assert rows_for(filled, statuses=("failed",)) == ["/other/new.jpg"]
    assert rows_for(filled, statuses=()) == []
    with pytest.raises(ValueError):
        list(filled.query_rows(RowFilter(statuses=("done",))))


def test_verdict_filter(filled):
    assert rows_for(filled, provider="local", verdict="avatar") == ["/photos/Portrait.jpg", "/photos/trip/Straße Ünïcode.jpg"]
    assert rows_for(filled, provider="local", verdict="asset") == ["/photos/landscape.png"]
    assert rows_for(filled, provider="local", verdict="tryon") == []
    assert rows_for(filled, provider="cometapi", verdict="avatar") == []  # head_seg unknown since the re-check
    with pytest.raises(ValueError):
        filled.count_rows(RowFilter(verdict="'yes' OR 1=1"))


def test_has_face_filter(filled):
    with_face = ["/photos/Portrait.jpg", "/photos/trip/Straße Ünïcode.jpg"]
    assert rows_for(filled, provider="local", has_face=True) == with_face
    assert rows_for(filled, provider="local", has_face=False) == ["/photos/landscape.png"]
    assert rows_for(filled, provider="cometapi", has_face=True) == with_face
    assert rows_for(filled, provider="cometapi", has_face=False) == ["/photos/landscape.png"]


def test_text_filter_ignores_case_beyond_ascii(filled):
    assert rows_for(filled, provider="local", text="PORTRAIT") == ["/photos/Portrait.jpg"]
    assert rows_for(filled, provider="local", text="straSSe ü") == ["/photos/trip/Straße Ünïcode.jpg"]
    assert rows_for(filled, provider="local", text="%") == []


def test_paths_under_filter(filled):
    assert rows_for(filled, provider="local", paths_under="/photos/trip") == ["/photos/trip/Straße Ünïcode.jpg"]
    assert rows_for(filled, provider="local", paths_under="/other/") == ["/other/new.jpg"]
    assert rows_for(filled, provider="local", paths_under="/photo") == []


def test_shas_filter(filled):
    assert rows_for(filled, provider="local", shas=(sha(1), sha(4))) == [
        "/other/new.jpg",
        "/photos/Portrait.jpg",
        "/photos/trip/Straße Ünïcode.jpg",
    ]
    assert rows_for(filled, shas=()) == []


def test_order_by_accepts_only_row_columns(filled):
    for name in ("path; DROP TABLE files", "nonsense", "f.path", ""):
        with pytest.raises(ValueError):
            list(filled.query_rows(order_by=name))
    assert filled.count_rows() == 9
    for name in ROW_COLUMNS:
        assert len(list(filled.query_rows(RowFilter(provider="local"), order_by=name, descending=True))) == 6


def test_order_limit_and_offset_page_through_rows(filled):
    everything = paths_of(filled.query_rows(RowFilter(provider="local"), order_by="width", descending=True))
    assert everything[0] in ("/photos/Portrait.jpg", "/photos/landscape.png", "/photos/trip/Straße Ünïcode.jpg", "/other/new.jpg")
    assert everything[-1] == "/photos/locked.jpg"  # no width: NULL sorts last when descending
    pages = [
        paths_of(filled.query_rows(RowFilter(provider="local"), order_by="width", descending=True, limit=4, offset=start))
        for start in (0, 4)
    ]
    assert pages[0] + pages[1] == everything
    assert paths_of(filled.query_rows(RowFilter(provider="local"))) == sorted(everything)


def test_pages_hold_the_same_rows_as_one_stream(filled):
    for order_by in ("path", "status", "provider", "problems", "cost"):
        streamed = list(filled.query_rows(order_by=order_by))
        paged = [row for start in range(0, 9, 2) for row in filled.query_rows(order_by=order_by, limit=2, offset=start)]
        assert paged == streamed


def test_count_rows_matches_query_rows(filled):
    filters = [
        None,
        RowFilter(provider="local"),
        RowFilter(provider="cometapi", statuses=("checked",)),
        RowFilter(has_face=True),
        RowFilter(text="photos", verdict="avatar"),
        RowFilter(paths_under="/photos", provider="useapi"),
    ]
    for row_filter in filters:
        assert filled.count_rows(row_filter) == len(list(filled.query_rows(row_filter)))


def test_summary(filled):
    summary = filled.summary(RowFilter(provider="cometapi"))
    assert summary.statuses == {"checked": 3, "invalid": 1, "rejected": 0, "failed": 1, "pending": 1}
    assert (summary.files, summary.images, summary.open) == (6, 4, 2)  # the unreadable file has no content hash
    assert summary.verdicts["avatar"] == {"yes": 0, "no": 1, "unknown": 3, "review": 0}
    assert summary.with_face == 2
    # The copy under another name cost nothing more.
    assert summary.cost == Decimal("0.55")
    local = filled.summary(RowFilter(provider="local"))
    assert local.verdicts["avatar"] == {"yes": 2, "no": 2, "unknown": 0, "review": 0}
    assert local.cost == Decimal(0)
    # Blocking problems once per file: too small (the provider's rule), unreadable (the file).
    assert local.problems == {"too_small": 1, "unreadable": 1}


def test_summary_of_what_a_scan_of_some_roots_covers(filled):
    """Roots are files and folders; the summary counts what ``export`` yields for them."""
    for roots in [("/photos/trip", "/other/new.jpg"), ("/photos/Portrait.jpg",), ("/photos",), ("/nowhere",)]:
        row_filter = RowFilter(provider="cometapi", roots=roots)
        rows = list(filled.query_rows(row_filter))
        summary = filled.summary(row_filter)
        assert summary.files == len(rows) == filled.count_rows(row_filter)
        assert summary.with_face == len(list(filled.query_rows(replace(row_filter, has_face=True))))
        assert summary.statuses["failed"] == sum(row["status"] == "failed" for row in rows)
    trip = filled.summary(RowFilter(provider="cometapi", roots=("/photos/trip", "/other/new.jpg")))
    assert (trip.files, trip.with_face, trip.cost, trip.open) == (2, 1, Decimal("0.35"), 1)
    # "/photos/trip" is not "/photos/tri": a prefix of a name is not its folder.
    assert filled.summary(RowFilter(roots=("/photos/tri",))).files == 0


def test_summary_counts_costs_it_cannot_read(store):
    store.save_probes([probe("/p/a.jpg", sha(1)), probe("/p/b.jpg", sha(2))])
    store.save_outcomes([checked(sha(1), "/p/a.jpg", cost="1.5"), checked(sha(2), "/p/b.jpg", cost="two credits")])
    summary = store.summary()
    assert (summary.cost, summary.unreadable_costs) == (Decimal("1.5"), 1)


def test_pages_found_by_key_are_the_slices_of_one_stream(filled):
    # Every order, NULLs included, both ways: walking forward by the last key, backward by
    # the first key, and from the end, gives exactly the rows of the unpaged query.
    for order_by in ROW_COLUMNS:
        for descending in (False, True):
            streamed = list(filled.query_rows(order_by=order_by, descending=descending))
            forward, after = [], None
            while True:
                page = filled.query_page(order_by=order_by, descending=descending, limit=2, after=after)
                if not page.rows:
                    break
                forward += page.rows
                after = page.last_key
            assert forward == streamed, (order_by, descending)
            last = filled.query_page(order_by=order_by, descending=descending, limit=3, backwards=True)
            assert last.rows == streamed[-3:]
            before = filled.query_page(order_by=order_by, descending=descending, limit=3, backwards=True, before=last.first_key)
            assert before.rows == streamed[-6:-3]
