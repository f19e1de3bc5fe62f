"""The words both front ends use, and the command line's summary built from them."""

from __future__ import annotations

from decimal import Decimal

from core.console import summary_table
from core.events import Summary
from core.store import RowSummary
from core.words import format_duration, money, open_sentence


def counts(**statuses) -> RowSummary:
    full = {"checked": 0, "invalid": 0, "rejected": 0, "failed": 0, "pending": 0, **statuses}
    return RowSummary(
        files=sum(full.values()), images=sum(full.values()), statuses=full, problems={"too_small": 1_204},
        verdicts={"avatar": {"yes": 10_000, "no": 2, "unknown": 0}}, with_face=10_000, warnings={},
        cost=Decimal("2000.40"), unreadable_costs=0,
    )  # fmt: skip


def test_numbers_have_thousands_separators_and_costs_are_exact():
    text = summary_table(Summary("cometapi", checked=12_345, elapsed=75), counts(checked=12_345, invalid=1_204))
    assert "This run: 12,345 checked in 1:15." in text
    assert "Files                       13,549" in text
    assert "Too small" in text and "1,204" in text
    assert "Images with a face: 10,000" in text
    assert "Cost reported by the provider: 2,000.4" in text
    assert "Not done" not in text


def test_the_summary_ends_saying_what_is_still_open():
    text = summary_table(Summary("cometapi", skipped_known=1_000), counts(checked=977, failed=23))
    assert text.splitlines()[-1] == "Not done: 23 photos are still open: 23 failed (retry with --retry-failed)."
    assert "1,000 known from earlier runs were skipped" in text


def test_words():
    assert (format_duration(None), format_duration(59.6), format_duration(3725)) == ("--:--", "1:00", "1:02:05")
    assert money(Decimal("0.2") * 3) == "0.6" and money(Decimal("100")) == "100"
    assert open_sentence(0, 0) is None
    assert open_sentence(1, 2) == (
        "Not done: 3 photos are still open: 1 failed (retry with --retry-failed) and 2 not checked yet (run again to check them)."
    )
    assert open_sentence(1, 0, retry="press Retry failed") == "Not done: 1 photo is still open: 1 failed (press Retry failed)."


def test_every_verdict_value_has_a_summary_column_from_ready_to_unknown():
    from core.models import Verdict
    from core.words import VERDICT_VALUE_LABELS

    assert set(VERDICT_VALUE_LABELS) == {v.value for v in Verdict}  # a new value cannot be dropped
    assert list(VERDICT_VALUE_LABELS) == ["yes", "review", "no", "unknown"]
