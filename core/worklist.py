"""The files one batch found and the images it will check, kept in SQLite, not in Python.

A scan of 100,000 files must not hold 100,000 Python objects: the runner writes each file it
finds into a temporary table here, reads back in pages the ones it has to read, and plans
from a second temporary table that holds one row per distinct image. Python memory stays the
same whatever the number of files; SQLite keeps the rows in a temporary file behind a page
cache of fixed size.

The tables live in the ``temp`` schema of the store's connection, so they vanish with it and
never touch the results database file. Like the store, a worklist belongs to one thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from .models import ProbedImage, ScannedFile, Status
from .plan import Action
from .store import Store, problems_from_json, under_clause

#: Rows per page read back; small enough that a page is a few hundred kilobytes at most.
PAGE_SIZE = 500
#: Page cache of the temporary tables, in KiB (SQLite's default is 2 MiB).
TEMP_CACHE_KIB = 1024

_SCHEMA = """
CREATE TABLE temp.batch_files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE temp.batch_images (
    seq INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    format TEXT,
    width INTEGER,
    height INTEGER,
    problems TEXT NOT NULL,
    notes TEXT NOT NULL,
    status TEXT,
    action TEXT
);
"""

# A found file whose stored probe is still good: same path, size and mtime, content known.
_CURRENT = "f.path = b.path AND f.size = b.size AND f.mtime_ns = b.mtime_ns AND f.sha256 IS NOT NULL"


@dataclass(frozen=True, slots=True)
class PlannedImage:
    """One distinct image of the batch (the first of its copies by path) and what the
    provider said about it before, if anything."""

    seq: int
    image: ProbedImage
    status: Status | None


class Worklist:
    """The batch's files and images, in temporary tables on ``store``'s connection.

    Used in this order: :meth:`add_found` while walking, :meth:`unprobed` to read what the
    store does not know yet, :meth:`prune_unseen` when the walk was complete, then
    :meth:`collect_images` and :meth:`images` to plan and work.
    """

    def __init__(self, store: Store, *, page_size: int = PAGE_SIZE) -> None:
        self._store = store
        self._page_size = page_size
        self._conn = store.db.conn
        # On disk whatever SQLite was built with: an in-memory temp store would put the
        # per-file cost right back into this process.
        self._conn.execute("PRAGMA temp_store = FILE")
        self._conn.execute(f"PRAGMA temp.cache_size = -{TEMP_CACHE_KIB}")
        self._conn.execute("DROP TABLE IF EXISTS temp.batch_files")
        self._conn.execute("DROP TABLE IF EXISTS temp.batch_images")
        self._conn.executescript(_SCHEMA)

    # -- the walk ------------------------------------------------------------------------

    def add_found(self, files: Sequence[ScannedFile]) -> None:
        """Record files the walk found; a path found twice keeps its last size and mtime."""
        with self._conn:  # a transaction on the temp schema only: the results file stays unlocked
            self._conn.executemany(
                "INSERT OR REPLACE INTO temp.batch_files (path, size, mtime_ns) VALUES (?, ?, ?)",
                ((f.path, f.size, f.mtime_ns) for f in files),
            )

    def count_found(self) -> int:
        return self._scalar("SELECT count(*) FROM temp.batch_files")

    def count_current(self) -> int:
        """Found files whose stored probe is still good, so they are not read again."""
        return self._scalar(f"SELECT count(*) FROM temp.batch_files AS b JOIN files AS f ON {_CURRENT}")

    def unprobed(self) -> Iterator[ScannedFile]:
        """The found files that must be read: new, changed, or unreadable last time.

        Read a page at a time in path order; probes saved between pages do not disturb it.
        """
        page_size = self._page_size
        after = ""
        while True:
            rows = self._conn.execute(
                f"""
                SELECT b.path, b.size, b.mtime_ns FROM temp.batch_files AS b
                WHERE b.path > ? AND NOT EXISTS (SELECT 1 FROM files AS f WHERE {_CURRENT})
                ORDER BY b.path LIMIT ?
                """,
                (after, page_size),
            ).fetchall()
            for path, size, mtime_ns in rows:
                yield ScannedFile(path, size, mtime_ns)
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    def update_sizes(self, probes: Sequence[ProbedImage]) -> None:
        """Record the size found on reading for files that changed since the walk, so their
        fresh probes (and not older ones) are what :meth:`collect_images` matches."""
        if probes:
            with self._conn:
                self._conn.executemany(
                    "UPDATE temp.batch_files SET size = ? WHERE path = ?", ((p.size, p.path) for p in probes)
                )

    def forget(self, paths: Iterable[str]) -> None:
        """Drop stored probes of files that are no longer images (their content changed
        into something else): an old probe must not keep showing them as the old image."""
        chunk = list(paths)
        if chunk:
            with self._store.writing():
                self._store.db.execute(
                    "DELETE FROM files WHERE path IN (SELECT value FROM json_each(?))", [json.dumps(chunk)]
                )

    def prune_unseen(self, root: str) -> int:
        """Forget stored files under the folder ``root`` that this walk did not find.

        Results stay: they belong to content, and come back if the file does.

        :returns: how many file rows were deleted.
        """
        where, params = under_clause("path", root)
        with self._store.writing():
            cursor = self._store.db.execute(
                f"DELETE FROM files WHERE {where} AND path NOT IN (SELECT path FROM temp.batch_files)", params
            )
        return cursor.rowcount

    # -- the plan ------------------------------------------------------------------------

    def collect_images(self, provider: str) -> tuple[int, int]:
        """Gather the batch's distinct readable images, each under its first path, in path
        order, with the status ``provider`` gave it before.

        :returns: (distinct images, files that are copies of another file's content).
        """
        with self._conn:
            self._conn.execute("DELETE FROM temp.batch_images")
            # With a single min(), SQLite takes the other columns from the row holding it.
            self._conn.execute(
                f"""
                INSERT INTO temp.batch_images
                    (path, sha256, size, mtime_ns, format, width, height, problems, notes, status)
                SELECT path, sha256, size, mtime_ns, format, width, height, problems, notes, status
                FROM (
                    SELECT min(f.path) AS path, f.sha256 AS sha256, f.size AS size, f.mtime_ns AS mtime_ns,
                           i.format AS format, i.width AS width, i.height AS height,
                           i.problems AS problems, f.notes AS notes, r.status AS status
                    FROM temp.batch_files AS b
                    JOIN files AS f ON {_CURRENT}
                    JOIN images AS i ON i.sha256 = f.sha256
                    LEFT JOIN results AS r ON r.sha256 = f.sha256 AND r.provider = ?
                    GROUP BY f.sha256
                )
                ORDER BY path
                """,
                (provider,),
            )
        distinct = self._scalar("SELECT count(*) FROM temp.batch_images")
        files = self._scalar(
            f"""
            SELECT count(*) FROM temp.batch_files AS b
            JOIN files AS f ON {_CURRENT}
            JOIN images AS i ON i.sha256 = f.sha256
            """
        )
        return distinct, files - distinct

    def set_actions(self, actions: Iterable[tuple[int, Action]]) -> None:
        """Note what the batch does with each image, as (seq, action), so later passes read
        only the images they act on."""
        with self._conn:
            self._conn.executemany("UPDATE temp.batch_images SET action = ? WHERE seq = ?", ((Action(a).value, s) for s, a in actions))

    def images(self, action: Action | None = None) -> Iterator[PlannedImage]:
        """The images :meth:`collect_images` gathered, in path order, a page at a time.

        Each page is read whole before it is handed out, so the caller may write to the
        store while it iterates.

        :param action: only the images :meth:`set_actions` gave this action; None for all.
        """
        page_size = self._page_size
        wanted = None if action is None else Action(action).value
        after = 0
        while True:
            rows = self._conn.execute(
                """
                SELECT seq, path, size, mtime_ns, sha256, format, width, height, problems, notes, status
                FROM temp.batch_images WHERE seq > ? AND (? IS NULL OR action = ?) ORDER BY seq LIMIT ?
                """,
                (after, wanted, wanted, page_size),
            ).fetchall()
            for seq, path, size, mtime_ns, sha256, fmt, width, height, problems, notes, status in rows:
                image = ProbedImage(
                    path=path, size=size, mtime_ns=mtime_ns, sha256=sha256, format=fmt, width=width, height=height,
                    # Content first, then what belongs to the path: as Store.cached_probes does.
                    problems=problems_from_json(problems) + problems_from_json(notes),
                )  # fmt: skip
                yield PlannedImage(seq, image, None if status is None else Status(status))
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    def _scalar(self, sql: str) -> int:
        return int(self._conn.execute(sql).fetchone()[0])
