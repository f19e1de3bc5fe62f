"""Memory with size: peak RSS of a scan of 1,000 files, then of 20,000, each in its own process.

    python -m bench.memory [--quick] [--data DIR]

Both folders hold the same kind of small photos (JPEGs of 300 to 480 px a side), so the
only thing that changes is how many there are. The scan is ``kling-preflight scan
--dry-run``: find, read, hash, probe, decode-check, store, plan. Each child process
reports its own high-water mark (VmHWM), so one measurement never inherits another's.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import (
    QUICK_NOTE,
    FileSpec,
    Figure,
    Stopwatch,
    arguments,
    describe_plan,
    encode,
    mib,
    peak_rss_bytes,
    prepared,
    print_machine,
    print_table,
    report_to_parent,
    run_child,
    scan_only,
    with_comment,
)

COUNTS = (1_000, 20_000)
QUICK_COUNTS = (500, 5_000)
#: Distinct pictures; each file is one of them with its own comment, so every file differs.
PICTURES = 50
FILES_PER_FOLDER = 500
GOAL_GROWTH = 0.15


def make_small_photos(folder: Path, count: int, seed: int) -> None:
    """``count`` distinct small JPEGs (300 to 480 px a side) in folders of 500."""
    rng = random.Random(seed)
    pictures = [
        encode(FileSpec((), rng.randint(300, 480), rng.randint(300, 480), "JPEG", rng.randrange(2**31), quality=80, texture=seed))
        for _ in range(PICTURES)
    ]
    for i in range(count):
        sub = folder / f"day_{i // FILES_PER_FOLDER:03d}"
        if i % FILES_PER_FOLDER == 0:
            sub.mkdir()
        name = f"IMG_{i:06d}.jpg"
        (sub / name).write_bytes(with_comment(pictures[i % PICTURES], "JPEG", name.encode()))


def child(folder: Path) -> int:
    """In a child process: scan ``folder`` and report the peak RSS."""
    import core.runner  # noqa: F401  (imported before the baseline is taken)
    import plugins.local  # noqa: F401

    before = peak_rss_bytes()
    work = Path(tempfile.mkdtemp(prefix="kp-bench-memory-"))
    try:
        with Stopwatch() as sw:
            plan = scan_only([folder], work / "results.db", deep=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report_to_parent({"seconds": sw.wall, "plan": describe_plan(plan), "rss_before": before})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(Path(argv[1]))
    args = arguments(__doc__.splitlines()[0]).parse_args(argv)
    small, large = QUICK_COUNTS if args.quick else COUNTS

    print_machine()
    results = {}
    for count in (small, large):
        params = {"files": count, "seed": args.seed}
        with prepared(f"memory-{count}", params, args.data, lambda d: make_small_photos(d, count, args.seed)) as data:
            made = "reused" if data.made_in is None else f"made in {data.made_in:.1f} s"
            print(f"Data: {data.files:,} files, {data.bytes / 1e6:,.0f} MB ({made})", flush=True)
            results[count] = run_child("bench.memory", ["--child", str(data.folder)])
            print(f"{count:,} files: {results[count]}", flush=True)

    a, b = results[small], results[large]
    growth = b["peak_rss"] / a["peak_rss"] - 1
    per_file = (b["peak_rss"] - a["peak_rss"]) / (large - small)
    figures = [
        Figure(
            f"peak RSS, scan of {large:,} small files", mib(b["peak_rss"]),
            f"{small:,} files: {mib(a['peak_rss'])}", f"{growth:+.1%}",
            f"≤ +{GOAL_GROWTH:.0%}", growth <= GOAL_GROWTH,
        ),
        Figure(
            "memory per extra file", f"{per_file:,.0f} bytes",
            f"after imports: {mib(a['rss_before'])}",
        ),
        Figure(
            f"scan time, {large:,} vs {small:,} files", f"{b['seconds']:.1f} s",
            f"{a['seconds']:.1f} s", f"{b['seconds'] / a['seconds']:.1f} × for {large / small:.0f} × the files",
        ),
    ]  # fmt: skip
    print_table(
        "Memory with the number of files",
        figures,
        notes=([QUICK_NOTE] if args.quick else []) + [f"{small:,} files: {a['plan']}", f"{large:,} files: {b['plan']}"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
