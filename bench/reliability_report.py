"""The figures of the README's Reliability section, produced by the reliability tests.

    python -m bench.reliability_report

Runs ``pytest tests/reliability`` with ``$KLING_PREFLIGHT_RELIABILITY_REPORT`` set to a
temporary folder, where each passing test leaves its figures as JSON, then prints the
Markdown table the README shows. The figures are counts the tests verified (faults injected,
kills survived, inputs tried, data lost), not timings. Exits with pytest's own status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT_ENV = "KLING_PREFLIGHT_RELIABILITY_REPORT"

FAULT_WORDS = {
    "http_500": "HTTP 500",
    "http_429": "429 without Retry-After",
    "http_429_retry_after": "429 with Retry-After",
    "drop_before_body": "dropped before the body",
    "drop_after_body": "dropped after processing",
    "not_json_200_text": "200 in plain text",
    "not_json_502_html": "502 web page",
    "slower_than_timeout": "slower than the timeout",
}


SIGNAL_WORDS = {
    "int": "Ctrl-C",
    "int_twice": "Ctrl-C twice",
    "kill": "kill -9",
    "stop": "Stop",
    "stop_twice": "Stop twice",
}


def run_tests(folder: Path) -> tuple[int, str]:
    """Run the reliability suite with figures going to ``folder``.

    :returns: pytest's exit status and its closing line.
    """
    env = {**os.environ, REPORT_ENV: str(folder), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/reliability"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, lines[-1] if lines else done.stderr.strip()


def load(folder: Path) -> dict[str, list[dict]]:
    """The figures by section, in test order."""
    sections: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        sections[record["section"]].append(record)
    return sections


def number(n: int) -> str:
    return f"{n:,}"


def table(sections: dict[str, list[dict]]) -> list[str]:
    """The Markdown rows: what each part tried, and what came of it."""
    rows = ["| Part | What was tried | What came of it |", "|---|---|---|"]
    for run in sections.get("faults", []):
        kinds = ", ".join(f"{number(run['injected'][k])} {w}" for k, w in FAULT_WORDS.items() if k in run["injected"])
        rows.append(
            f"| Injected faults, {run['provider']} | {number(run['images'])} images, {number(run['requests'])} requests, "
            f"{number(run['faults_injected'])} faults: {kinds} | {number(run['checked'])} checked "
            f"({number(run['checked_after_retries'])} after retries), {number(run['failed'])} failed with a reason; "
            f"billed twice: {run['billed_twice']}; crashes: {run['crashes']} |"
        )
    for run in sections.get("kills", []):
        rows.append(
            f"| kill -9 and resume | {run['kills']} kills across a batch of {number(run['images'])} images "
            f"({run['timed_kills']} at random moments from start-up on, {run['kills'] - run['timed_kills']} at random "
            "moments once the run had written results) "
            f"| {run['kills_survived']} survived; integrity_check ok {run['integrity_checks_ok']} times; "
            f"one result per image; completed images sent again: {run['resent_after_commit']}; "
            f"sent twice without --retry-failed: {run.get('sent_twice_without_retry_failed', 'not counted')} "
            f"(calls in flight at a kill, failed as unknown: {run.get('unknown_outcomes', 'not counted')}; "
            f"sent again by --retry-failed: {run['calls_repeated_after_unwritten_answers']}) |"
        )
    for run in sections.get("never_pay_twice", []):
        signals = ", ".join(f"{number(n)} {SIGNAL_WORDS.get(k, k)}" for k, n in sorted(run["signals"].items()))
        loop = (f"; `scan --retry-failed` exited 0 after {run['retry_failed_runs_until_exit_0']} run(s)"
                if "retry_failed_runs_until_exit_0" in run else "")  # fmt: skip
        rows.append(
            f"| Stops and kills, {run['provider']} | {run['cycles']} paid runs of {number(run['images'])} images "
            f"stopped at random moments: {signals} | paid twice without --retry-failed: "
            f"{run['paid_twice_without_retry']}; answers lost: {run['answers_lost']}; unknown after a single stop: "
            f"{run['unknown_after_single_ctrl_c']}; outcomes unknown (left in flight): {run['unknown_outcomes']}, "
            f"paid again only by --retry-failed: {run['paid_again_by_retry_failed']}; "
            f"photos accounted for: {number(run['photos_accounted_for'])} of {number(run['images'])}{loop} |"
        )
    hostile = {k: v for r in sections.get("hostile_files", []) for k, v in r.items()}
    if hostile:
        office = (
            f"; LibreOffice: {hostile['libreoffice_conversions']} conversions, {hostile['libreoffice_formulas']} formulas"
            if "libreoffice_conversions" in hostile
            else "; LibreOffice not installed: CSV checked with the csv module only"
        )
        rows.append(
            f"| Hostile files and names | {hostile['hostile_files']} hostile files ({hostile['hostile_names']} hostile "
            f"names among them) with 2 providers; {number(hostile.get('files_in_one_folder', 0))} files in one folder "
            f"| each has a clear result; CSV and JSON read back whole, no cell a formula{office} |"
        )
    answers = sections.get("hostile_answers", [])
    if answers:
        examples = next((r["examples"] for r in answers if "examples" in r), {})
        oversized = sum(r.get("oversized_refused", 0) for r in answers)
        most = max((r.get("bytes_sent_before_refusal", 0) for r in answers), default=0)
        rows.append(
            f"| Hostile answers | {number(sum(examples.values()))} generated answers "
            f"({', '.join(f'{number(n)} {name}' for name, n in examples.items())}); {oversized} oversized bodies "
            f"| each a result or a clear error; oversized refused past 2 MB (at most {most / 2**20:.1f} MB left the "
            "server, socket buffers included) |"
        )
    for run in sections.get("storage", []):
        kept = f"{number(run['committed_kept'])} committed results kept"
        if "committed_before_the_disk_filled" in run:
            kept += f" ({number(run['committed_before_the_disk_filled'])} of them written before the disk filled)"
        rows.append(f"| Storage: {run['scenario']} | a run against it | a one-sentence error; {kept} |")
    secrets = sections.get("secrets", [])
    refused = [r["refused_base_url"] for r in secrets if "refused_base_url" in r]
    sweep = next((r for r in secrets if "files_searched" in r), None)
    if refused:
        rows.append(f"| Secrets: base URLs | {len(refused)} base URLs with credentials, a key in the query, or plain "
                    "http to another host | all refused |")  # fmt: skip
    if sweep:
        rows.append(
            f"| Secrets: the sweep | {number(sweep['files_searched'])} files ({sweep['bytes_searched'] / 2**20:.0f} MB) "
            f"searched for {sweep['keys_searched']} keys | found: {sweep['keys_found']} |"
        )
    return rows


def totals(sections: dict[str, list[dict]]) -> list[str]:
    """The four figures the issue asks for."""
    faults = sum(r["faults_injected"] for r in sections.get("faults", []))
    kills = sum(r["kills_survived"] for r in sections.get("kills", []))
    kills += sum(r["signals"].get("kill", 0) for r in sections.get("never_pay_twice", []))
    hostile = {k: v for r in sections.get("hostile_files", []) for k, v in r.items()}
    answers = sections.get("hostile_answers", [])
    examples = sum(next((r["examples"] for r in answers if "examples" in r), {}).values())
    oversized = sum(r.get("oversized_refused", 0) for r in answers)
    urls = sum(1 for r in sections.get("secrets", []) if "refused_base_url" in r)
    storage = len(sections.get("storage", []))
    inputs = hostile.get("inputs_tried", 0) + examples + oversized + urls + storage
    lost = sum(r.get("data_lost", 0) for records in sections.values() for r in records)
    return [
        "| Figure | Count |",
        "|---|---|",
        f"| Faults injected | {number(faults)} |",
        f"| Kills survived | {kills} of {kills} |",
        f"| Hostile inputs tried | {number(inputs)} (+ {number(hostile.get('files_in_one_folder', 0))} files in one folder) |",
        f"| Data lost | {lost} |",
    ]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kp-reliability-") as folder:
        status, closing = run_tests(Path(folder))
        sections = load(Path(folder))
    print("\n".join(totals(sections)))
    print()
    print("\n".join(table(sections)))
    print()
    print(f"pytest tests/reliability: {closing}")
    if status != 0:
        print("The suite did not pass: the figures above are incomplete.", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
