"""The words both front ends use: labels of statuses, verdicts, flags and provider states,
numbers, durations, and the sentences that sum up a run.

Qt-free, so the command line and the desktop app say the same thing the same way. A new
status or verdict value needs one line here (and its meaning in :mod:`core.models`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from .events import Summary
from .models import Verdict

#: Each row status in a word, as the table and the detail pane show it.
STATUS_LABELS: Mapping[str, str] = {
    "checked": "Checked",
    "invalid": "Invalid",
    "rejected": "Rejected",
    "failed": "Failed",
    "pending": "Not checked",
}
#: What each status means, in a sentence.
STATUS_HELP: Mapping[str, str] = {
    "checked": "The provider answered.",
    "invalid": "The file breaks the input rules, so it was not sent.",
    "rejected": "The provider refused this image.",
    "failed": "No answer could be had; Retry failed tries again.",
    "pending": "Not checked with this provider yet.",
}
#: Each status in the closing summary's table, saying what to do where there is something.
STATUS_SUMMARY_LABELS: Mapping[str, str] = {
    "checked": "Checked",
    "invalid": "Invalid (not sent)",
    "rejected": "Rejected by the provider",
    "failed": "Failed (retry with --retry-failed)",
    "pending": "Not checked yet",
}
#: Each workflow a verdict is about.
VERDICT_LABELS: Mapping[str, str] = {"avatar": "avatar", "tryon": "try-on", "asset": "subject/asset"}
#: Each verdict value, in the order the summary's columns show them.
#: From ready to not ready, then not known: the order of the summary's verdict columns.
VERDICT_VALUE_LABELS: Mapping[str, str] = {
    v.value: v.value for v in (Verdict.YES, Verdict.REVIEW, Verdict.NO, Verdict.UNKNOWN)
}
#: What each recognition flag is called.
FLAG_LABELS: Mapping[str, str] = {
    "head_seg": "Head",
    "face_seg": "Face",
    "cloth_seg": "Clothing",
    "object_seg": "Subject",
}
#: A provider's availability state in words (lower case; capitalise for a heading).
PROVIDER_STATE_WORDS: Mapping[str, str] = {"ready": "ready", "needs_key": "needs a key", "unavailable": "unavailable"}


def number(n: int) -> str:
    """``1234`` -> ``"1,234"``: every count a user reads."""
    return f"{n:,}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(2, "file")`` -> ``"2 files"``."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def money(amount: Decimal) -> str:
    """A cost exactly as added up (no float rounding), without trailing zeros: ``1,234.5``."""
    return f"{amount.normalize():,f}"


def format_duration(seconds: float | None) -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``; None (not known yet) -> ``"--:--"``."""
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def run_counts(summary: Summary) -> list[str]:
    """What one run did, as short phrases: ``["3 checked", "1 failed"]``."""
    parts = [f"{summary.checked:,} checked"]
    if summary.rejected:
        parts.append(f"{summary.rejected:,} rejected by the provider")
    if summary.failed:
        parts.append(f"{summary.failed:,} failed")
    return parts


def run_sentence(summary: Summary, *, later: str = "left for a later run") -> str:
    """``This run: 3 checked, 1 failed in 0:04; 12 known from earlier runs were skipped.``"""
    parts = run_counts(summary)
    if summary.not_attempted:
        parts.append(f"{summary.not_attempted:,} {later}")
    line = f"This run: {', '.join(parts)} in {format_duration(summary.elapsed)}"
    if summary.skipped_known:  # a re-run: say why nothing (or little) was checked
        line += f"; {summary.skipped_known:,} known from earlier runs were skipped"
    return line + "."


def open_sentence(
    failed: int, pending: int, *, retry: str = "retry with --retry-failed", again: str = "run again to check them"
) -> str | None:
    """The one line saying the set is not done, or None when it is. ``retry`` and ``again``
    say how to go on (a flag on the command line, a button in the app)."""
    if not failed and not pending:
        return None
    parts = []
    if failed:
        parts.append(f"{failed:,} failed ({retry})")
    if pending:
        parts.append(f"{pending:,} not checked yet ({again})")
    photos = "photo is" if failed + pending == 1 else "photos are"
    return f"Not done: {failed + pending:,} {photos} still open: {' and '.join(parts)}."


def unknown_calls_lines(summary: Summary) -> list[str]:
    """Sentences about calls whose outcome nobody knows (the call journal's leftovers)."""
    out = []
    if summary.interrupted_calls:
        n = summary.interrupted_calls
        out.append(
            f"{n:,} {'call was' if n == 1 else 'calls were'} in flight when an earlier run was interrupted: "
            "recorded as failed, since they may have been billed or uploaded; --retry-failed sends them again."
        )
    if summary.calls_left:
        n = summary.calls_left
        out.append(
            f"{n:,} {'call' if n == 1 else 'calls'} in flight {'was' if n == 1 else 'were'} left without an answer: "
            "the next run records them as failed (they may have been billed or uploaded)."
        )
    return out


def run_summary_text(summary: Summary) -> str:
    """How a run ended, in the desktop's words: a first line, then what it did."""
    parts = run_counts(summary)
    if summary.invalid:
        parts.append(f"{summary.invalid:,} invalid, not sent")
    if summary.skipped_known:
        parts.append(f"{summary.skipped_known:,} already known")
    text = "\n".join([" · ".join(parts), *unknown_calls_lines(summary)])
    if summary.cancelled:
        left = f"\n{summary.not_attempted:,} left for later: press Start to go on." if summary.not_attempted else ""
        return f"Stopped by you.\n{text}{left}"
    if summary.halted:
        return f"Stopped by the provider.\n{text}"
    return f"Finished in {format_duration(summary.elapsed)}.\n{text}"


def totals_sentence(with_face: int, cost: Decimal, failed: int, pending: int, *, retry: str, again: str) -> str:
    """What the files of a run hold now, whatever run checked them: faces, cost, what is
    still open (the figures of :meth:`core.store.Store.summary`)."""
    parts = [f"{plural(with_face, 'image')} with a face"]
    if cost:
        parts.append(f"cost reported by the provider: {money(cost)}")
    line = "; ".join(parts) + "."
    still_open = open_sentence(failed, pending, retry=retry, again=again)
    return f"{line}\n{still_open}" if still_open else line


def skipped_sentence(path: str, reason: str) -> str:
    """A path the scan could not use, and why (a dangling link, a folder it may not read)."""
    return f"Skipped {path}: {reason}"


def missing_sentence(missing: list[str], known: set[str]) -> str:
    """Why paths cannot be queued: one that was there before (``known``, e.g. a recent
    folder) "is no longer there"; one that never was "does not exist"."""
    gone = [path for path in missing if path in known]
    never = [path for path in missing if path not in known]
    sentences = []
    for paths, one, many in ((never, "does not exist", "do not exist"), (gone, "is no longer there", "are no longer there")):
        if len(paths) == 1:
            sentences.append(f"{paths[0]} {one}.")
        elif paths:
            sentences.append(f"{len(paths):,} of them {many}, {paths[0]} for one.")
    return " ".join(sentences)
