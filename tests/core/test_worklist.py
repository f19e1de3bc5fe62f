"""The batch's files and images in SQLite temporary tables: what to read, what to prune,
one row per content, and pages that survive writes in between."""

import sqlite3

from core.models import Outcome, ProbedImage, Problem, ScannedFile, Status
from core.store import RowFilter
from core.worklist import Worklist
from tests.core.records import probe, sha

MISMATCH = Problem("extension_mismatch", "photo.jpg holds a PNG image.", blocking=False)
TRUNCATED = Problem("truncated", "The image data ends early.")


def found(p: ProbedImage) -> ScannedFile:
    return ScannedFile(p.path, p.size, p.mtime_ns)


def test_unprobed_lists_new_changed_and_unreadable_files_in_path_order_across_pages(store):
    same = probe("/p/same.jpg", sha(1))
    store.save_probes(
        [
            same,
            probe("/p/grown.jpg", sha(2), size=100),
            probe("/p/touched.jpg", sha(3), mtime_ns=5),
            ProbedImage("/p/locked.jpg", 10, 1, None, None, None, None, (Problem("unreadable", "Denied."),)),
        ]
    )
    worklist = Worklist(store, page_size=2)
    worklist.add_found(
        [
            ScannedFile("/p/zz-new.jpg", 1000, 1),
            found(same),
            ScannedFile("/p/grown.jpg", 200, 1),
            ScannedFile("/p/touched.jpg", 1000, 6),
            ScannedFile("/p/locked.jpg", 10, 1),  # unreadable last time: read it again
            ScannedFile("/p/new.jpg", 1000, 1),
        ]
    )
    assert (worklist.count_found(), worklist.count_current()) == (6, 1)
    listed = [f.path for f in worklist.unprobed()]
    assert listed == ["/p/grown.jpg", "/p/locked.jpg", "/p/new.jpg", "/p/touched.jpg", "/p/zz-new.jpg"]
    assert ScannedFile("/p/touched.jpg", 1000, 6) in list(worklist.unprobed())


def test_probes_saved_while_paging_are_neither_repeated_nor_skipped(store):
    files = [ScannedFile(f"/p/{n:03}.jpg", 1000, 1) for n in range(25)]
    worklist = Worklist(store, page_size=4)
    worklist.add_found(files)
    seen = []
    for n, f in enumerate(worklist.unprobed()):
        seen.append(f.path)
        store.save_probes([probe(f.path, sha(n))])
    assert seen == [f.path for f in files]
    assert list(worklist.unprobed()) == []


def test_a_path_found_twice_is_one_file(store):
    worklist = Worklist(store)
    worklist.add_found([ScannedFile("/p/a.jpg", 1, 1)])
    worklist.add_found([ScannedFile("/p/a.jpg", 1, 1), ScannedFile("/p/b.jpg", 1, 1)])
    assert worklist.count_found() == 2


def test_a_renamed_file_keeps_its_results(store):
    store.save_probes([probe("/p/old.jpg", sha(1))])
    store.save_outcomes([Outcome(sha(1), "local", "/p/old.jpg", Status.CHECKED)])
    store.save_probes([probe("/p/new.jpg", sha(1))])
    worklist = Worklist(store)
    worklist.add_found([ScannedFile("/p/new.jpg", 1000, 1)])
    assert worklist.prune_unseen("/p") == 1
    [row] = store.query_rows(RowFilter(provider="local"))
    assert (row["path"], row["status"]) == ("/p/new.jpg", "checked")


def test_prune_unseen_respects_folder_boundaries(store):
    # "0" follows "/" in code point order: the first name past the range of "/a/b/".
    paths = ["/a/b/x.jpg", "/a/b/sub/y.jpg", "/a/bc/z.jpg", "/a/b_c/w.jpg", "/a/b%/v.jpg", "/a/b.jpg", "/a/b0/u.jpg"]
    store.save_probes([probe(p, sha(n)) for n, p in enumerate(paths)])
    worklist = Worklist(store)
    worklist.add_found([ScannedFile("/a/b/x.jpg", 1000, 1)])
    assert worklist.prune_unseen("/a/b/") == 1
    assert sorted(r["path"] for r in store.query_rows()) == sorted(set(paths) - {"/a/b/sub/y.jpg"})
    assert worklist.prune_unseen("/a/b%") == 1
    assert worklist.prune_unseen("/a/b_c") == 1
    assert sorted(r["path"] for r in store.query_rows()) == ["/a/b.jpg", "/a/b/x.jpg", "/a/b0/u.jpg", "/a/bc/z.jpg"]


def test_forget_drops_only_the_named_files(store):
    store.save_probes([probe("/p/a.jpg", sha(1)), probe("/p/b.jpg", sha(2))])
    Worklist(store).forget(["/p/a.jpg", "/p/never-stored.jpg"])
    assert [r["path"] for r in store.query_rows()] == ["/p/b.jpg"]


def test_collect_images_keeps_each_content_once_under_its_first_path(store):
    store.save_probes(
        [
            probe("/p/b.jpg", sha(1), problems=(TRUNCATED, MISMATCH)),
            probe("/p/a-copy.jpg", sha(1), problems=(TRUNCATED,)),
            probe("/p/c.jpg", sha(2)),
            probe("/p/stale.jpg", sha(3), mtime_ns=1),  # changed since: its probe is not used
            ProbedImage("/p/locked.jpg", 10, 1, None, None, None, None, (Problem("unreadable", "Denied."),)),
            probe("/elsewhere/d.jpg", sha(4)),  # stored, but not part of this batch
        ]
    )
    store.save_outcomes(
        [
            Outcome(sha(2), "local", "/p/c.jpg", Status.FAILED, error_code="x", error="x"),
            Outcome(sha(1), "other", "/p/b.jpg", Status.CHECKED),
        ]
    )
    worklist = Worklist(store, page_size=1)
    worklist.add_found(
        [ScannedFile(p, 1000, 1) for p in ("/p/b.jpg", "/p/a-copy.jpg", "/p/c.jpg")]
        + [ScannedFile("/p/stale.jpg", 1000, 2), ScannedFile("/p/locked.jpg", 10, 1)]
    )
    assert worklist.collect_images("local") == (2, 1)
    planned = list(worklist.images())
    assert [(p.image.path, p.image.sha256, p.status) for p in planned] == [
        ("/p/a-copy.jpg", sha(1), None),  # the other provider's answer is not this one's
        ("/p/c.jpg", sha(2), Status.FAILED),
    ]
    assert planned[0].image.problems == (TRUNCATED,)
    # Collecting again (another provider) starts over rather than adding.
    assert worklist.collect_images("other") == (2, 1)
    assert [p.status for p in worklist.images()] == [Status.CHECKED, None]


def test_an_older_probe_of_a_path_is_not_taken_for_the_file_found_now(store):
    # Rewritten in place with its mtime kept: only the size tells the stored probe is old.
    store.save_probes([probe("/p/a.jpg", sha(1), size=1000)])
    worklist = Worklist(store)
    worklist.add_found([ScannedFile("/p/a.jpg", 2000, 1)])
    assert worklist.collect_images("local") == (0, 0)  # not read yet (a cancel): nothing to plan


def test_a_file_that_grew_between_the_walk_and_the_read_is_planned_as_read(store):
    worklist = Worklist(store)
    worklist.add_found([ScannedFile("/p/a.jpg", 1000, 1)])
    [found] = worklist.unprobed()
    read = probe(found.path, sha(2), size=1500, mtime_ns=found.mtime_ns)  # it grew meanwhile
    store.save_probes([read])
    worklist.update_sizes([read])
    assert worklist.collect_images("local") == (1, 0)
    assert [p.image for p in worklist.images()] == [read]


def test_images_survive_writes_between_pages(store):
    store.save_probes([probe(f"/p/{n:03}.jpg", sha(n)) for n in range(9)])
    worklist = Worklist(store, page_size=2)
    worklist.add_found([ScannedFile(f"/p/{n:03}.jpg", 1000, 1) for n in range(9)])
    worklist.collect_images("local")
    seen = []
    for planned in worklist.images():
        seen.append(planned.image.path)
        store.save_outcomes([Outcome(planned.image.sha256, "local", planned.image.path, Status.CHECKED)])
    assert seen == [f"/p/{n:03}.jpg" for n in range(9)]
    assert store.count_rows(RowFilter(provider="local", statuses=("checked",))) == 9


def test_the_tables_stay_out_of_the_results_file_and_do_not_lock_it(store, tmp_path):
    worklist = Worklist(store)
    worklist.add_found([ScannedFile("/p/a.jpg", 1, 1)])
    other = sqlite3.connect(tmp_path / "results.db", timeout=0)
    try:
        names = {row[0] for row in other.execute("SELECT name FROM sqlite_master")}
        assert not any(name.startswith("batch_") for name in names)
        other.execute("BEGIN IMMEDIATE")  # nobody else holds the write lock
        other.execute("ROLLBACK")
    finally:
        other.close()
