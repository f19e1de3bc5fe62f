"""Remote checks: the CometAPI provider against its fake, with a fixed 200 ms latency.

    python -m bench.remote [--quick] [--data DIR] [--images N] [--concurrency N]

The fake runs in a separate process (``python -m tests.fakes cometapi``), so the CPU time
measured here is the client's alone. Measured in the same run:

- throughput of ``kling-preflight scan --provider cometapi`` (the check phase, after the
  scan) at concurrency 8, against the ideal, concurrency ÷ latency;
- the same against a plain sequential ``requests`` loop over the same files (read, base64,
  post, parse), the loop a user would write;
- CPU seconds per call, against that loop's;
- peak memory with 10 MB images, each case in its own process: more images at the same
  concurrency, then the same images at a higher concurrency.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import (
    QUICK_NOTE,
    ROOT,
    FileSpec,
    Figure,
    Stopwatch,
    arguments,
    mib,
    peak_rss_bytes,
    photo_dimensions,
    prepared,
    print_machine,
    print_table,
    report_to_parent,
    reset_peak_rss,
    run_child,
    scan_only,
    write_files,
)

LATENCY = 0.2
IMAGES = 500
QUICK_IMAGES = 120
CONCURRENCY = 8
#: The sequential loop takes LATENCY per call: it runs over the first files only.
SEQUENTIAL = 100
QUICK_SEQUENTIAL = 30
#: 10 MB images for the memory figures: (count, concurrency) per child process.
BIG_SIDE = 1800  # 1800 × 1800 RGB noise, stored uncompressed: 9.7 MB, under Kling's 10 MiB
MEMORY_RUNS = ((24, 2), (72, 2), (72, 8))
QUICK_MEMORY_RUNS = ((8, 2), (24, 2), (24, 8))

GOAL_IDEAL = 0.9
GOAL_SEQUENTIAL = 7.0
GOAL_MEMORY_COUNT = 1.10
KEY_ENV = "KLING_PREFLIGHT_COMETAPI_KEY"


def make_photos(folder: Path, count: int, seed: int) -> None:
    """``count`` valid JPEG photos of 0.3 to 2 MP, the size people upload."""
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        width, height = photo_dimensions(rng, 0.3, 2.0)
        path = str(folder / f"IMG_{i:05d}.jpg")
        specs.append(FileSpec((path,), width, height, "JPEG", rng.randrange(2**31), quality=rng.randint(82, 92), texture=seed))
    write_files(specs)


def make_big_images(folder: Path, count: int, seed: int) -> None:
    """``count`` distinct PNGs of random noise, each just under 10 MB (noise does not compress)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (BIG_SIDE, BIG_SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"BIG_{i:04d}.png", compress_level=0)


class FakeProcess:
    """The fake CometAPI in its own process, on 127.0.0.1; a context manager."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.proc: subprocess.Popen | None = None
        self.base_url = self.key = ""

    def __enter__(self) -> "FakeProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes", "cometapi", "--latency", str(self.latency), "--quiet"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().split(": ", 1)[1].strip()
        self.key = self.proc.stdout.readline().split(": ", 1)[1].strip()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def run_checks(folder: Path, db: Path, base_url: str, key: str, concurrency: int) -> dict:
    """Scan ``folder`` and check every image with CometAPI, as the command line does.

    :returns: the check phase's wall and CPU seconds, the calls made and how they ended.
    """
    from core.events import Finished, Plan
    from core.providers import ProviderConfig
    from core.runner import BatchRunner, RunOptions
    from plugins.cometapi import CometAPIProvider

    config = ProviderConfig(settings={"base_url": base_url, "concurrency": concurrency}, key=key, key_source="environment")
    runner = BatchRunner(db, CometAPIProvider(config), RunOptions(concurrency=concurrency))
    check = Stopwatch()
    summary = None
    for event in runner.run([str(folder)]):
        if isinstance(event, Plan):
            check.__enter__()
        elif isinstance(event, Finished):
            check.__exit__()
            summary = event.summary
    assert summary is not None
    return {
        "wall": check.wall,
        "cpu": check.cpu,
        "checked": summary.checked,
        "failed": summary.failed + summary.rejected + summary.not_attempted,
    }


def sequential_loop(paths: list[Path], base_url: str, key: str) -> dict:
    """The loop a user writes: read, base64, one ``requests.post`` at a time."""
    import requests

    url = base_url + "/kling/v1/videos/image-recognize"
    headers = {"Authorization": f"Bearer {key}"}
    ok = 0
    with Stopwatch() as sw:
        for path in paths:
            image = base64.b64encode(path.read_bytes()).decode("ascii")
            answer = requests.post(url, json={"image": image}, headers=headers, timeout=60)
            ok += answer.status_code == 200 and answer.json().get("code") == 0
    return {"wall": sw.wall, "cpu": sw.cpu, "checked": ok}


def memory_child(argv: list[str]) -> int:
    """In a child process: scan a folder of big images, then check them; report the peak
    RSS of each phase (the scan's decode-check and the checks hold different buffers)."""
    folder, concurrency, base_url = Path(argv[0]), int(argv[1]), argv[2]
    import core.runner  # noqa: F401  (imported before the baseline is taken)
    import plugins.cometapi  # noqa: F401

    before = peak_rss_bytes()
    work = Path(tempfile.mkdtemp(prefix="kp-bench-remote-mem-"))
    try:
        scan_only([folder], work / "results.db", deep=True)
        scan_peak = peak_rss_bytes()
        separate = reset_peak_rss()
        # The same database: the scan finds every file unchanged, so this is the checks.
        figures = run_checks(folder, work / "results.db", base_url, os.environ[KEY_ENV], concurrency)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report_to_parent({**figures, "rss_before": before, "scan_peak": scan_peak, "phases_apart": separate})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--memory-child"]:
        return memory_child(argv[1:])
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help=f"images to check (default {IMAGES}, --quick {QUICK_IMAGES})")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    args = parser.parse_args(argv)
    count = args.images or (QUICK_IMAGES if args.quick else IMAGES)
    sequential_count = min(count, QUICK_SEQUENTIAL if args.quick else SEQUENTIAL)
    memory_runs = QUICK_MEMORY_RUNS if args.quick else MEMORY_RUNS
    concurrency = args.concurrency

    print_machine()
    work = Path(tempfile.mkdtemp(prefix="kp-bench-remote-"))
    big_count = max(n for n, _ in memory_runs)
    try:
        with (
            prepared("remote", {"images": count, "seed": args.seed}, args.data, lambda d: make_photos(d, count, args.seed)) as photos,
            prepared("remote-big", {"images": big_count, "seed": args.seed, "side": BIG_SIDE}, args.data,
                     lambda d: make_big_images(d, big_count, args.seed)) as big,
            FakeProcess(LATENCY) as fake,
        ):  # fmt: skip
            print(f"Data: {photos.files} photos ({photos.bytes / 1e6:,.0f} MB), {big.files} images of 10 MB; fake at {fake.base_url}", flush=True)
            ours = run_checks(photos.folder, work / "results.db", fake.base_url, fake.key, concurrency)
            print(f"Runner: {ours}", flush=True)
            paths = sorted(photos.folder.iterdir())[:sequential_count]
            plain = sequential_loop(paths, fake.base_url, fake.key)
            print(f"Sequential loop: {plain}", flush=True)
            memory = []
            for n, c in memory_runs:
                folder = work / f"big-{n}-{c}"
                folder.mkdir()
                for path in sorted(big.folder.iterdir())[:n]:
                    os.link(path, folder / path.name)
                result = run_child(
                    "bench.remote", ["--memory-child", str(folder), str(c), fake.base_url], extra_env={KEY_ENV: fake.key}
                )
                print(f"10 MB images, {n} at concurrency {c}: {result}", flush=True)
                memory.append((n, c, result))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ideal = concurrency / LATENCY
    throughput = ours["checked"] / ours["wall"]
    plain_rate = plain["checked"] / plain["wall"]
    cpu_call = ours["cpu"] / max(1, ours["checked"])
    plain_cpu_call = plain["cpu"] / max(1, plain["checked"])
    (n1, c1, m1), (n2, c2, m2), (n3, c3, m3) = memory
    whole1, whole2 = (max(m["peak_rss"], m["scan_peak"]) for m in (m1, m2))
    per_slot = (m3["peak_rss"] - m2["peak_rss"]) / (c3 - c2)
    big_size = big.bytes / big.files
    figures = [
        Figure(
            f"throughput at concurrency {concurrency}", f"{throughput:.1f} images/s",
            f"ideal {concurrency} ÷ {LATENCY:g} s: {ideal:.0f}/s", f"{throughput / ideal:.3f} of the ideal",
            f"≥ {GOAL_IDEAL}", throughput / ideal >= GOAL_IDEAL,
        ),
        Figure(
            "  ideal with the fake's own time per call", f"{throughput:.1f} images/s",
            f"{concurrency} × the loop's {plain_rate:.2f}/s: {concurrency * plain_rate:.1f}/s",
            f"{throughput / (concurrency * plain_rate):.3f} of it",
        ),
        Figure(
            "against a plain sequential requests loop", f"{throughput:.1f} images/s",
            f"loop: {plain_rate:.2f} images/s", f"{throughput / plain_rate:.1f} × faster",
            f"≥ {GOAL_SEQUENTIAL:g} ×", throughput / plain_rate >= GOAL_SEQUENTIAL,
        ),
        Figure(
            "CPU per call (client process)", f"{cpu_call * 1000:.1f} ms",
            f"loop: {plain_cpu_call * 1000:.1f} ms", f"{cpu_call / plain_cpu_call:.2f} × the loop's",
        ),
        Figure(
            f"peak RSS, 10 MB images: {n2} vs {n1} at concurrency {c1}", mib(whole2),
            f"{n1} images: {mib(whole1)}", f"{whole2 / whole1:.2f} ×",
            f"≤ {GOAL_MEMORY_COUNT} ×", whole2 / whole1 <= GOAL_MEMORY_COUNT,
        ),
        Figure(
            f"peak RSS of the checks: concurrency {c3} vs {c2} ({n3} images)", mib(m3["peak_rss"]),
            f"concurrency {c2}: {mib(m2['peak_rss'])}", f"{m3['peak_rss'] / m2['peak_rss']:.2f} ×",
        ),
        Figure(
            "memory per call in flight, 10 MB images", mib(per_slot),
            f"image size: {mib(big_size)}", f"{per_slot / big_size:.1f} × the image",
        ),
    ]  # fmt: skip
    print_table(
        f"Remote checks: fake CometAPI, {LATENCY * 1000:.0f} ms latency, {ours['checked']} images",
        figures,
        notes=([QUICK_NOTE] if args.quick else []) + [
            f"runner: {ours['checked']} checked, {ours['failed']} not checked, check phase {ours['wall']:.1f} s",
            f"sequential loop over the first {plain['checked']} of the same files, {plain['wall']:.1f} s",
            "peak RSS, one child process per case (after imports / scan / checks): "
            + "; ".join(
                f"{n} images at {c}: {mib(m['rss_before'])} / {mib(m['scan_peak'])} / {mib(m['peak_rss'])}"
                for n, c, m in memory
            ),
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
