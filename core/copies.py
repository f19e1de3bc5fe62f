"""Runs of ``fix`` and ``collect``: which copies to make, their names, the check, the manifest.

Originals are only ever read. Each copy gets a predictable name (the original's, with the
copy's extension; a clash gets "-1", "-2"...), is written whole or not at all
(core/publish.py), and a fixed copy counts only once the probe and the rules that judged
the original pass it. Each run writes a ``manifest.csv`` (a clash: ``manifest-1.csv``) with
a row per photo: the original, the copy, what changed and why, the sizes before and after.
The output folder gets :data:`core.scan.OUTPUT_MARKER`, so scanning a folder that holds it
does not scan the copies as new photos.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Sequence

from .fix import Box, FixOptions, fix_image
from .models import ProbedImage, ScannedFile, is_valid
from .probe import ONE_CALL_PNG_BYTES, png_in_one_idat, probe_data, probe_file
from .publish import free_name, link_new, publish_new
from .scan import OUTPUT_MARKER, file_path, iter_files
from .validate import validate

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = (
    "original", "copy", "action", "changes", "why", "bytes_before", "bytes_after",
    "width_before", "height_before", "width_after", "height_after",
)  # fmt: skip

#: What happened to one photo.
FIXED, PASSES, NOT_FIXED, COPIED, LINKED, SKIPPED = "fixed", "passes", "not fixed", "copied", "linked", "skipped"


class OutputError(Exception):
    """The output folder cannot be used or a write failed; the message is a sentence."""


@dataclass(frozen=True, slots=True)
class CopyRecord:
    """One photo of a run, as the manifest and the command line show it."""

    original: str
    action: str  # FIXED, PASSES, NOT_FIXED, COPIED, LINKED or SKIPPED
    copy: str | None = None  # the path written (or, in a dry run, that would be)
    changes: tuple[str, ...] = ()
    why: str = ""
    bytes_before: int | None = None
    bytes_after: int | None = None
    size_before: tuple[int, int] | None = None
    size_after: tuple[int, int] | None = None
    original_sha256: str | None = None
    copy_sha256: str | None = None

    def manifest_row(self) -> dict[str, object]:
        before, after = self.size_before or (None, None), self.size_after or (None, None)
        return {
            "original": self.original, "copy": self.copy or "", "action": self.action,
            "changes": "; ".join(self.changes), "why": self.why,
            "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
            "width_before": before[0], "height_before": before[1], "width_after": after[0], "height_after": after[1],
        }  # fmt: skip


FacesFor = Callable[[str], Sequence[Box]]


# --- the output folder ---------------------------------------------------------------------


def prepare_output(folder: Path, *, dry_run: bool) -> None:
    """Make sure copies can be written to ``folder`` (created when missing, marked).

    A dry run creates nothing; it only checks that the folder could be made and written.

    :raises OutputError: it is a file, or may not be created or written.
    """
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder: choose a folder for the copies.")
    if dry_run:
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is None or not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(f"The folder {folder} cannot be written: this account may not write there.")
        return
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / OUTPUT_MARKER
        if not marker.exists():
            marker.write_text("Copies made by Kling Preflight: scans of the folders around this one skip it.\n")
    except OSError as error:
        if made:
            discard_output(folder)
        raise OutputError(f"The folder {folder} cannot be written: {_reason(error)}.") from None


def discard_output(folder: Path) -> None:
    """Take back an output folder that holds nothing but its marker (a run that wrote
    nothing, e.g. on a full disk, leaves no trace). A folder holding anything else stays."""
    try:
        if {p.name for p in folder.iterdir()} == {OUTPUT_MARKER}:
            (folder / OUTPUT_MARKER).unlink()
            folder.rmdir()
    except OSError:
        pass


def _reason(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "the disk is full"
    if error.errno == errno.EROFS:
        return "the disk is read-only"
    if isinstance(error, PermissionError):
        return "this account may not write there"
    return (error.strerror or str(error)).lower()


# --- fix -----------------------------------------------------------------------------------


def fix_files(
    roots: Iterable[str | os.PathLike[str]],
    out: Path,
    options: FixOptions = FixOptions(),
    *,
    dry_run: bool = False,
    faces_for: FacesFor | None = None,
    workers: int | None = None,
    recursive: bool = True,
) -> Iterator[CopyRecord]:
    """Make a conforming copy in ``out`` of every photo under ``roots`` that fails the rules
    and can be fixed; yield one record per photo, in scan order.

    Photos are fixed on ``workers`` threads (Pillow decodes and encodes without the GIL);
    copies are named and written in scan order, so names are the same on every run.

    :raises OutputError: ``out`` cannot be used (see :func:`prepare_output`), or a copy
        could not be written (e.g. the disk is full); every copy
        written before is whole and listed in the records already yielded.
    """
    out = Path(out).resolve()
    prepare_output(out, dry_run=dry_run)
    taken: set[str] = set()
    files = (f for f in iter_files(roots, recursive=recursive) if Path(f.path).parent != out)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for record, data in _bounded(pool, lambda f: _fix_one(f, out, options, faces_for), files, workers or 2):
            if record is None:
                continue
            if record.action == FIXED and data is not None:
                name = Path(record.copy or "").name
                if dry_run:
                    name = free_name(out, name, taken)
                    taken.add(name.casefold())
                    record = replace(record, copy=str(out / name))
                else:
                    record = replace(record, copy=str(_publish_bytes(out, name, data)))
            yield record


def _bounded(pool: ThreadPoolExecutor, fn, items: Iterable, ahead: int) -> Iterator:
    """``pool.map`` that keeps only ``ahead`` items in flight (each holds a decoded photo)."""
    pending = []
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > ahead:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


def _fix_one(
    f: ScannedFile, out: Path, options: FixOptions, faces_for: FacesFor | None
) -> tuple[CopyRecord | None, bytes | None]:
    """Probe, judge, fix and check one photo; no file is written here."""
    data = _read_small(f.path)
    # Not a deep probe: the fix decodes it anyway, and says so if it is damaged.
    probed = probe_data(f, data, deep=False) if data is not None else probe_file(f, deep=False)
    if probed is None:
        return None, None  # not a photo
    base = CopyRecord(
        f.path, PASSES, bytes_before=probed.size, original_sha256=probed.sha256,
        size_before=_size(probed),
    )  # fmt: skip
    problems = validate(probed, options.constraints)
    if is_valid(problems):
        return replace(base, why="It already passes: no copy is needed."), None
    faces = faces_for(probed.sha256) if faces_for is not None and probed.sha256 else ()
    if data is not None and probed.format == "PNG":
        data = png_in_one_idat(data) or data  # the file's own bytes are let go here
    fixed = fix_image(f.path, problems, options, faces, fmt=probed.format, data=data)
    del data  # the copy's bytes and the file's are not held at once
    if fixed.data is None:
        return replace(base, action=NOT_FIXED, why=fixed.reason), None
    name = Path(f.path).stem + options.extension
    copy = probe_data(ScannedFile(str(out / name), len(fixed.data), 0), fixed.data)
    still = [p for p in validate(copy, options.constraints) if p.blocking] if copy is not None else []
    if copy is None or still:
        reason = " ".join(p.message for p in still) or "the copy is not a readable image"
        return replace(base, action=NOT_FIXED, why=f"The copy made still fails: {reason}"), None
    why = " ".join(p.message for p in problems if p.blocking)
    record = replace(
        base, action=FIXED, copy=name, changes=fixed.changes, why=why, bytes_after=copy.size,
        size_after=_size(copy), copy_sha256=copy.sha256,
    )  # fmt: skip
    return record, fixed.data


def _read_small(path: str) -> bytes | None:
    """The file's bytes, read once for the probe and the fix; None for a file too big to
    hold (it is then read twice, in pieces) or one that cannot be read (the probe says why)."""
    try:
        with open(file_path(path), "rb") as fh:
            if os.fstat(fh.fileno()).st_size > ONE_CALL_PNG_BYTES:
                return None
            return fh.read()
    except OSError:
        return None


def _size(probed: ProbedImage) -> tuple[int, int] | None:
    return (probed.width, probed.height) if probed.width is not None and probed.height is not None else None


def _publish_bytes(out: Path, name: str, data: bytes) -> Path:
    try:
        return publish_new(out, name, lambda fh: fh.write(data))
    except OSError as error:
        raise OutputError(f"Could not write {name} to {out}: {_reason(error)}. Nothing half-written was left.") from None


# --- collect -------------------------------------------------------------------------------


def collect_files(
    photos: Iterable[tuple[str, str]], out: Path, *, link: bool = False, dry_run: bool = False
) -> Iterator[CopyRecord]:
    """Copy (or link) each photo into ``out`` under its own name; yield one record each.

    :param photos: (path, the sha256 it had when it was checked); a file changed since is
        skipped, because its verdict was about other content.
    :param link: hard-link (a symbolic link across file systems) instead of copying.
    :raises OutputError: ``out`` cannot be used, or a copy could not be written.
    """
    out = Path(out).resolve()
    prepare_output(out, dry_run=dry_run)
    taken: set[str] = set()
    for path, sha256 in photos:
        source = Path(path)
        try:
            size = source.stat().st_size
        except OSError as error:
            yield CopyRecord(path, SKIPPED, why=f"It cannot be read now: {_reason(error)}.", original_sha256=sha256)
            continue
        base = CopyRecord(path, COPIED, bytes_before=size, bytes_after=size, original_sha256=sha256, copy_sha256=sha256)
        if dry_run:
            name = free_name(out, source.name, taken)
            taken.add(name.casefold())
            yield replace(base, action=LINKED if link else COPIED, copy=str(out / name))
            continue
        if link:
            target, how = _link(source, out)
            yield replace(base, action=LINKED, copy=str(target), changes=(how,))
            continue
        try:
            target = publish_new(out, source.name, lambda fh: _copy_checked(source, fh, sha256))
        except _Changed:
            yield replace(base, action=SKIPPED, bytes_after=None, copy_sha256=None,
                          why="It changed since it was checked: check it again first.")  # fmt: skip
            continue
        except OSError as error:
            raise OutputError(f"Could not copy {source.name} to {out}: {_reason(error)}. Nothing half-written was left.") from None
        yield replace(base, copy=str(target))


class _Changed(Exception):
    """The file's content is not the content that was checked."""


def _copy_checked(source: Path, fh: BinaryIO, sha256: str) -> None:
    digest = hashlib.sha256()
    with open(source, "rb") as src:
        while chunk := src.read(1024 * 1024):
            digest.update(chunk)
            fh.write(chunk)
    if digest.hexdigest() != sha256:
        raise _Changed


def _link(source: Path, out: Path) -> tuple[Path, str]:
    try:
        return link_new(out, source.name, lambda target: os.link(source, target)), "hard link"
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise OutputError(f"Could not link {source.name} into {out}: {_reason(error)}.") from None
    try:
        return link_new(out, source.name, lambda target: os.symlink(source, target)), "symbolic link"
    except OSError as error:
        raise OutputError(f"Could not link {source.name} into {out}: {_reason(error)}.") from None


# --- the manifest --------------------------------------------------------------------------


def write_manifest(out: Path, records: Sequence[CopyRecord]) -> Path:
    """Write the run's ``manifest.csv`` (UTF-8 with a byte order mark, for Excel).

    :returns: its path (``manifest-1.csv``... when an earlier run's is there).
    :raises OutputError: it could not be written.
    """
    text = io.StringIO()
    writer = csv.DictWriter(text, MANIFEST_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record.manifest_row())
    data = text.getvalue().encode("utf-8-sig")
    try:
        return publish_new(out, MANIFEST_NAME, lambda fh: fh.write(data))
    except OSError as error:
        raise OutputError(f"Could not write the manifest to {out}: {_reason(error)}.") from None


def read_manifest(path: Path) -> list[dict[str, str]]:
    """The rows of a manifest, as :func:`write_manifest` wrote them (for tests and tools)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))

