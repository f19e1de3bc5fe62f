"""The results database: one SQLite file that the ``sqlite3`` and ``sqlite-utils`` tools read as well.

Content hashes identify images, so a renamed file keeps its results and a re-run skips what
is done. Booleans are stored as 0/1 (NULL when unknown), JSON columns as JSON text, times as
ISO 8601 text in UTC. A :class:`Store` belongs to one thread: the runner's writer thread owns
one, and every reader (the desktop table, an export) opens its own on the same file. The
file is in WAL mode so readers never block the writer.

Tables
------

``files`` — one row per file path a scan has seen.

- ``path`` TEXT, primary key: the absolute path.
- ``folder`` TEXT: the folder part of ``path``.
- ``file`` TEXT: the file name.
- ``sha256`` TEXT: hex SHA-256 of the content; NULL when the file could not be read.
- ``size`` INTEGER: bytes on disk when it was read.
- ``mtime_ns`` INTEGER: modification time in nanoseconds. When ``size`` and ``mtime_ns`` are
  unchanged, a re-scan reuses the stored probe instead of reading the file again.
- ``notes`` TEXT, JSON list of ``{code, message, blocking}``: problems of the path rather than
  of the content (``extension_mismatch``, ``unreadable``).
- ``scanned_at`` TEXT: when the file was last read.

``images`` — one row per distinct content.

- ``sha256`` TEXT, primary key.
- ``bytes`` INTEGER: the content's size.
- ``format`` TEXT: Pillow's format name (``JPEG``, ``PNG``, ...); NULL when not an image.
- ``width``, ``height`` INTEGER: pixels; NULL when unknown.
- ``problems`` TEXT, JSON list of ``{code, message, blocking}``: what is wrong with the content
  itself (``empty``, ``not_an_image``, ``corrupt``, ``truncated``, ``decompression_bomb``).
- ``valid`` INTEGER 0/1: 1 when none of ``problems`` is blocking.
- ``first_seen_at`` TEXT: when this content was first read.
- ``quality`` TEXT, JSON object: the local measurement (:class:`core.quality.PhotoQuality`:
  sharpness, brightness, clipped shares and their grid); NULL until an answer was measured.

``results`` — one row per content and provider; a re-check replaces the row.

- ``sha256`` TEXT and ``provider`` TEXT: the primary key.
- ``status`` TEXT: ``checked`` (the provider answered), ``invalid`` (broke the local rules,
  never sent), ``rejected`` (the provider refused the image), ``failed`` (no answer could be had).
- ``path`` TEXT: the path the image was checked as.
- ``valid`` INTEGER 0/1: 1 when none of ``problems`` is blocking.
- ``problems`` TEXT, JSON list of ``{code, message, blocking}``: the image against this
  provider's input rules.
- ``head_seg``, ``face_seg``, ``cloth_seg``, ``object_seg`` INTEGER: 1 found, 0 looked for and
  not found, NULL unknown.
- ``face_count`` INTEGER: faces located; NULL when the provider does not locate faces.
- ``faces`` TEXT, JSON list of ``{x, y, width, height, confidence, crops}`` (pixels of the
  original file; ``crops`` are file paths or URLs); NULL when the provider does not locate faces.
- ``result_urls`` TEXT, JSON object: result image per type, e.g. ``{"head_seg": "https://..."}``.
- ``verdict_avatar``, ``verdict_tryon``, ``verdict_asset`` TEXT: ``yes``, ``no``, ``unknown``
  or ``review`` (usable, but a person should look), whether the image is ready for that
  workflow (:func:`core.models.verdicts`).
- ``warnings`` TEXT, JSON list of ``{code, message}``: the quality warnings
  (:func:`core.quality.warnings_for`) behind a ``review``; ``[]`` when none applies.
- ``cost`` TEXT: what the call cost, as the provider wrote it.
- ``request_id`` TEXT: the provider's request id.
- ``raw`` TEXT: the provider's answer, verbatim.
- ``error_code`` TEXT, ``error`` TEXT: why the check failed or was rejected.
- ``attempts`` INTEGER: calls made; ``duration_ms`` INTEGER: time spent on them.
- ``checked_at`` TEXT: when the row was written.

``memo`` — small values a provider remembers across runs (useapi: each upload's URL).

- ``provider``, ``sha256``, ``kind`` TEXT: the primary key; ``value`` TEXT; ``created_at`` TEXT.

``runs`` — one row per batch.

- ``id`` INTEGER primary key; ``provider`` TEXT; ``started_at``, ``finished_at`` TEXT;
  ``state`` TEXT: ``running``, ``finished``, ``stopped``, ``cancelled`` or ``interrupted``
  (still ``running`` when a later run started: the process was killed);
  ``options`` TEXT, JSON object: the batch's options; ``counts`` TEXT, JSON object: images per
  outcome when it ended; ``pid`` INTEGER: the process that ran it.

``calls`` — the journal of calls in flight: one row per paid or side-effecting call (a
CometAPI recognition, a useapi upload), committed before the call goes out and deleted when
its answer is stored. A row left behind means nobody knows what became of that call.

- ``provider``, ``sha256``, ``kind`` TEXT: the primary key; ``kind`` is the provider's name
  for the call, and when a memo value of that kind is stored the call's answer is kept.
- ``path`` TEXT: the file sent; ``run_id`` INTEGER: the run that sent it; ``started_at`` TEXT.

``_sqlite_migrations`` is sqlite-utils' record of the applied schema migrations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from core import quality as _quality
from core.errors import SaysSentence
if TYPE_CHECKING:
    from core.fix import Box

from core.models import FLAG_TYPES, VERDICT_RULES, Face, Outcome, ProbedImage, Problem, ScannedFile, Status, Verdict, is_valid, verdicts

#: Problem codes that belong to a path rather than to the content behind it.
PATH_LEVEL_CODES: frozenset[str] = frozenset({"extension_mismatch", "unreadable"})

#: Row statuses a filter may ask for: the four stored ones, plus ``pending`` (no result yet).
ROW_STATUSES: tuple[str, ...] = tuple(s.value for s in Status) + ("pending",)

#: The values a verdict column holds.
VERDICT_VALUES: tuple[str, ...] = tuple(v.value for v in Verdict)

RUN_STATES: frozenset[str] = frozenset({"running", "finished", "stopped", "cancelled", "interrupted"})

BUSY_TIMEOUT_MS = 10_000
#: Rows saved by one store after which closing it refreshes the planner's statistics.
ANALYZE_AFTER_ROWS = 10_000
#: Paths per lookup query in :meth:`Store.cached_probes`.
LOOKUP_CHUNK = 2_000

MIGRATIONS = Migrations("kling_preflight")


@MIGRATIONS()
def m001_initial_schema(db: Database) -> None:
    # Spelled out rather than built from today's constants: a migration must create the
    # same schema forever.
    statements = [
        # Without rowid: stored in path order, so the table's default order reads sequentially.
        """CREATE TABLE files (
    path TEXT PRIMARY KEY,
    folder TEXT NOT NULL,
    file TEXT NOT NULL,
    sha256 TEXT,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    notes TEXT NOT NULL DEFAULT '[]',
    scanned_at TEXT NOT NULL
) WITHOUT ROWID""",
        """CREATE TABLE images (
    sha256 TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    format TEXT,
    width INTEGER,
    height INTEGER,
    problems TEXT NOT NULL DEFAULT '[]',
    valid INTEGER NOT NULL CHECK (valid IN (0, 1)),
    first_seen_at TEXT NOT NULL
)""",
        """CREATE TABLE results (
    sha256 TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('checked', 'invalid', 'rejected', 'failed')),
    path TEXT,
    valid INTEGER NOT NULL CHECK (valid IN (0, 1)),
    problems TEXT NOT NULL DEFAULT '[]',
    head_seg INTEGER CHECK (head_seg IN (0, 1)),
    face_seg INTEGER CHECK (face_seg IN (0, 1)),
    cloth_seg INTEGER CHECK (cloth_seg IN (0, 1)),
    object_seg INTEGER CHECK (object_seg IN (0, 1)),
    face_count INTEGER,
    faces TEXT,
    result_urls TEXT NOT NULL DEFAULT '{}',
    verdict_avatar TEXT CHECK (verdict_avatar IN ('yes', 'no', 'unknown')),
    verdict_tryon TEXT CHECK (verdict_tryon IN ('yes', 'no', 'unknown')),
    verdict_asset TEXT CHECK (verdict_asset IN ('yes', 'no', 'unknown')),
    cost TEXT,
    request_id TEXT,
    raw TEXT,
    error_code TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER,
    checked_at TEXT NOT NULL,
    PRIMARY KEY (sha256, provider)
)""",
        """CREATE TABLE memo (
    provider TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (provider, sha256, kind)
)""",
        """CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    state TEXT NOT NULL CHECK (state IN ('running', 'finished', 'stopped', 'cancelled')),
    options TEXT NOT NULL DEFAULT '{}',
    counts TEXT
)""",
        "CREATE INDEX idx_files_sha256 ON files (sha256)",
        "CREATE INDEX idx_files_folder ON files (folder)",
        "CREATE INDEX idx_results_provider_status ON results (provider, status)",
        "CREATE INDEX idx_results_status ON results (status)",
        "CREATE INDEX idx_results_face_count ON results (face_count)",
        "CREATE INDEX idx_results_verdict_avatar ON results (verdict_avatar)",
        "CREATE INDEX idx_results_verdict_tryon ON results (verdict_tryon)",
        "CREATE INDEX idx_results_verdict_asset ON results (verdict_asset)",
    ]
    for statement in statements:
        db.execute(statement)


@MIGRATIONS()
def m101_call_journal(db: Database) -> None:
    # A run a kill left open is closed as 'interrupted', a state the CHECK of m001 refuses:
    # SQLite cannot alter a CHECK, so the table is rebuilt (ids kept).
    statements = [
        """CREATE TABLE runs_new (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    state TEXT NOT NULL CHECK (state IN ('running', 'finished', 'stopped', 'cancelled', 'interrupted')),
    options TEXT NOT NULL DEFAULT '{}',
    counts TEXT,
    pid INTEGER
)""",
        """INSERT INTO runs_new (id, provider, started_at, finished_at, state, options, counts)
    SELECT id, provider, started_at, finished_at, state, options, counts FROM runs""",
        "DROP TABLE runs",
        "ALTER TABLE runs_new RENAME TO runs",
        """CREATE TABLE calls (
    provider TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT,
    run_id INTEGER,
    started_at TEXT NOT NULL,
    PRIMARY KEY (provider, sha256, kind)
) WITHOUT ROWID""",  # a handful of rows, written twice per call: one page each time
    ]
    for statement in statements:
        db.execute(statement)



@MIGRATIONS()
def m151_quality(db: Database) -> None:
    """Task 15: the local quality measurement per image, the warnings per result, and the
    fourth verdict value ``review``.

    SQLite cannot change a CHECK constraint in place, so ``results`` is rebuilt the way its
    documentation describes: a new table from the stored CREATE statement with only the
    verdict checks widened, every row copied with its rowid, and the indexes and triggers
    that were on the old table (whoever added them) made again.
    """
    import re

    db.execute("ALTER TABLE images ADD COLUMN quality TEXT")
    table_sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'results'").fetchone()[0]
    attached = [
        row[0]
        for row in db.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'results' AND type IN ('index', 'trigger') AND sql IS NOT NULL"
        ).fetchall()
    ]
    new_sql = re.sub(r"(verdict_\w+ IN \('yes', 'no', 'unknown')\)", r"\1, 'review')", table_sql)
    new_sql = re.sub(r"^CREATE TABLE \"?results\"?", "CREATE TABLE results_m151", new_sql)
    db.execute(new_sql)
    columns = ", ".join(f'"{row[1]}"' for row in db.execute("PRAGMA table_info(results)").fetchall())
    db.execute(f"INSERT INTO results_m151 (rowid, {columns}) SELECT rowid, {columns} FROM results")
    db.execute("DROP TABLE results")
    db.execute("ALTER TABLE results_m151 RENAME TO results")
    for statement in attached:
        db.execute(statement)
    db.execute("ALTER TABLE results ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]'")


@MIGRATIONS()
def m161_copies(db: Database) -> None:
    """Which photo each copy made by ``fix`` came from, so a check of the copy shows on the
    original's row (its ``ready_copy``)."""
    db.execute(
        """CREATE TABLE copies (
    copy_path TEXT PRIMARY KEY,
    copy_sha256 TEXT NOT NULL,
    original_path TEXT NOT NULL,
    original_sha256 TEXT NOT NULL,
    changes TEXT NOT NULL DEFAULT '',
    made_at TEXT NOT NULL
)"""
    )
    db.execute("CREATE INDEX idx_copies_original ON copies (original_sha256)")


@MIGRATIONS()
def m181_scale_indexes(db: Database) -> None:
    # Chosen from bench/scale.py at a million rows. Sorting the table by file name or size
    # reads its pages through these indexes instead of sorting every row.
    db.execute("CREATE INDEX idx_files_file ON files (file)")
    db.execute("CREATE INDEX idx_files_size ON files (size)")
    # The text search: a trigram index of each path, case-folded in Python (casefold(), as the
    # search folds the text typed), so a search reads the matching paths instead of every
    # path. Kept in step with files by triggers.
    db.execute(
        "CREATE VIRTUAL TABLE file_paths USING fts5(folded, path UNINDEXED, tokenize='trigram case_sensitive 1', detail='none')"
    )
    db.execute(
        """CREATE TRIGGER files_search_insert AFTER INSERT ON files BEGIN
    INSERT INTO file_paths (folded, path) VALUES (casefold(new.path), new.path);
END"""
    )
    db.execute(
        """CREATE TRIGGER files_search_delete AFTER DELETE ON files BEGIN
    DELETE FROM file_paths WHERE folded GLOB glob_literal(casefold(old.path)) AND path = old.path;
END"""
    )
    db.execute(
        """CREATE TRIGGER files_search_rename AFTER UPDATE OF path ON files BEGIN
    DELETE FROM file_paths WHERE folded GLOB glob_literal(casefold(old.path)) AND path = old.path;
    INSERT INTO file_paths (folded, path) VALUES (casefold(new.path), new.path);
END"""
    )
    db.execute("INSERT INTO file_paths (folded, path) SELECT casefold(path), path FROM files")


class StoreError(SaysSentence):
    """The results database cannot be used; the message says why in a sentence."""


@dataclass(frozen=True)
class RowFilter:
    """Which rows :meth:`Store.query_rows` returns. Every field left None matches everything.

    ``verdict`` names a workflow (``avatar``, ``tryon``, ``asset``) whose verdict must be yes;
    ``has_face`` True keeps images known to show a face, False those known not to;
    ``text`` is a case-insensitive substring of the path; ``paths_under`` a folder;
    ``roots`` files and folders, any of which a path must be or be inside (what a scan of
    those roots covers).
    """

    provider: str | None = None
    statuses: tuple[str, ...] | None = None
    verdict: str | None = None
    has_face: bool | None = None
    text: str | None = None
    paths_under: str | None = None
    shas: tuple[str, ...] | None = None
    roots: tuple[str, ...] | None = None
    #: True: only rows with a verdict of ``review`` (a person should look).
    review: bool | None = None
    #: True: only images whose providers disagree about whether there is a face.
    disagree: bool | None = None


#: The keys of every row :meth:`Store.query_rows` yields, and the names ``order_by`` accepts.
ROW_COLUMNS: tuple[str, ...] = (
    "path", "folder", "file", "sha256", "bytes", "format", "width", "height", "provider",
    "status", "valid", "problems", *FLAG_TYPES, "face_count", "faces", "result_urls",
    *(f"verdict_{name}" for name in VERDICT_RULES), "warnings",
    "cost", "request_id", "raw", "error_code", "error", "attempts", "duration_ms", "checked_at",
    "ready_copy",
)  # fmt: skip

# The columns of a row, from files f, images i and results r.
_ROW_FIELDS = """
    f.path AS path, f.folder AS folder, f.file AS file, f.sha256 AS sha256, f.size AS bytes,
    i.format AS format, i.width AS width, i.height AS height,
    COALESCE(r.provider, :provider) AS provider,
    CASE
        WHEN r.status IS NOT NULL THEN r.status
        WHEN f.sha256 IS NULL OR i.valid = 0 THEN 'invalid'
        ELSE 'pending'
    END AS status,
    CASE
        WHEN f.sha256 IS NULL OR i.valid = 0 OR r.valid = 0 THEN 0
        WHEN f.notes <> '[]' AND EXISTS (
            SELECT 1 FROM json_each(f.notes) WHERE json_extract(value, '$.blocking')
        ) THEN 0
        ELSE 1
    END AS valid,
    f.notes AS file_notes, i.problems AS image_problems, r.problems AS result_problems,
    r.head_seg AS head_seg, r.face_seg AS face_seg, r.cloth_seg AS cloth_seg, r.object_seg AS object_seg,
    r.face_count AS face_count, r.faces AS faces, r.result_urls AS result_urls,
    r.verdict_avatar AS verdict_avatar, r.verdict_tryon AS verdict_tryon, r.verdict_asset AS verdict_asset,
    r.warnings AS warnings,
    r.cost AS cost, r.request_id AS request_id, r.raw AS raw, r.error_code AS error_code, r.error AS error,
    r.attempts AS attempts, r.duration_ms AS duration_ms, r.checked_at AS checked_at,
    r.rowid AS result_rowid,
    (
        SELECT c.copy_path FROM copies AS c JOIN results AS rc ON rc.sha256 = c.copy_sha256
        WHERE c.original_sha256 = f.sha256 AND rc.status = 'checked' AND rc.valid = 1
          AND (COALESCE(r.provider, :provider) IS NULL OR rc.provider = COALESCE(r.provider, :provider))
        ORDER BY c.made_at DESC LIMIT 1
    ) AS ready_copy
"""

# One row per file path and result. ``:provider`` restricts the results join when a filter
# names a provider; files without a result then show as pending for it.
_ROW_SOURCE = """
FROM files AS f
LEFT JOIN images AS i ON i.sha256 = f.sha256
LEFT JOIN results AS r ON r.sha256 = f.sha256 {provider_join}
"""

# The rows of one page, given as a JSON list of [file path, result rowid or null].
_PAGE_SOURCE = """
FROM json_each(:page) AS page
JOIN files AS f ON f.path = json_extract(page.value, '$[0]')
LEFT JOIN images AS i ON i.sha256 = f.sha256
LEFT JOIN results AS r ON r.rowid = json_extract(page.value, '$[1]')
"""

# An image is known to show a face when a provider located one, or (for providers that do not
# locate faces) when its face flag is set; known not to, when the count or the flag says so.
_HAS_FACE = "(face_count > 0 OR (face_count IS NULL AND face_seg = 1))"
_HAS_NO_FACE = "(face_count = 0 OR (face_count IS NULL AND face_seg = 0))"
# Images with at least one provider saying there is a face and another saying there is none.
_DISAGREE = f"""sha256 IN (
    SELECT sha256 FROM results
    GROUP BY sha256
    HAVING MAX(CASE WHEN {_HAS_FACE} THEN 1 WHEN {_HAS_NO_FACE} THEN 0 END)
         > MIN(CASE WHEN {_HAS_FACE} THEN 1 WHEN {_HAS_NO_FACE} THEN 0 END)
)"""
_NEEDS_REVIEW = " OR ".join(f"verdict_{w} = 'review'" for w in VERDICT_RULES)

# How each row column sorts; JSON columns sort by what they hold rather than by their text.
_ORDER_EXPRESSIONS: Mapping[str, tuple[str, ...]] = {
    **{name: (name,) for name in ROW_COLUMNS},
    "problems": ("valid", "result_problems", "image_problems", "file_notes"),
    "faces": ("face_count",),
    "cost": ("CAST(cost AS REAL)",),
}

# 1 when the results hold at most one provider (two index lookups, whatever the size).
_ONE_PROVIDER = """SELECT (SELECT provider FROM results ORDER BY provider LIMIT 1)
    IS (SELECT provider FROM results ORDER BY provider DESC LIMIT 1) AS one"""

#: Row columns never NULL: they sort as they are. Others sort by a pair (known?, value), so
#: a row key has no NULL and compares as a row value (NULL compares as nothing).
_NEVER_NULL = frozenset({"path", "folder", "file", "bytes", "status", "valid"})

#: A row's place in an order: its sort values, then path and provider (see :meth:`Store.query_page`).
RowKey = tuple[Any, ...]


@dataclass(frozen=True)
class RowPage:
    """Rows of one page, with the keys of its first and last row (None when empty)."""

    rows: list[dict[str, Any]]
    first_key: RowKey | None
    last_key: RowKey | None


class Store:
    """The results database at ``path``: created if missing, migrated to the current schema.

    :param path: the database file; its folder is created when missing.
    :raises StoreError: the file is not SQLite, was made by another program or a newer
        version, or cannot be opened.
    """

    def __init__(self, path: str | Path, *, _readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = _readonly
        if not _readonly:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"Cannot create the folder for the results database {self.path}: {e.strerror}.") from e
        self.db = _open(self.path, readonly=_readonly)
        self._written = 0  # rows saved: a big batch gets fresh statistics on close()

    @classmethod
    def open_readonly(cls, path: str | Path) -> "Store":
        """Open an existing results database for reading only (viewers, exports).

        :param path: the database file.
        :returns: a store whose write methods fail.
        :raises StoreError: the file is missing, is not a Kling Preflight database, or needs
            an upgrade that a read-only store cannot make.
        """
        if not Path(path).is_file():
            raise StoreError(f"There is no results database at {path}.")
        return cls(path, _readonly=True)

    def close(self) -> None:
        if self._written >= ANALYZE_AFTER_ROWS:
            with contextlib.suppress(sqlite3.Error):  # statistics only speed queries up
                self.analyze()
        self.db.close()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """A write transaction that takes the write lock first (``BEGIN IMMEDIATE``).

        sqlite-utils' ``atomic()`` begins a deferred transaction; when it reads before it
        writes, SQLite cannot wait for a lock another program holds for a moment and fails
        at once with "database is locked". Taking the lock up front makes busy_timeout apply.
        """
        if self.db.conn.in_transaction:
            with self.db.atomic():
                yield
            return
        with _immediate(self.db.conn):
            yield

    def analyze(self) -> None:
        """Refresh the query planner's statistics; after a big batch of writes (a scan, a
        merge) they may no longer fit, and a bad plan at a million rows costs seconds."""
        self.db.execute("PRAGMA analysis_limit = 1000")  # sample: ANALYZE stays in milliseconds
        self.db.execute("ANALYZE main")

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- scanning -------------------------------------------------------------------------

    def cached_probes(self, files: Iterable[ScannedFile]) -> dict[str, ProbedImage]:
        """The stored probe of each file whose path, size and mtime are unchanged.

        Files that could not be read last time are not returned, so they are tried again
        (a permission change leaves the mtime alone).

        :param files: what a scan found.
        :returns: path -> stored probe, for the unchanged files only.
        """
        wanted = {f.path: f for f in files}
        paths = list(wanted)
        found: dict[str, ProbedImage] = {}
        for start in range(0, len(paths), LOOKUP_CHUNK):
            chunk = paths[start : start + LOOKUP_CHUNK]
            rows = self.db.query(
                """
                SELECT f.path, f.size, f.mtime_ns, f.sha256, f.notes,
                       i.format, i.width, i.height, i.problems
                FROM files AS f JOIN images AS i ON i.sha256 = f.sha256
                WHERE f.path IN (SELECT value FROM json_each(?))
                """,
                [json.dumps(chunk)],
            )
            for row in rows:
                scanned = wanted[row["path"]]
                if scanned.size != row["size"] or scanned.mtime_ns != row["mtime_ns"]:
                    continue
                problems = problems_from_json(row["problems"]) + problems_from_json(row["notes"])
                found[row["path"]] = ProbedImage(
                    path=row["path"],
                    size=row["size"],
                    mtime_ns=row["mtime_ns"],
                    sha256=row["sha256"],
                    format=row["format"],
                    width=row["width"],
                    height=row["height"],
                    problems=problems,
                )
        return found

    def save_probes(self, probes: Sequence[ProbedImage]) -> None:
        """Record probed files and their content, in one transaction.

        Path-level problems (:data:`PATH_LEVEL_CODES`) go to ``files.notes``, the rest to
        ``images.problems``; :meth:`cached_probes` puts them back together, content first.

        :param probes: the probes to record; a path already stored is replaced.
        """
        now = _now()
        file_rows: list[dict[str, Any]] = []
        image_rows: dict[str, dict[str, Any]] = {}
        for probe in probes:
            notes = [p for p in probe.problems if p.code in PATH_LEVEL_CODES]
            content = [p for p in probe.problems if p.code not in PATH_LEVEL_CODES]
            folder, file = os.path.split(probe.path)
            file_rows.append(
                {
                    "path": probe.path,
                    "folder": folder,
                    "file": file,
                    "sha256": probe.sha256,
                    "size": probe.size,
                    "mtime_ns": probe.mtime_ns,
                    "notes": problems_to_json(notes),
                    "scanned_at": now,
                }
            )
            if probe.sha256 is not None:
                image_rows[probe.sha256] = {
                    "sha256": probe.sha256,
                    "bytes": probe.size,
                    "format": probe.format,
                    "width": probe.width,
                    "height": probe.height,
                    "problems": problems_to_json(content),
                    "valid": int(is_valid(content)),
                }
        with self.writing():
            if file_rows:
                self.db["files"].upsert_all(file_rows, pk="path")
                self._written += len(file_rows)
            for row in image_rows.values():
                # Spelled out because an upsert must not overwrite first_seen_at.
                self.db.execute(
                    """
                    INSERT INTO images (sha256, bytes, format, width, height, problems, valid, first_seen_at)
                    VALUES (:sha256, :bytes, :format, :width, :height, :problems, :valid, :now)
                    ON CONFLICT (sha256) DO UPDATE SET
                        bytes = excluded.bytes, format = excluded.format, width = excluded.width,
                        height = excluded.height, problems = excluded.problems, valid = excluded.valid
                    """,
                    {**row, "now": now},
                )

    # --- checking -------------------------------------------------------------------------

    def known_statuses(self, provider: str) -> dict[str, Status]:
        """:returns: sha256 -> status of every image this provider has a result for."""
        rows = self.db.query("SELECT sha256, status FROM results WHERE provider = ?", [provider])
        return {row["sha256"]: Status(row["status"]) for row in rows}

    def save_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Record final outcomes in one transaction; a re-check replaces the earlier row.

        :param outcomes: one per image and provider.
        """
        now = _now()
        rows = [_result_row(outcome, now) for outcome in outcomes]
        measured = [(o.quality.to_json(), o.sha256) for o in outcomes if o.quality is not None]
        if rows:
            with self.writing():
                self.db["results"].upsert_all(rows, pk=("sha256", "provider"))
                self._written += len(rows)
                # The answer replaces the journal's record of the call (see ``calls``).
                self.db.execute(
                    "DELETE FROM calls WHERE (provider, sha256) IN (SELECT json_extract(value, '$[0]'), "
                    "json_extract(value, '$[1]') FROM json_each(?))",
                    [json.dumps([[o.provider, o.sha256] for o in outcomes])],
                )
                if measured:
                    self.db.conn.executemany("UPDATE images SET quality = ? WHERE sha256 = ?", measured)

    def measured(self, sha256: str) -> "_quality.PhotoQuality | None":
        """:returns: the stored local measurement of one image, or None."""
        row = next(self.db.query("SELECT quality FROM images WHERE sha256 = ?", [sha256]), None)
        return _quality.PhotoQuality.from_json(row["quality"]) if row else None

    def unmeasured(self, limit: int = 500) -> list[tuple[str, list[str]]]:
        """Images with a checked result but no measurement (checked before measuring began).

        :returns: up to ``limit`` of (sha256, the paths it was seen at).
        """
        rows = self.db.query(
            """
            SELECT i.sha256, json_group_array(f.path) AS paths
            FROM images AS i JOIN files AS f ON f.sha256 = i.sha256
            WHERE i.quality IS NULL AND EXISTS (
                SELECT 1 FROM results AS r WHERE r.sha256 = i.sha256 AND r.status = 'checked'
            )
            GROUP BY i.sha256 LIMIT :limit
            """,
            {"limit": limit},
        )
        return [(row["sha256"], json.loads(row["paths"])) for row in rows]

    def save_measurements(self, measured: Iterable[tuple[str, "_quality.PhotoQuality | None"]]) -> None:
        """Store measurements made apart from a check; None marks an image that could not be
        measured (its file is gone or changed), so it is not tried again."""
        values = [(q.to_json() if q is not None else "{}", sha) for sha, q in measured]
        if values:
            with self.writing():
                self.db.conn.executemany("UPDATE images SET quality = ? WHERE sha256 = ?", values)

    def recompute_warnings(self, thresholds: "_quality.Thresholds" = _quality.Thresholds()) -> int:
        """Work out every checked result's warnings and verdicts again, from the stored
        answers and the stored measurement (after the thresholds changed). Calls no provider
        and reads no image file.

        :returns: how many results changed.
        """
        changed = []
        rows = self.db.query(
            """
            SELECT r.rowid AS id, r.valid, r.faces, r.warnings, i.quality, i.width, i.height,
                   r.head_seg, r.face_seg, r.cloth_seg, r.object_seg,
                   r.verdict_avatar, r.verdict_tryon, r.verdict_asset
            FROM results AS r LEFT JOIN images AS i ON i.sha256 = r.sha256
            WHERE r.status = 'checked'
            """
        )
        for row in rows:
            size = (row["width"], row["height"]) if row["width"] and row["height"] else None
            faces = json.loads(row["faces"]) if row["faces"] else None
            found = _quality.warnings_for(_quality.PhotoQuality.from_json(row["quality"]), faces, thresholds, size=size)
            flags = {name: None if row[name] is None else bool(row[name]) for name in FLAG_TYPES}
            decided = verdicts(bool(row["valid"]), flags, _quality.review_workflows(found))
            update = {f"verdict_{w}": v.value for w, v in decided.items()}
            update["warnings"] = _quality.warnings_to_json(found)
            if any(row[name] != value for name, value in update.items()):
                changed.append({**update, "id": row["id"]})
        if changed:
            with self.writing():
                self.db.conn.executemany(
                    "UPDATE results SET verdict_avatar = :verdict_avatar, verdict_tryon = :verdict_tryon, "
                    "verdict_asset = :verdict_asset, warnings = :warnings WHERE rowid = :id",
                    changed,
                )
        return len(changed)

    def memo_items(self, provider: str) -> dict[tuple[str, str], str]:
        """:returns: (sha256, kind) -> value of everything ``provider`` remembered."""
        rows = self.db.query("SELECT sha256, kind, value FROM memo WHERE provider = ?", [provider])
        return {(row["sha256"], row["kind"]): row["value"] for row in rows}

    def save_memo(self, provider: str, items: Iterable[tuple[str, str, str]]) -> None:
        """Remember values for ``provider``, in one transaction.

        :param items: (sha256, kind, value) triples; a known (sha256, kind) gets the new value.
        """
        now = _now()
        rows = [
            {"provider": provider, "sha256": sha, "kind": kind, "value": value, "created_at": now}
            for sha, kind, value in items
        ]
        if rows:
            with self.writing():
                self.db["memo"].upsert_all(rows, pk=("provider", "sha256", "kind"))
                # A call whose answer is this value is answered (a useapi upload by its URL).
                self.db.execute(
                    "DELETE FROM calls WHERE provider = ? AND (sha256, kind) IN (SELECT json_extract(value, '$[0]'), "
                    "json_extract(value, '$[1]') FROM json_each(?))",
                    [provider, json.dumps([[sha, kind] for sha, kind, _ in items])],
                )

    def start_run(self, provider: str, options: Mapping[str, Any]) -> int:
        """Record that a batch started, in this process.

        :param options: the batch's options, stored as JSON (values that are not JSON as text).
        :returns: the run's id.
        """
        cursor = self.db.execute(
            "INSERT INTO runs (provider, started_at, state, options, pid) VALUES (?, ?, 'running', ?, ?)",
            [provider, _now(), json.dumps(dict(options), ensure_ascii=False, default=str), os.getpid()],
        )
        return int(cursor.lastrowid)

    # --- the journal of calls in flight ----------------------------------------------------

    def journal_calls(self, provider: str, calls: Iterable[tuple[str, str, str]], run_id: int | None) -> None:
        """Record, committed, that these calls are about to go out.

        :param calls: (sha256, kind, path) triples; a call already journaled is recorded again.
        :param run_id: the run sending them.
        """
        now = _now()
        rows = [
            {"provider": provider, "sha256": sha, "kind": kind, "path": path, "run_id": run_id, "started_at": now}
            for sha, kind, path in calls
        ]
        if rows:
            with self.writing():
                self.db["calls"].upsert_all(rows, pk=("provider", "sha256", "kind"))

    def forget_calls(self, provider: str, shas: Iterable[str]) -> None:
        """Drop the journal rows of calls that were never sent (the batch stopped first).

        :param shas: the images concerned.
        """
        shas = list(shas)
        if shas:
            with self.writing():
                self.db.execute(
                    "DELETE FROM calls WHERE provider = ? AND sha256 IN (SELECT value FROM json_each(?))",
                    [provider, json.dumps(shas)],
                )

    def close_interrupted(self, provider: str, unknown: Mapping[str, str]) -> int:
        """Settle what a killed run of ``provider`` left behind, at the start of the next one.

        Its runs still ``running`` become ``interrupted``; each journaled call whose answer was
        never stored becomes a failed result (never re-sent silently), and a call whose answer
        is in the memo is simply dropped. Runs of a process that is still alive are left alone.

        :param unknown: call kind -> the sentence the failed result carries (kinds missing
            here get a general sentence).
        :returns: how many calls had an unknown outcome.
        """
        with self.writing():
            alive = [
                row["id"]
                for row in self.db.query("SELECT id, pid FROM runs WHERE provider = ? AND state = 'running'", [provider])
                if row["pid"] is not None and _process_alive(row["pid"])
            ]
            self.db.execute(
                "UPDATE runs SET state = 'interrupted', finished_at = ? WHERE provider = ? AND state = 'running' "
                "AND id NOT IN (SELECT value FROM json_each(?))",
                [_now(), provider, json.dumps(alive)],
            )
            left = list(
                self.db.query(
                    """
                    SELECT c.sha256, c.kind, c.path, c.run_id FROM calls AS c
                    WHERE c.provider = :provider AND (c.run_id IS NULL OR c.run_id NOT IN (SELECT value FROM json_each(:alive)))
                    """,
                    {"provider": provider, "alive": json.dumps(alive)},
                )
            )
            answered = {
                (row["sha256"], row["kind"])
                for row in self.db.query("SELECT sha256, kind FROM memo WHERE provider = ?", [provider])
            }
            outcomes = [
                Outcome(
                    row["sha256"], provider, row["path"], Status.FAILED,
                    error_code="outcome_unknown",
                    error=unknown.get(row["kind"], "The run was interrupted while this call was in flight; "
                                      "nobody knows whether it was processed."),
                    attempts=1,
                )  # fmt: skip
                for row in left
                if (row["sha256"], row["kind"]) not in answered
            ]
            self.save_outcomes(outcomes)  # also deletes their journal rows
            self.db.execute(
                "DELETE FROM calls WHERE provider = ? AND (sha256, kind) IN (SELECT json_extract(value, '$[0]'), "
                "json_extract(value, '$[1]') FROM json_each(?))",
                [provider, json.dumps([[row["sha256"], row["kind"]] for row in left])],
            )
        return len(outcomes)

    def calls_in_flight(self, provider: str | None = None) -> list[dict[str, Any]]:
        """:returns: the journal's rows (of one provider, or all), oldest first."""
        return list(
            self.db.query(
                "SELECT * FROM calls WHERE :provider IS NULL OR provider = :provider ORDER BY started_at, sha256",
                {"provider": provider},
            )
        )

    def finish_run(self, run_id: int, state: str, counts: Mapping[str, int]) -> None:
        """Record how a batch ended.

        :param state: ``finished``, ``stopped`` or ``cancelled``.
        :param counts: images per outcome, stored as JSON.
        :raises ValueError: an unknown state.
        """
        if state not in RUN_STATES - {"running"}:
            raise ValueError(f"A run cannot end as {state!r}.")
        self.db.execute(
            "UPDATE runs SET state = ?, finished_at = ?, counts = ? WHERE id = ?",
            [state, _now(), json.dumps(dict(counts), ensure_ascii=False, default=str), run_id],
        )

    # --- reading --------------------------------------------------------------------------

    def query_rows(
        self,
        filter: RowFilter | None = None,
        *,
        order_by: str = "path",
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Rows for the table and the exports, one per file path and provider result, streamed.

        :param filter: which rows; None for all.
        :param order_by: one of :data:`ROW_COLUMNS`; ties are broken by path, then provider
            (in the same direction).
        :param descending: reverse the order.
        :param limit: at most this many rows; None for all.
        :param offset: skip this many rows first (this reads every row skipped: a table pages
            with :meth:`query_page` instead).
        :returns: dicts with the keys of :data:`ROW_COLUMNS`.
        :raises ValueError: an unknown ``order_by`` or filter value.
        """
        if limit is None:
            # Exports: one streamed query.
            sql, params = _filtered_rows_sql(filter or RowFilter())
            keys = _sort_keys(order_by)
            order = _order_clause(keys, descending)
            params.update(offset=int(offset))
            for row in self.db.query(f"SELECT * FROM ({sql}) ORDER BY {order} LIMIT -1 OFFSET :offset", params):
                yield _row_from_sql(row)
            return
        yield from self.query_page(filter, order_by=order_by, descending=descending, limit=limit, offset=offset).rows

    def query_page(
        self,
        filter: RowFilter | None = None,
        *,
        order_by: str = "path",
        descending: bool = False,
        limit: int,
        after: RowKey | None = None,
        before: RowKey | None = None,
        backwards: bool = False,
        offset: int = 0,
    ) -> RowPage:
        """A page of :meth:`query_rows`, found by key: SQLite seeks to the page (through an
        index where one fits the order) instead of counting off every row before it.

        :param after: the page starts after this row (the ``last_key`` of the page before).
        :param before: with ``backwards``, the page ends before this row (the ``first_key``
            of the page after).
        :param backwards: read the ``limit`` rows that end before ``before``, or that end
            the query when ``before`` is None (its last page).
        :param offset: without a key: skip this many rows first (reads every row skipped).
        :raises ValueError: an unknown ``order_by`` or filter value.
        """
        sql, params = _filtered_rows_sql(filter or RowFilter())
        keys = _sort_keys(order_by)
        reverse = descending != backwards
        names = [f"k{n}" for n in range(len(keys))]
        conditions = []
        anchor = before if backwards else after
        if anchor is not None:
            if len(anchor) != len(keys):
                raise ValueError(f"A row key for {order_by!r} has {len(keys)} parts, not {len(anchor)}.")
            compare = "<" if reverse else ">"
            conditions.append(f"({', '.join(names)}) {compare} ({', '.join(':a' + n for n in names)})")
            params.update({"a" + n: value for n, value in zip(names, anchor)})
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        keyed = ", ".join(f"{expr} AS {name}" for expr, name in zip(keys, names))
        order = ", ".join(f"{name}{' DESC' if reverse else ''}" for name in names)
        params.update(limit=int(limit), offset=0 if anchor is not None else int(offset))
        # Find the page's keys first (cheap: only they are computed), then build just those
        # rows, both from one snapshot.
        with self.db.atomic():
            found = list(
                self.db.query(
                    f"SELECT * FROM (SELECT path, result_rowid, {keyed} FROM ({sql})) {where} "
                    f"ORDER BY {order} LIMIT :limit OFFSET :offset",
                    params,
                )
            )
            if backwards:
                found.reverse()
            page = list(
                self.db.query(
                    f"SELECT {_ROW_FIELDS} {_PAGE_SOURCE} ORDER BY page.key",
                    {"page": json.dumps([[row["path"], row["result_rowid"]] for row in found]), "provider": params["provider"]},
                )
            )
        row_keys = [tuple(row[name] for name in names) for row in found]
        return RowPage(
            [_row_from_sql(row) for row in page],
            row_keys[0] if row_keys else None,
            row_keys[-1] if row_keys else None,
        )

    def count_rows(self, filter: RowFilter | None = None) -> int:
        """:returns: how many rows :meth:`query_rows` yields for ``filter``."""
        filter = filter or RowFilter()
        if dataclasses.replace(filter, provider=None) == RowFilter():
            # Unfiltered, a row per file when no image has two results here (a provider is
            # named, or the database holds one): the files index counts them in milliseconds
            # where the joined rows take seconds at a million.
            if filter.provider is not None or next(self.db.query(_ONE_PROVIDER))["one"]:
                return next(self.db.query("SELECT COUNT(*) AS n FROM files"))["n"]
        sql, params = _filtered_rows_sql(filter)
        return next(self.db.query(f"SELECT COUNT(*) AS n FROM ({sql})", params))["n"]

    def has_rows(self) -> bool:
        """:returns: whether :meth:`query_rows` would yield anything without a filter (one
        row per file, so: whether any file is stored), without counting them."""
        return next(self.db.query("SELECT 1 AS found FROM files LIMIT 1"), None) is not None

    def providers(self) -> list[str]:
        """:returns: the ids of the providers with results here, sorted."""
        return [row["provider"] for row in self.db.query("SELECT DISTINCT provider FROM results ORDER BY provider")]

    # --- copies (core/copies.py) ------------------------------------------------------------

    def face_boxes(self) -> dict[str, list["Box"]]:
        """Per content, the face boxes a provider located (for ``fix --fit crop``), from the
        result that found the most; read at once because the fix runs on other threads."""
        from core.fix import Box

        found: dict[str, list[Box]] = {}
        rows = self.db.query("SELECT sha256, faces FROM results WHERE face_count > 0 ORDER BY face_count")
        for row in rows:  # the most faces last, so they win
            faces = json.loads(row["faces"])
            found[row["sha256"]] = [Box(int(f["x"]), int(f["y"]), int(f["width"]), int(f["height"])) for f in faces]
        return found

    def recording_copies(self, records: Iterable[Any]) -> Iterator[Any]:
        """Pass :class:`core.copies.CopyRecord` records through, storing each written copy's
        link to its original as it goes (a copy made is remembered even if the run stops)."""
        for record in records:
            if record.copy and record.copy_sha256 and record.original_sha256:
                with self.writing():
                    self.db.execute(
                        "INSERT OR REPLACE INTO copies VALUES (?, ?, ?, ?, ?, ?)",
                        [record.copy, record.copy_sha256, record.original, record.original_sha256,
                         "; ".join(record.changes), _now()],
                    )  # fmt: skip
            yield record

    def summary(self, filter: RowFilter | None = None) -> "RowSummary":
        """The figures every front end shows about the rows ``filter`` selects: the one
        place they are counted, with the same rules as the filters (``has_face``).

        Files, statuses, problems, verdicts and faces count rows (one per path, as an
        export does); cost adds each result once per content, however many paths share it,
        as a Decimal (the provider's text, exactly).
        """
        sql, params = _filtered_rows_sql(filter or RowFilter())
        # Passes over the rows: counts, distinct contents, then (in Python) problems and
        # costs, which only invalid and paid rows have, then quality warnings. Without the
        # warnings, measured on 50,000 rows: about as long as one export pass over them.
        sums = ", ".join(
            f"COALESCE(SUM(verdict_{w} = '{v}'), 0) AS {w}_{v}" for w in VERDICT_RULES for v in VERDICT_VALUES
        )
        statuses = {status: 0 for status in ROW_STATUSES}
        figures: Counter[str] = Counter()
        for row in self.db.query(
            f"SELECT status, COUNT(*) AS n, {sums}, COALESCE(SUM({_HAS_FACE}), 0) AS with_face FROM ({sql}) GROUP BY status",
            params,
        ):
            statuses[row.pop("status")] = row.pop("n")
            figures.update(row)
        images = next(self.db.query(f"SELECT COUNT(DISTINCT sha256) AS n FROM ({sql})", params))["n"]
        problems: Counter[str] = Counter()
        costs: dict[tuple[str, str], str] = {}  # once per content and provider
        for row in self.db.query(
            f"""SELECT sha256, provider, cost, CASE WHEN valid = 0
                THEN json_array(json(file_notes), json(image_problems), json(result_problems)) END AS problems
                FROM ({sql}) WHERE valid = 0 OR cost IS NOT NULL""",
            params,
        ):
            if row["cost"] is not None:
                costs[(row["sha256"], row["provider"])] = row["cost"]
            if row["problems"] is not None:  # an invalid row: each blocking problem once
                lists = json.loads(row["problems"])
                problems.update({p["code"] for listed in lists if listed for p in listed if p.get("blocking", True)})
        warnings = {
            row["code"]: row["n"]
            for row in self.db.query(
                f"""SELECT json_extract(w.value, '$.code') AS code, COUNT(*) AS n
                    FROM ({sql}) AS rows, json_each(COALESCE(rows.warnings, '[]')) AS w GROUP BY code""",
                params,
            )
        }
        cost = Decimal(0)
        unreadable = 0
        for text in costs.values():
            try:
                value: Decimal | None = Decimal(str(text).strip())
            except InvalidOperation:
                value = None
            if value is not None and value.is_finite():
                cost += value
            else:
                unreadable += 1
        return RowSummary(
            files=sum(statuses.values()),
            images=images,
            statuses=statuses,
            problems=dict(problems),
            verdicts={w: {v: figures[f"{w}_{v}"] for v in VERDICT_VALUES} for w in VERDICT_RULES},
            with_face=figures["with_face"],
            warnings=warnings,
            cost=cost,
            unreadable_costs=unreadable,
        )


@dataclass(frozen=True)
class RowSummary:
    """What :meth:`Store.summary` counts."""

    files: int  # rows: one per path (per provider when the filter names none)
    images: int  # distinct contents among them
    statuses: Mapping[str, int]  # every one of ROW_STATUSES, 0 when none
    problems: Mapping[str, int]  # blocking problem code -> rows showing it
    verdicts: Mapping[str, Mapping[str, int]]  # workflow -> verdict value -> rows
    with_face: int  # rows known to show a face (the ``has_face`` filter's rule)
    warnings: Mapping[str, int]  # warning code -> rows showing it (why a person should look)
    cost: Decimal  # what the provider reported, once per content
    unreadable_costs: int  # results whose cost is not a number

    @property
    def open(self) -> int:
        """Rows still to be done: failed, or not checked yet."""
        return self.statuses.get("failed", 0) + self.statuses.get("pending", 0)


# --- opening ---------------------------------------------------------------------------------


def _open(path: Path, *, readonly: bool, immutable: bool = False) -> Database:
    """Connect, check the file is ours, set it up and bring the schema up to date.

    A read-only open of a WAL database on read-only storage (a DVD, a read-only mount) fails
    when its ``-shm`` file is missing and cannot be created; such a file cannot change under
    us, so it is then opened as immutable.
    """
    try:
        if readonly:
            flags = "?immutable=1" if immutable else "?mode=ro"
            conn = sqlite3.connect(path.resolve().as_uri() + flags, uri=True)
        else:
            conn = sqlite3.connect(str(path))
    except sqlite3.Error as e:
        raise StoreError(f"Cannot open the results database {path}: {e}.") from e
    try:
        db = Database(conn, execute_plugins=False)
    except BaseException:
        conn.close()
        raise
    # Case-insensitive text search beyond ASCII, which SQLite's LIKE and lower() ignore; also
    # used by the search index's triggers, so every connection that writes has them.
    db.register_function(_casefold, deterministic=True, name="casefold")
    db.register_function(glob_literal, deterministic=True, name="glob_literal")
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _check_ownership(db, path)
        if readonly:
            if MIGRATIONS.pending(db):
                raise StoreError(
                    f"The results database {path} was made by an older version of Kling Preflight; "
                    "open it once with the app to upgrade it."
                )
        else:
            db.enable_wal()
            db.execute("PRAGMA synchronous = NORMAL")
            _migrate(db)
    except sqlite3.DatabaseError as e:
        db.close()
        if readonly and not immutable and "unable to open database file" in str(e):
            return _open(path, readonly=True, immutable=True)
        if "not a database" in str(e) or "malformed" in str(e):
            raise StoreError(f"{path} is not a SQLite database, so it cannot hold results.") from e
        raise StoreError(f"Cannot open the results database {path}: {e}.") from e
    except BaseException:
        db.close()
        raise
    return db


def _check_ownership(db: Database, path: Path) -> None:
    """Refuse databases made by another program or by a newer version of this one."""
    applied = {m.name for m in MIGRATIONS.applied(db)}
    # Migrations has no public list of the names it knows.
    known = {m.name for m in MIGRATIONS._migrations}
    if applied - known:
        raise StoreError(
            f"The results database {path} was made by a newer version of Kling Preflight; update the app to open it."
        )
    if applied:
        return
    others = [name for name in db.table_names() if name != MIGRATIONS.migrations_table]
    if MIGRATIONS.migrations_table in db.table_names():
        others += [
            row["migration_set"]
            for row in db.query(
                f"SELECT DISTINCT migration_set FROM {MIGRATIONS.migrations_table} WHERE migration_set != ?",
                [MIGRATIONS.name],
            )
        ]
    if others:
        raise StoreError(f"{path} is a database made by another program, not a Kling Preflight results database.")


def _migrate(db: Database) -> None:
    """Apply pending migrations under a write lock, so two stores opening at once cannot
    both apply the same one."""
    if not MIGRATIONS.pending(db):
        return
    with _immediate(db.conn):
        MIGRATIONS.apply(db)


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back when the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --- rows ------------------------------------------------------------------------------------


def _filtered_rows_sql(filter: RowFilter) -> tuple[str, dict[str, Any]]:
    """The row query for ``filter`` (without order or limit) and its parameters."""
    params: dict[str, Any] = {"provider": filter.provider}
    provider_join = "AND r.provider = :provider" if filter.provider is not None else ""
    conditions: list[str] = []
    if filter.statuses is not None:
        unknown = [s for s in filter.statuses if s not in ROW_STATUSES]
        if unknown:
            raise ValueError(f"Unknown status {unknown[0]!r}; choose from {', '.join(ROW_STATUSES)}.")
        conditions.append("status IN (SELECT value FROM json_each(:statuses))")
        params["statuses"] = json.dumps(list(filter.statuses))
    if filter.verdict is not None:
        if filter.verdict not in VERDICT_RULES:
            raise ValueError(f"Unknown workflow {filter.verdict!r}; choose from {', '.join(VERDICT_RULES)}.")
        conditions.append(f"verdict_{filter.verdict} = 'yes'")
    if filter.has_face is not None:
        conditions.append(_HAS_FACE if filter.has_face else _HAS_NO_FACE)
    if filter.review is not None:
        conditions.append(f"({_NEEDS_REVIEW})" if filter.review else f"NOT COALESCE({_NEEDS_REVIEW}, 0)")
    if filter.disagree is not None:
        conditions.append(_DISAGREE if filter.disagree else f"NOT {_DISAGREE}")
    if filter.text:
        conditions.append("instr(casefold(path), :text) > 0")
        params["text"] = _casefold(filter.text)
        if len(params["text"]) >= 3:  # the trigram index finds three characters or more
            conditions.append("path IN (SELECT path FROM file_paths WHERE folded GLOB '*' || glob_literal(:text) || '*')")
    if filter.paths_under is not None:
        where, under = under_clause("path", filter.paths_under)
        conditions.append(where)
        params.update(under)
    if filter.roots is not None:
        clauses = []
        for n, root in enumerate(filter.roots):
            where, under = under_clause("path", root, name=f"root{n}")
            clauses.append(where)
            params.update(under)
        conditions.append(f"({' OR '.join(clauses) or '0'})")
    if filter.shas is not None:
        conditions.append("sha256 IN (SELECT value FROM json_each(:shas))")
        params["shas"] = json.dumps(list(filter.shas))
    sql = f"SELECT * FROM (SELECT {_ROW_FIELDS} {_ROW_SOURCE.format(provider_join=provider_join)})"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    return sql, params


def _sort_keys(order_by: str) -> list[str]:
    """The SQL expressions a row sorts by for ``order_by``, none of them ever NULL."""
    if order_by not in _ORDER_EXPRESSIONS:
        raise ValueError(f"Rows cannot be sorted by {order_by!r}; choose one of {', '.join(ROW_COLUMNS)}.")
    keys: list[str] = []
    for expr in _ORDER_EXPRESSIONS[order_by]:
        # NULL first, as SQLite sorts it: (0, 0) before any (1, value).
        keys += [expr] if expr in _NEVER_NULL else [f"({expr}) IS NOT NULL", f"COALESCE({expr}, 0)"]
    return keys + ["path", "COALESCE(provider, '')"]


def _order_clause(keys: list[str], descending: bool) -> str:
    return ", ".join(f"{key}{' DESC' if descending else ''}" for key in keys)


#: The separators of this system's paths: \\ and / on Windows, / elsewhere.
PATH_SEPARATORS = tuple(filter(None, (os.sep, os.altsep)))


def under_clause(
    column: str, root: str, name: str = "under", separators: tuple[str, ...] = PATH_SEPARATORS
) -> tuple[str, dict[str, Any]]:
    """SQL matching ``root`` itself and every path inside the folder ``root``.

    A range on the separator-terminated prefix rather than LIKE: exact (``/a/b`` does not
    match ``/a/bc``, ``%`` and ``_`` are not wildcards) and it uses the path index.
    ``name`` prefixes the parameters, so that several clauses can share one query.
    """
    stripped = root.rstrip("".join(separators))
    params: dict[str, Any] = {f"{name}_root": stripped}
    ranges = []
    for n, sep in enumerate(separators):
        prefix = stripped + sep
        params[f"{name}_lo{n}"] = prefix
        params[f"{name}_hi{n}"] = stripped + chr(ord(sep) + 1)
        ranges.append(f"({column} >= :{name}_lo{n} AND {column} < :{name}_hi{n})")
    return f"({column} = :{name}_root OR {' OR '.join(ranges)})", params


def _row_from_sql(row: dict[str, Any]) -> dict[str, Any]:
    problems: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for column in ("file_notes", "image_problems", "result_problems"):
        # Most rows have no problems: skip parsing the empty list (a million rows, a second).
        for problem in json.loads(row[column]) if row[column] and row[column] != "[]" else ():
            key = (problem["code"], problem["message"])
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    out = {name: row.get(name) for name in ROW_COLUMNS}
    out["valid"] = bool(row["valid"])
    out["problems"] = problems
    for name in FLAG_TYPES:
        out[name] = None if row[name] is None else bool(row[name])
    out["faces"] = json.loads(row["faces"]) if row["faces"] and row["faces"] != "[]" else []
    out["result_urls"] = json.loads(row["result_urls"]) if row["result_urls"] and row["result_urls"] != "{}" else {}
    out["warnings"] = json.loads(row["warnings"]) if row["warnings"] and row["warnings"] != "[]" else []
    return out


# --- records to columns ----------------------------------------------------------------------


def _result_row(outcome: Outcome, now: str) -> dict[str, Any]:
    result = outcome.result
    flags = result.flags() if result is not None else {name: None for name in FLAG_TYPES}
    faces = result.faces if result is not None else None
    # An image the provider refused is ready for nothing, whatever the local rules said.
    usable = outcome.valid and Status(outcome.status) is not Status.REJECTED
    row: dict[str, Any] = {
        "sha256": outcome.sha256,
        "provider": outcome.provider,
        "status": Status(outcome.status).value,
        "path": outcome.path,
        "valid": int(outcome.valid),
        "problems": problems_to_json(outcome.problems),
        **{name: None if value is None else int(value) for name, value in flags.items()},
        "face_count": None if faces is None else len(faces),
        "faces": None if faces is None else _json([_face_dict(face) for face in faces]),
        "result_urls": _json(dict(result.result_urls) if result is not None else {}),
        **{f"verdict_{w}": v.value for w, v in verdicts(usable, flags, _quality.review_workflows(outcome.warnings)).items()},
        "warnings": _quality.warnings_to_json(outcome.warnings),
        "cost": result.cost if result is not None else None,
        "request_id": result.request_id if result is not None else None,
        "raw": result.raw if result is not None else None,
        "error_code": outcome.error_code,
        "error": outcome.error,
        "attempts": outcome.attempts,
        "duration_ms": outcome.duration_ms,
        "checked_at": now,
    }
    return row


def _face_dict(face: Face) -> dict[str, Any]:
    confidence = face.confidence
    if confidence is not None and not math.isfinite(confidence):
        confidence = None  # keep the column valid JSON
    return {
        "x": face.x,
        "y": face.y,
        "width": face.width,
        "height": face.height,
        "confidence": confidence,
        "crops": list(face.crops),
    }


def problems_to_json(problems: Iterable[Problem]) -> str:
    # "fixable" only where it is true: rows written before it existed read the same.
    return _json(
        [{"code": p.code, "message": p.message, "blocking": p.blocking} | ({"fixable": True} if p.fixable else {})
         for p in problems]
    )


def problems_from_json(text: str | None) -> tuple[Problem, ...]:
    if not text:
        return ()
    return tuple(
        Problem(p["code"], p["message"], bool(p.get("blocking", True)), bool(p.get("fixable", False)))
        for p in json.loads(text)
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a run it started may still be going)."""
    if pid == os.getpid():
        return False  # a run of this process still 'running' was abandoned by it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _casefold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


def glob_literal(text: str | None) -> str | None:
    """``text`` as a GLOB pattern that matches only itself: ``*``, ``?`` and ``[`` bracketed."""
    return None if text is None else "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
