"""What the reliability figures count, counted the same way in every test: the README's
"data lost" and "crashes" are sums of these, never typed in."""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from core.models import Outcome


def count_lost(expected: Iterable[str], rows: Mapping[str, Mapping], reported: Iterable[Outcome] = ()) -> int:
    """Results lost, for the figures: each expected image with no stored row, and each
    result the run reported (an ``ImageFinished``) that the store does not hold as reported.

    :param expected: the keys ``rows`` should have (content hashes, or names).
    :param rows: the stored rows by those keys.
    :param reported: outcomes the run reported; only with ``rows`` keyed by content hash.
    """
    missing = set(expected) - set(rows)
    changed = {o.sha256 for o in reported if rows.get(o.sha256, {}).get("status") != o.status.value}
    return len(missing | changed)


def count_crashes(rows: Iterable[Mapping], records: Iterable[logging.LogRecord]) -> int:
    """Crashes, for the figures: images a provider failed on with something other than a
    ProviderError (the runner records them as ``internal_error``), and every error logged
    with a traceback (``caplog.records``)."""
    failed_inside = sum(1 for row in rows if row.get("error_code") == "internal_error")
    return failed_inside + sum(1 for r in records if r.levelno >= logging.ERROR and (r.exc_info or r.exc_text))


def count_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> int:
    """Committed results lost or altered, for the figures: entries of ``before`` (rows, or
    their ``checked_at``) that ``after`` does not hold unchanged."""
    return sum(1 for key, row in before.items() if after.get(key) != row)
