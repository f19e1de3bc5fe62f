"""How the command line shows a batch: a one-line progress display and the closing summary.

Pure text: these functions take events and counts and return or write strings, so they are
easy to test and never touch the store or a provider.
"""

from __future__ import annotations

import shutil
import sys
from typing import Mapping, TextIO

from .events import Plan, Progress, ScanProgress, Summary, Waiting
from .store import RowSummary
from .validate import PROBLEM_CODES
from .words import (
    STATUS_SUMMARY_LABELS,
    VERDICT_LABELS,
    VERDICT_VALUE_LABELS,
    format_duration,
    money,
    open_sentence,
    plural,
    run_sentence,
    unknown_calls_lines,
)
from .quality import WARNING_LABELS


def progress_line(progress: Progress, waiting: Waiting | None = None, width: int = 80) -> str:
    """``[#######.......]  120/500  3 failed  12.3/s  ETA 0:31  4 at once  waiting 8 s: rate limited``"""
    finished = progress.done + progress.failed
    tail = f" {finished:,}/{progress.total:,}"
    if progress.failed:
        tail += f"  {progress.failed:,} failed"
    tail += f"  {progress.per_second:.1f}/s  ETA {format_duration(progress.eta_seconds)}"
    if progress.concurrency:
        tail += f"  {progress.concurrency} at once"
    if waiting is not None:
        tail += f"  {waiting}"
    bar_width = max(10, min(40, width - len(tail) - 3))
    filled = int(bar_width * finished / progress.total) if progress.total else bar_width
    return f"[{'#' * filled}{'.' * (bar_width - filled)}]{tail}"


def scan_line(scan: ScanProgress) -> str:
    return f"Scanning: {plural(scan.files_found, 'file')} found, {scan.probed:,} read ({scan.from_cache:,} unchanged)"


class ProgressDisplay:
    """Redraws one line on a terminal; prints nothing when the output is not a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool | None = None) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self._last_len = 0

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        width = shutil.get_terminal_size((80, 20)).columns - 1
        text = text[:width]
        self.stream.write("\r" + text + " " * max(0, self._last_len - len(text)))
        self.stream.flush()
        self._last_len = len(text)

    def clear(self) -> None:
        if self.enabled and self._last_len:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self.stream.flush()
            self._last_len = 0


def describe_plan(plan: Plan) -> str:
    lines = [
        f"Provider: {plan.provider_label} ({plan.provider})",
        f"  {plural(plan.files_found, 'file')} found, {plural(plan.images, 'distinct image')}"
        + (f" ({plural(plan.duplicates, 'duplicate file')})" if plan.duplicates else "")
        + (f", {plan.not_images:,} other files ignored" if plan.not_images else ""),
        f"  {plan.invalid:,} invalid, will not be sent" + _codes_suffix(plan.invalid_by_code),
        f"  {plan.already_known:,} already checked with this provider, skipped",
    ]
    if plan.failed_before:
        lines.append(f"  {plan.failed_before:,} failed before, skipped (use --retry-failed to try them again)")
    lines.append(f"  {plan.to_check:,} to check: {plural(plan.to_check, 'call')} to {plan.provider}")
    return "\n".join(lines)


def _codes_suffix(by_code: Mapping[str, int]) -> str:
    if not by_code:
        return ""
    parts = [f"{PROBLEM_CODES.get(code, code)} {n:,}" for code, n in sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0]))]
    return ": " + ", ".join(parts)


def summary_table(summary: Summary, counts: RowSummary) -> str:
    """The closing report: this run's counts, then the state of every file scanned (from
    :meth:`core.store.Store.summary`, whatever run produced the results)."""
    out = []
    if summary.dry_run:
        out.append("Dry run: nothing was sent.")
    else:
        out.append(run_sentence(summary))
    if summary.halted:
        out.append(f"Stopped: {summary.halted}")
    elif summary.cancelled:
        out.append("Stopped by you: results so far are saved; run the same command again to continue.")
    out.extend(unknown_calls_lines(summary))
    out.append("")
    out.append(f"{'Files':<28}{counts.files:>6,}")
    for status, label in STATUS_SUMMARY_LABELS.items():
        if counts.statuses.get(status) or status in ("checked", "invalid"):
            out.append(f"  {label:<26}{counts.statuses.get(status, 0):>6,}")
    if counts.problems:
        out.append("Why files are invalid:")
        for code, n in sorted(counts.problems.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {PROBLEM_CODES.get(code, code):<26}{n:>6,}")
    out.append("")
    values = list(VERDICT_VALUE_LABELS)
    widths = [max(6, len(label) + 2) for label in VERDICT_VALUE_LABELS.values()]
    out.append(f"{'Ready for':<20}" + "".join(f"{label:>{w}}" for label, w in zip(VERDICT_VALUE_LABELS.values(), widths)))
    for key, label in VERDICT_LABELS.items():
        c = counts.verdicts.get(key, {})
        out.append(f"  {label:<18}" + "".join(f"{c.get(v, 0):>{w},}" for v, w in zip(values, widths)))
    if counts.warnings:
        out.append("Why a person should look (review):")
        for code, n in sorted(counts.warnings.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {WARNING_LABELS.get(code, code):<26}{n:>6,}")
    out.append("")
    out.append(f"Images with a face: {counts.with_face:,}")
    if counts.cost:
        out.append(f"Cost reported by the provider: {money(counts.cost)}")
    if not summary.dry_run:
        still_open = open_sentence(counts.statuses.get("failed", 0), counts.statuses.get("pending", 0))
        if still_open:
            out.append(still_open)
    return "\n".join(out)
