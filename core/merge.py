"""Bring another machine's results into this database: ``kling-preflight merge OTHER.db``.

This is how several machines split a catalogue and combine their results: each checks its
share into its own database, and one merges the others' files in. Images are matched by
content hash, so the same photo under another path on another machine is the same image.

What comes along, and who wins when both databases know something:

- ``results``, per image and provider: a ``checked`` answer beats any other status; a
  ``failed`` row (no answer could be had) never replaces an answer (``checked``,
  ``rejected``, ``invalid``); between two rows of equal rank the newer ``checked_at`` wins,
  and on a tie this database's row stays. So merging the same file twice changes nothing.
- ``images``: content facts, the same on every machine; missing ones are added.
- ``files``: paths this database has never scanned are added (its own scans win), so the
  other machine's rows show in the table.
- ``memo`` (useapi's upload URLs): entries this database lacks are added.
- ``runs``: runs this database lacks (same provider and start time) are added, with new ids.

The other file is attached read-only and each merge is one transaction: a crash or a
``kill -9`` part-way leaves this database as it was.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core.store import Store, StoreError

#: How strongly a status answers for an image: a row replaces another of lower rank.
_RANK = "CASE {t}.status WHEN 'checked' THEN 2 WHEN 'failed' THEN 0 ELSE 1 END"

_SOURCE = "merge_source"


@dataclass(frozen=True)
class MergeReport:
    """What one merge brought in."""

    source: Path
    results_added: int
    results_replaced: int
    files: int
    images: int
    memo: int
    runs: int

    def sentence(self) -> str:
        return (
            f"From {self.source}: {self.results_added:,} results added, {self.results_replaced:,} replaced by newer "
            f"answers, {self.files:,} files, {self.images:,} images, {self.memo:,} remembered uploads, {self.runs:,} runs."
        )


def merge_databases(target: Store, sources: Sequence[str | Path]) -> list[MergeReport]:
    """Merge each of ``sources`` into ``target``, one transaction each, after checking them all.

    :raises StoreError: a source is missing, is this database, is not a Kling Preflight
        results database, is damaged or comes from a newer version; nothing was merged then.
    """
    paths = [Path(source) for source in sources]
    for path in paths:
        check_source(target, path)
    return [_merge_one(target, path) for path in paths]


def check_source(target: Store, path: Path) -> None:
    """Refuse a file that cannot be merged, with a sentence saying why.

    :raises StoreError: see :func:`merge_databases`.
    """
    if not path.is_file():
        raise StoreError(f"There is no results database at {path}.")
    if path.resolve() == target.path.resolve():
        raise StoreError(f"{path} is the results database being merged into; choose another machine's file.")
    try:
        with Store.open_readonly(path) as source:
            problems = [row[0] for row in source.db.execute("PRAGMA quick_check").fetchall()]
    except StoreError as exc:
        if "newer version" in str(exc):
            raise StoreError(
                f"{path} was made by a newer version of Kling Preflight; update this app before merging it."
            ) from exc
        raise
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is damaged and cannot be merged ({exc}).") from exc
    if problems != ["ok"]:
        raise StoreError(f"{path} is damaged and cannot be merged ({problems[0]}).")


def _merge_one(target: Store, path: Path) -> MergeReport:
    conn = target.db.conn
    conn.execute(f"ATTACH DATABASE ? AS {_SOURCE}", [path.resolve().as_uri() + "?mode=ro"])
    try:
        with target.writing():
            report = _copy_rows(conn, path)
        if report.results_added + report.results_replaced + report.files > 0:
            target.analyze()
        return report
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} could not be merged: {exc}. Nothing was changed.") from exc
    finally:
        conn.execute(f"DETACH DATABASE {_SOURCE}")


def _copy_rows(conn: sqlite3.Connection, path: Path) -> MergeReport:
    def changes(sql: str) -> int:
        return conn.execute(sql).rowcount

    def shared(table: str) -> str:
        # Only the columns both schemas have: an older source lacks later migrations' columns.
        mine = [row[1] for row in conn.execute(f"PRAGMA main.table_info({table})")]
        theirs = {row[1] for row in conn.execute(f"PRAGMA {_SOURCE}.table_info({table})")}
        return ", ".join(name for name in mine if name in theirs and not (table == "runs" and name == "id"))

    images = changes(f"INSERT OR IGNORE INTO main.images ({shared('images')}) SELECT {shared('images')} FROM {_SOURCE}.images")
    files = changes(f"INSERT OR IGNORE INTO main.files ({shared('files')}) SELECT {shared('files')} FROM {_SOURCE}.files")
    columns = shared("results")
    replaced = changes(
        f"""
        REPLACE INTO main.results ({columns})
        SELECT {', '.join('s.' + c.strip() for c in columns.split(','))}
        FROM {_SOURCE}.results AS s JOIN main.results AS t ON t.sha256 = s.sha256 AND t.provider = s.provider
        WHERE {_RANK.format(t='s')} > {_RANK.format(t='t')}
           OR ({_RANK.format(t='s')} = {_RANK.format(t='t')} AND s.checked_at > t.checked_at)
        """
    )
    added = changes(f"INSERT OR IGNORE INTO main.results ({columns}) SELECT {columns} FROM {_SOURCE}.results")
    memo = changes(f"INSERT OR IGNORE INTO main.memo ({shared('memo')}) SELECT {shared('memo')} FROM {_SOURCE}.memo")
    run_columns = shared("runs")
    runs = changes(
        f"""
        INSERT INTO main.runs ({run_columns}) SELECT {run_columns} FROM {_SOURCE}.runs AS s
        WHERE NOT EXISTS (
            SELECT 1 FROM main.runs AS t WHERE t.provider = s.provider AND t.started_at = s.started_at
        ) ORDER BY s.id
        """
    )
    return MergeReport(path, added, replaced, files, images, memo, runs)
