"""Scanning speed: a folder of JPEG and PNG photos from 0.3 to 12 MP, some of them broken.

    python -m bench.scan [--quick] [--data DIR] [--files N] [--threads N]

Measured in the same run, on the same files (all in the page cache, so reading costs the
least it can and the bound is as hard as it gets):

- the bound: read every byte once and hash it, with as many threads as the scan uses;
- a first scan as ``kling-preflight scan --dry-run --quick`` does it (find, read once, hash,
  header probe, end-marker check, store, rules, plan), against the bound;
- a first scan with the deep check (every file decoded, ``--dry-run`` without ``--quick``),
  against decoding the same files one by one with Pillow;
- a re-scan of the unchanged folder, against the first scan;
- the loop a user would write by hand (open and fully decode each file with Pillow, one by
  one): how many times faster each scan is.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import (
    QUICK_NOTE,
    FileSpec,
    Figure,
    Stopwatch,
    arguments,
    describe_plan,
    photo_dimensions,
    prepared,
    print_machine,
    print_table,
    rate,
    scan_only,
    write_files,
    write_text,
)

FILES = 2000
QUICK_FILES = 300
LOW_MP, HIGH_MP = 0.3, 12.0
PNG_SHARE = 0.15
#: PNG pictures are costly to encode: each is written this many times (with its own comment).
PNG_COPIES = 5
FILES_PER_FOLDER = 100

GOAL_BOUND = 1.3
GOAL_DEEP = 1.7
GOAL_RESCAN = 20.0


def make_photos(folder: Path, count: int, seed: int) -> None:
    """Write ``count`` files: JPEG and PNG photos of 0.3 to 12 MP in folders of 100, with
    about 2 % broken (truncated, corrupt, empty, not an image) and some that break the rules
    (wider than 2.5:1, PNGs over 10 MB)."""
    rng = random.Random(seed)
    specs: list[FileSpec] = []
    pngs: list[tuple[str, str]] = []
    for i in range(count):
        path = str(folder / f"shoot_{i // FILES_PER_FOLDER:02d}" / f"IMG_{i:05d}")
        roll = rng.random()
        if roll < 0.005:
            write_text(Path(path + ".jpg"), "Shopping list: milk, eggs, a new camera.\n")
        elif roll < 0.0075:
            write_text(Path(path + ".png"), "")
        elif rng.random() < PNG_SHARE:
            pngs.append((path + ".png", "truncated" if rng.random() < 0.03 else ""))
        else:
            width, height = _dimensions(rng)
            damage = rng.choices(["", "truncated", "corrupt"], [0.98, 0.01, 0.01])[0]
            suffix = rng.choice([".jpg", ".jpg", ".jpg", ".JPG", ".jpeg"])
            specs.append(
                FileSpec(
                    (path + suffix,), width, height, "JPEG", rng.randrange(2**31),
                    quality=rng.randint(80, 94), progressive=rng.random() < 0.1, damage=(damage,), texture=seed,
                )
            )  # fmt: skip
    for start in range(0, len(pngs), PNG_COPIES):
        group = pngs[start : start + PNG_COPIES]
        width, height = _dimensions(rng)
        specs.append(
            FileSpec(
                tuple(p for p, _ in group), width, height, "PNG", rng.randrange(2**31),
                damage=tuple(d for _, d in group), texture=seed,
            )
        )  # fmt: skip
    write_files(specs)


def _dimensions(rng: random.Random) -> tuple[int, int]:
    return photo_dimensions(rng, LOW_MP, HIGH_MP, too_wide=0.02)


def list_files(folder: Path) -> list[str]:
    return sorted(os.path.join(d, n) for d, _, names in os.walk(folder) for n in names)


def read_and_hash(paths: list[str], threads: int) -> None:
    """The bound: every byte read once and hashed, ``threads`` files at a time."""

    def one(path: str) -> bytes:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).digest()

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, paths):
            pass


def decode_one_by_one(paths: list[str], *, reduced: bool = False) -> int:
    """What a user writes by hand: open and decode each file with Pillow, one at a time.

    :param reduced: decode JPEGs at 1/8 scale (every byte is still decoded, the pixels are
        not assembled), which is what our deep check does.
    :returns: how many files failed to decode.
    """
    from PIL import Image

    failed = 0
    for path in paths:
        try:
            with Image.open(path) as im:
                if reduced and im.format == "JPEG":
                    im.draft(None, (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
        except Exception:  # broken files are part of the data
            failed += 1
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, help=f"how many files (default {FILES}, --quick {QUICK_FILES})")
    parser.add_argument("--threads", type=int, help="scan threads (default: the runner's, one per core)")
    args = parser.parse_args(argv)
    count = args.files or (QUICK_FILES if args.quick else FILES)
    repeats = 1 if args.quick else 3
    decode_repeats = 1 if args.quick else 2
    from core.runner import RunOptions

    threads = args.threads or RunOptions().scan_threads

    print_machine()
    params = {"files": count, "seed": args.seed}
    with prepared("scan", params, args.data, lambda d: make_photos(d, count, args.seed)) as data:
        made = "reused" if data.made_in is None else f"made in {data.made_in:.1f} s"
        print(f"Data: {data.files:,} files, {data.bytes / 1e9:.2f} GB in {data.folder} ({made})", flush=True)
        paths = list_files(data.folder)
        megabytes = data.bytes / 1e6
        work = Path(tempfile.mkdtemp(prefix="kp-bench-scan-db-"))
        try:
            read_and_hash(paths, threads)  # warm the page cache, so every measure starts equal
            bound_s, quick_s, rescan_s = [], [], []
            for i in range(repeats):
                with Stopwatch() as sw:
                    read_and_hash(paths, threads)
                bound_s.append(sw.wall)
                db = work / f"quick{i}.db"
                with Stopwatch() as sw:
                    quick_plan = scan_only([data.folder], db, deep=False, threads=threads)
                quick_s.append(sw.wall)
            for _ in range(repeats):
                with Stopwatch() as sw:
                    rescan_plan = scan_only([data.folder], db, deep=False, threads=threads)
                rescan_s.append(sw.wall)
            print(f"Bound {bound_s}, first scans {quick_s}, re-scans {rescan_s}", flush=True)
            deep_s, pillow_s = [], []
            for i in range(decode_repeats):  # alternated, so both meet the same neighbours
                with Stopwatch() as sw:
                    deep_plan = scan_only([data.folder], work / f"deep{i}.db", deep=True, threads=threads)
                deep_s.append(sw.wall)
                with Stopwatch() as sw:
                    pillow_failed = decode_one_by_one(paths)
                pillow_s.append(sw.wall)
                print(f"Deep scan {deep_s[-1]:.1f} s, Pillow one by one {pillow_s[-1]:.1f} s", flush=True)
            with Stopwatch() as reduced_sw:
                decode_one_by_one(paths, reduced=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # Best of each: a neighbour on the machine only ever adds time, to either side.
    bound, quick, rescan = min(bound_s), min(quick_s), min(rescan_s)
    deep, pillow = min(deep_s), min(pillow_s)
    n = data.files

    def speed(seconds: float) -> str:
        return f"{rate(n, seconds):,.0f} files/s, {rate(megabytes, seconds):,.0f} MB/s"

    figures = [
        Figure(
            "first scan, quick (hash, header, rules, end marker)", speed(quick),
            f"read + hash, {threads} threads: {speed(bound)}", f"{quick / bound:.2f} × the bound's time",
            f"≤ {GOAL_BOUND} ×", quick / bound <= GOAL_BOUND,
        ),
        Figure(
            "first scan, deep (every file decoded)", speed(deep),
            f"Pillow, one by one: {speed(pillow)}", f"{pillow / deep:.2f} × faster",
            f"≥ {GOAL_DEEP} ×", pillow / deep >= GOAL_DEEP,
        ),
        Figure(
            "re-scan of the unchanged folder", f"{rescan * 1000:,.0f} ms",
            f"first scan, quick: {quick * 1000:,.0f} ms", f"{quick / rescan:.1f} × faster",
            f"≥ {GOAL_RESCAN:g} ×", quick / rescan >= GOAL_RESCAN,
        ),
        Figure(
            "hand-written loop vs our quick scan", speed(quick),
            f"Pillow, one by one: {speed(pillow)}", f"{pillow / quick:.1f} × faster",
        ),
        Figure(
            "hand-written loop vs our deep scan", speed(deep),
            f"Pillow, one by one: {speed(pillow)}", f"{pillow / deep:.1f} × faster",
        ),
        Figure(
            "deep scan vs the same decode work, one by one", speed(deep),
            f"Pillow, JPEG at 1/8 scale: {speed(reduced_sw.wall)}", f"{reduced_sw.wall / deep:.2f} × faster",
        ),
    ]  # fmt: skip
    print_table(
        f"Scanning {n:,} files ({data.bytes / 1e9:.2f} GB, {LOW_MP}–{HIGH_MP:g} MP JPEG and PNG)",
        figures,
        notes=([QUICK_NOTE] if args.quick else []) + [
            f"quick scan: {describe_plan(quick_plan)}",
            f"deep scan: {describe_plan(deep_plan)}",
            f"re-scan: {describe_plan(rescan_plan)}",
            f"Pillow one by one: {pillow_failed} files failed to decode",
            f"times are the best of {repeats} (bound, first scan, re-scan) and of {decode_repeats} (deep scan, "
            "Pillow one by one), each pair alternated; the 1/8-scale loop ran once",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
