"""How the command line shows a batch: a one-line progress display and the closing summary.

Pure text: these functions take events and counts and return or write strings, so they are
easy to test and never touch the store or a provider.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, TextIO

from .events import Plan, Progress, ScanProgress, Summary, Waiting
from .validate import PROBLEM_CODES
from .quality import WARNING_LABELS

VERDICT_LABELS = {"avatar": "avatar", "tryon": "try-on", "asset": "subject/asset"}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(progress: Progress, waiting: Waiting | None = None, width: int = 80) -> str:
    """``[#######.......]  120/500  3 failed  12.3/s  ETA 0:31  waiting 8 s: rate limited``"""
    finished = progress.done + progress.failed
    tail = f" {finished}/{progress.total}"
    if progress.failed:
        tail += f"  {progress.failed} failed"
    tail += f"  {progress.per_second:.1f}/s  ETA {format_duration(progress.eta_seconds)}"
    if waiting is not None:
        tail += f"  {waiting}"
    bar_width = max(10, min(40, width - len(tail) - 3))
    filled = int(bar_width * finished / progress.total) if progress.total else bar_width
    return f"[{'#' * filled}{'.' * (bar_width - filled)}]{tail}"


def scan_line(scan: ScanProgress) -> str:
    return f"Scanning: {scan.files_found} files found, {scan.probed} read ({scan.from_cache} unchanged)"


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
        f"  {plan.files_found} files found, {plan.images} distinct images"
        + (f" ({plan.duplicates} duplicate files)" if plan.duplicates else "")
        + (f", {plan.not_images} other files ignored" if plan.not_images else ""),
        f"  {plan.invalid} invalid, will not be sent" + _codes_suffix(plan.invalid_by_code),
        f"  {plan.already_known} already checked with this provider, skipped",
    ]
    if plan.failed_before:
        lines.append(f"  {plan.failed_before} failed before, skipped (use --retry-failed to try them again)")
    calls = f"  {plan.to_check} to check: {plan.to_check} call{'s' if plan.to_check != 1 else ''} to {plan.provider}"
    lines.append(calls)
    return "\n".join(lines)


def _codes_suffix(by_code: Mapping[str, int]) -> str:
    if not by_code:
        return ""
    parts = [f"{PROBLEM_CODES.get(code, code)} {n}" for code, n in sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0]))]
    return ": " + ", ".join(parts)


@dataclass
class RowTally:
    """Counts over exported rows: the summary is about the files scanned, whatever run
    produced their results."""

    files: int = 0
    statuses: Counter = field(default_factory=Counter)
    verdicts: dict[str, Counter] = field(default_factory=lambda: {k: Counter() for k in VERDICT_LABELS})
    with_face: int = 0
    problems: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)
    cost: float = 0.0

    def add(self, row: Mapping) -> None:
        self.files += 1
        self.statuses[row["status"]] += 1
        for key in VERDICT_LABELS:
            value = row.get(f"verdict_{key}")
            if value:
                self.verdicts[key][value] += 1
        if row.get("face_count"):
            self.with_face += 1
        for warning in row.get("warnings") or ():
            self.warnings[warning["code"]] += 1
        for problem in row.get("problems") or ():
            if problem.get("blocking", True):
                self.problems[problem["code"]] += 1
        try:
            self.cost += float(row.get("cost") or 0)
        except ValueError:
            pass

    def counting(self, rows: Iterable[Mapping]) -> Iterator[Mapping]:
        """Pass ``rows`` through, counting each on the way (e.g. into an export)."""
        for row in rows:
            self.add(row)
            yield row


def summary_table(summary: Summary, tally: RowTally) -> str:
    """The closing report: this run's counts, then the state of every file scanned."""
    out = []
    if summary.dry_run:
        out.append("Dry run: nothing was sent.")
    else:
        this_run = [f"{summary.checked} checked"]
        if summary.rejected:
            this_run.append(f"{summary.rejected} rejected by the provider")
        if summary.failed:
            this_run.append(f"{summary.failed} failed")
        if summary.not_attempted:
            this_run.append(f"{summary.not_attempted} left for a later run")
        line = f"This run: {', '.join(this_run)} in {format_duration(summary.elapsed)}"
        if summary.skipped_known:  # a re-run: say why nothing (or little) was checked
            line += f"; {summary.skipped_known} known from earlier runs were skipped"
        out.append(line + ".")
    if summary.halted:
        out.append(f"Stopped: {summary.halted}")
    elif summary.cancelled:
        out.append("Stopped by you: results so far are saved; run the same command again to continue.")
    out.append("")
    out.append(f"{'Files':<28}{tally.files:>6}")
    for status, label in (
        ("checked", "Checked"),
        ("invalid", "Invalid (not sent)"),
        ("rejected", "Rejected by the provider"),
        ("failed", "Failed (retry with --retry-failed)"),
        ("pending", "Not checked yet"),
    ):
        if tally.statuses.get(status) or status in ("checked", "invalid"):
            out.append(f"  {label:<26}{tally.statuses.get(status, 0):>6}")
    if tally.problems:
        out.append("Why files are invalid:")
        for code, n in sorted(tally.problems.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {PROBLEM_CODES.get(code, code):<26}{n:>6}")
    out.append("")
    out.append(f"{'Ready for':<20}{'yes':>6}{'review':>8}{'no':>6}{'unknown':>9}")
    for key, label in VERDICT_LABELS.items():
        c = tally.verdicts[key]
        out.append(f"  {label:<18}{c['yes']:>6}{c['review']:>8}{c['no']:>6}{c['unknown']:>9}")
    if tally.warnings:
        out.append("Why a person should look (review):")
        for code, n in sorted(tally.warnings.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {WARNING_LABELS.get(code, code):<26}{n:>6}")
    out.append("")
    out.append(f"Images with a face: {tally.with_face}")
    if tally.cost:
        out.append(f"Cost reported by the provider: {tally.cost:g}")
    return "\n".join(out)
