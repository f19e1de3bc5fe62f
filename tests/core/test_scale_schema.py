"""The indexes migration m181: the path search index is filled for old databases, kept in
step with the files, and the search through it finds what a scan of every path finds."""

import sqlite3


from core.models import Outcome, Status
from core.store import ANALYZE_AFTER_ROWS, MIGRATIONS, RowFilter, Store
from tests.core.records import probe, sha

NAMES = ["/p/Straße Ünïcode.jpg", "/p/STRASSE.jpg", "/p/a*b?c[d].jpg", "/p/abcd.jpg", "/p/x.jpg", '/p/quote"d.jpg']


def search_index(store):
    return sorted(row["path"] for row in store.db.query("SELECT path FROM file_paths"))


def found(store, text):
    return sorted(row["path"] for row in store.query_rows(RowFilter(text=text)))


def test_a_database_from_before_the_migration_gets_its_paths_indexed(tmp_path):
    path = tmp_path / "old.db"
    with Store(path) as store:
        store.save_probes([probe(name, sha(n)) for n, name in enumerate(NAMES)])
    # Back to the schema before m181, as an older version left it.
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TRIGGER files_search_insert; DROP TRIGGER files_search_delete; DROP TRIGGER files_search_rename;"
        "DROP TABLE file_paths;"
        "DROP INDEX idx_files_file; DROP INDEX idx_files_size;"
        "DELETE FROM _sqlite_migrations WHERE name = 'm181_scale_indexes';"
    )
    conn.close()
    with Store(path) as store:
        assert "m181_scale_indexes" in {m.name for m in MIGRATIONS.applied(store.db)}
        assert search_index(store) == sorted(NAMES)
        assert found(store, "strasse") == ["/p/STRASSE.jpg", "/p/Straße Ünïcode.jpg"]


def test_the_index_follows_new_changed_and_removed_files(store):
    store.save_probes([probe(name, sha(n)) for n, name in enumerate(NAMES)])
    store.save_probes([probe(NAMES[0], sha(9), size=5)])  # a re-scan updates a row
    assert search_index(store) == sorted(NAMES)
    store.db.execute("DELETE FROM files WHERE path IN (?, ?)", [NAMES[2], NAMES[5]])
    assert search_index(store) == sorted(set(NAMES) - {NAMES[2], NAMES[5]})
    store.db.execute("UPDATE files SET path = ? WHERE path = ?", ["/q/moved.jpg", NAMES[3]])
    assert search_index(store) == sorted(set(NAMES) - {NAMES[2], NAMES[3], NAMES[5]} | {"/q/moved.jpg"})


def test_searching_through_the_index_finds_what_every_path_would(store):
    store.save_probes([probe(name, sha(n)) for n, name in enumerate(NAMES)])
    for text in ["ünï", "ÜNÏ", "strasse", "*b?", "[d]", "c[d", "x.j", "ab", "quote\"d", "jpg", "nothing"]:
        expected = sorted(name for name in NAMES if text.casefold() in name.casefold())
        assert found(store, text) == expected, text


def test_the_search_reads_the_index_not_every_path(store):
    from core.store import _filtered_rows_sql

    sql, params = _filtered_rows_sql(RowFilter(text="abcd"))
    plan = " ".join(row["detail"] for row in store.db.query(f"EXPLAIN QUERY PLAN SELECT COUNT(*) FROM ({sql})", params))
    assert "file_paths" in plan and "SEARCH f USING PRIMARY KEY" in plan, plan


def test_a_big_batch_leaves_fresh_planner_statistics(tmp_path):
    with Store(tmp_path / "small.db") as store:
        store.save_probes([probe(f"/p/{n}.jpg", sha(n)) for n in range(ANALYZE_AFTER_ROWS - 1)])
    with Store(tmp_path / "big.db") as store:
        store.save_probes([probe(f"/p/{n}.jpg", sha(n)) for n in range(ANALYZE_AFTER_ROWS)])
    for name, analyzed in (("small.db", False), ("big.db", True)):
        conn = sqlite3.connect(tmp_path / name)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert ("sqlite_stat1" in tables and conn.execute("SELECT COUNT(*) FROM sqlite_stat1").fetchone()[0] > 0) == analyzed
        conn.close()


def test_counts_without_a_filter_match_the_rows_with_one_provider_or_several(store):
    store.save_probes([probe(f"/p/{n}.jpg", sha(n % 3)) for n in range(6)] + [probe("/p/unread.jpg", None)])
    assert store.count_rows() == len(list(store.query_rows())) == 7  # no results yet
    store.save_outcomes([Outcome(sha(0), "local", "/p/0.jpg", Status.FAILED), Outcome(sha(1), "local", "/p/1.jpg", Status.FAILED)])
    for row_filter in (None, RowFilter(provider="local"), RowFilter(provider="cometapi")):
        assert store.count_rows(row_filter) == len(list(store.query_rows(row_filter))) == 7
    store.save_outcomes([Outcome(sha(0), "cometapi", "/p/0.jpg", Status.FAILED)])  # sha 0: two files, two results
    assert store.count_rows() == len(list(store.query_rows())) == 9
    assert store.count_rows(RowFilter(provider="cometapi")) == len(list(store.query_rows(RowFilter(provider="cometapi")))) == 7
