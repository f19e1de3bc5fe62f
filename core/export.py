"""Exports of the results, as CSV (for Excel and LibreOffice) or JSON, streamed row by row.

Rows come from :meth:`core.store.Store.query_rows`; nothing here holds more than one row.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, Iterable, TextIO

from core.atomic_write import atomic_write
from core.models import FLAG_TYPES, VERDICT_RULES
from core.store import RowFilter, Store

CSV_COLUMNS: tuple[str, ...] = (
    "path", "file", "folder", "bytes", "format", "width", "height", "provider", "status", "valid",
    "problem_codes", "problems", *FLAG_TYPES, "face_count", "faces",
    *(f"verdict_{name}" for name in VERDICT_RULES), "warning_codes", "warnings",
    "cost", "request_id", "attempts", "duration_ms", "error_code", "error", "checked_at", "sha256",
    "ready_copy",
)  # fmt: skip

#: Export formats by file suffix.
FORMATS: dict[str, str] = {".csv": "csv", ".json": "json"}

# A spreadsheet reads a cell starting with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO, *, bom: bool = False) -> int:
    """Write rows as CSV with a header line.

    Text cells that a spreadsheet would read as a formula get a leading ``'``. Open ``out``
    with ``newline=""`` so line breaks inside cells survive.

    :param rows: dicts with the keys of :data:`core.store.ROW_COLUMNS`; consumed lazily.
    :param out: a text stream.
    :param bom: start with a UTF-8 byte order mark, so Excel reads the file as UTF-8.
    :returns: how many rows were written.
    """
    if bom:
        out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow([_neutralise(value) for value in _csv_cells(row)])
        count += 1
    return count


def write_json(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write rows as one JSON array, an item at a time.

    ``raw`` is the provider's answer: parsed when it is JSON, else the text as received.

    :param rows: dicts with the keys of :data:`core.store.ROW_COLUMNS`; consumed lazily.
    :param out: a text stream.
    :returns: how many rows were written.
    """
    out.write("[")
    count = 0
    for row in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(_json_item(row), ensure_ascii=False, allow_nan=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def export_file(
    store: Store,
    path: Path | None,
    *,
    fmt: str | None = None,
    filter: RowFilter | None = None,
    bom: bool = True,
) -> int:
    """Export the store's rows (all, or those ``filter`` selects) to a file, or to standard
    output when ``path`` is None (see :func:`export_rows`).

    :returns: how many rows were written.
    :raises ValueError: the format is unknown or cannot be told from the suffix.
    """
    return export_rows(store.query_rows(filter), path, fmt=fmt, bom=bom)


def export_rows(rows: Iterable[dict[str, Any]], path: Path | None, *, fmt: str | None = None, bom: bool = True) -> int:
    """Write rows to a file, all or nothing, or to standard output when ``path`` is None.

    The rows go to a temporary file beside ``path`` that replaces ``path`` only once
    complete, so an interrupted export never leaves half a file.

    :param rows: rows as :meth:`Store.query_rows` yields them (any iterable; streamed).
    :param path: the file to write, or None for standard output.
    :param fmt: ``csv`` or ``json``; None to take it from the suffix of ``path``.
    :param bom: CSV only: start with a UTF-8 byte order mark.
    :returns: how many rows were written.
    :raises ValueError: the format is unknown or cannot be told from the suffix.
    """
    fmt = fmt or (FORMATS.get(Path(path).suffix.lower()) if path is not None else None)
    if fmt not in FORMATS.values():
        name = Path(path).name if path is not None else "standard output"
        raise ValueError(f"Cannot tell how to export to {name}: name it .csv or .json.")

    def write(out: TextIO) -> int:
        return write_csv(rows, out, bom=bom) if fmt == "csv" else write_json(rows, out)

    if path is None:
        out = sys.stdout
        if hasattr(out, "reconfigure"):
            out.reconfigure(encoding="utf-8", newline="")  # csv writes its own \r\n
        return write(out)
    # An export gets the permissions any new file of the user's gets (not private).
    with atomic_write(path, newline="") as out:
        return write(out)


def _csv_cells(row: dict[str, Any]) -> list[Any]:
    problems = row["problems"]
    values: dict[str, Any] = {
        **row,
        "valid": _yes_no(row["valid"]),
        "problem_codes": ";".join(p["code"] for p in problems),
        "problems": " | ".join(p["message"] for p in problems),
        **{name: _yes_no(row[name]) for name in FLAG_TYPES},
        "faces": ";".join(f"{f['x']},{f['y']},{f['width']},{f['height']}" for f in row["faces"]),
        "warning_codes": ";".join(w["code"] for w in row["warnings"]),
        "warnings": " | ".join(w["message"] for w in row["warnings"]),
    }
    return ["" if values[name] is None else values[name] for name in CSV_COLUMNS]


def _json_item(row: dict[str, Any]) -> dict[str, Any]:
    has_error = row["error_code"] is not None or row["error"] is not None
    return {
        **{name: row[name] for name in ("path", "file", "folder", "sha256", "bytes", "format", "width", "height")},
        "provider": row["provider"],
        "status": row["status"],
        "valid": row["valid"],
        "problems": [
            {"code": p["code"], "message": p["message"], "fixable": bool(p.get("fixable"))} for p in row["problems"]
        ],
        "flags": {name: row[name] for name in FLAG_TYPES},
        "face_count": row["face_count"],
        "faces": row["faces"],
        "result_urls": row["result_urls"],
        "verdicts": {name: row[f"verdict_{name}"] for name in VERDICT_RULES},
        "warnings": [{"code": w["code"], "message": w["message"]} for w in row["warnings"]],
        "cost": row["cost"],
        "request_id": row["request_id"],
        "attempts": row["attempts"],
        "duration_ms": row["duration_ms"],
        "error": {"code": row["error_code"], "message": row["error"]} if has_error else None,
        "checked_at": row["checked_at"],
        "raw": _parsed_raw(row["raw"]),
        "ready_copy": row["ready_copy"],
    }


def _parsed_raw(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        # NaN and Infinity parse in Python but are not JSON: keep such answers as text.
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return raw


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def _neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
