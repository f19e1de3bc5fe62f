"""Remote checks: the CometAPI provider against its fake, with a fixed 200 ms latency.

    python -m bench.remote [--quick] [--data DIR] [--images N] [--concurrency N]
    python -m bench.remote --faults [--quick] [--provider cometapi|useapi] [--images N]

The fake runs in a separate process (``python -m tests.fakes cometapi``), so the CPU time
measured here is the client's alone. Measured in the same run:

- throughput of ``kling-preflight scan --provider cometapi`` (the check phase, after the
  scan) at concurrency 8, against the ideal, concurrency ÷ latency;
- the same against a plain sequential ``requests`` loop over the same files (read, base64,
  post, parse), the loop a user would write;
- CPU seconds per call, against that loop's;
- peak memory with 10 MB images, each case in its own process: more images at the same
  concurrency, then the same images at a higher concurrency.

``--faults`` measures instead, for each provider at its default concurrency, a batch against
a fake serving the fault mix of ``tests/fakes/faultmix.py`` (10 % 500s, 5 % 429s half with
``Retry-After: 1``, 3 % dropped connections, 2 % pages that are not JSON, 2 % answers slower
than the read timeout) against the same batch without faults: throughput, images billed
twice (from the fake's request log), and the longest time with no call in flight (from the
client's own record of its calls) against the longest wait the server asked for.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
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

#: The faults scenario: photos, and the client's read timeout (a slow answer takes longer).
FAULT_IMAGES = 1000
QUICK_FAULT_IMAGES = 150
FAULT_READ_TIMEOUT = 2.0
FAULT_SLOW = 3.0
FAULT_SEED = 14
GOAL_FAULT_THROUGHPUT = 0.7
GOAL_FAULT_GAP = 2.0
#: The longest wait each fake asks for: its Retry-After (1 s), or the provider's base wait
#: when a 429 comes without one.
RETRY_AFTER = 1.0


def make_photos(folder: Path, count: int, seed: int, low_mp: float = 0.3, high_mp: float = 2.0) -> None:
    """``count`` valid JPEG photos of 0.3 to 2 MP (by default), the size people upload."""
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        width, height = photo_dimensions(rng, low_mp, high_mp)
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
    """A fake provider (CometAPI unless told) in its own process, on 127.0.0.1; a context
    manager. ``extra``: more options for ``python -m tests.fakes``."""

    def __init__(self, latency: float, provider: str = "cometapi", extra: tuple[str, ...] = ()) -> None:
        self.latency = latency
        self.provider = provider
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.base_url = self.key = ""

    def __enter__(self) -> "FakeProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes", self.provider, "--latency", str(self.latency), "--quiet", *self.extra],
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


def check_phase(runner, folder: Path):
    """Run the batch over ``folder``; time its check phase (from the plan to the end).

    :returns: the stopwatch and the batch's summary.
    """
    from core.events import Finished, Plan

    check = Stopwatch()
    summary = None
    for event in runner.run([str(folder)]):
        if isinstance(event, Plan):
            check.__enter__()
        elif isinstance(event, Finished):
            check.__exit__()
            summary = event.summary
    assert summary is not None
    return check, summary


def run_checks(folder: Path, db: Path, base_url: str, key: str, concurrency: int) -> dict:
    """Scan ``folder`` and check every image with CometAPI, as the command line does.

    :returns: the check phase's wall and CPU seconds, the calls made and how they ended.
    """
    from core.providers import ProviderConfig
    from core.runner import BatchRunner, RunOptions
    from plugins.cometapi import CometAPIProvider

    config = ProviderConfig(settings={"base_url": base_url, "concurrency": concurrency}, key=key, key_source="environment")
    runner = BatchRunner(db, CometAPIProvider(config), RunOptions(concurrency=concurrency))
    check, summary = check_phase(runner, folder)
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


# --- the faults scenario ------------------------------------------------------------------------


def provider_class(provider_id: str):
    from plugins.cometapi import CometAPIProvider
    from plugins.useapi import UseAPIProvider

    return {"cometapi": CometAPIProvider, "useapi": UseAPIProvider}[provider_id]


def timed_provider(provider_id: str, base_url: str, key: str):
    """The provider at its default concurrency, with the fault run's read timeout, noting
    when each of its calls started and ended (``calls``: pairs of ``time.monotonic()``)."""
    from core.providers import ProviderConfig

    base = provider_class(provider_id)

    class Timed(base):
        def __init__(self, config) -> None:
            super().__init__(config)
            self.calls: list[tuple[float, float]] = []

        def check(self, image, data, ctx):
            started = time.monotonic()
            try:
                return super().check(image, data, ctx)
            finally:
                self.calls.append((started, time.monotonic()))

    settings = {"base_url": base_url, "read_timeout": FAULT_READ_TIMEOUT}
    return Timed(ProviderConfig(settings=settings, key=key, key_source="environment"))


def longest_idle(calls: list[tuple[float, float]]) -> float:
    """The longest time between the first call's start and the last call's end with no
    call in flight."""
    longest, busy_until = 0.0, None
    for started, ended in sorted(calls):
        if busy_until is not None and started > busy_until:
            longest = max(longest, started - busy_until)
        busy_until = ended if busy_until is None else max(busy_until, ended)
    return longest


def fault_run(provider_id: str, folder: Path, work: Path, faults: bool) -> dict:
    """Check ``folder`` with ``provider_id`` against its fake, with or without the mix.

    :returns: wall seconds of the check phase, images by outcome, the longest time with no
        call in flight, the fake's requests, slow answers, and images billed twice.
    """
    from core.runner import BatchRunner

    tag = "faults" if faults else "clean"
    log_file = work / f"{provider_id}-{tag}.jsonl"
    extra = ("--log-file", str(log_file)) + (("--faults", str(FAULT_SEED), "--slow", str(FAULT_SLOW)) if faults else ())
    with FakeProcess(LATENCY, provider_id, extra) as fake:
        provider = timed_provider(provider_id, fake.base_url, fake.key)
        runner = BatchRunner(work / f"{provider_id}-{tag}.db", provider)
        check, summary = check_phase(runner, folder)
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    paid = "recognize" if provider_id == "cometapi" else "upload"
    billed = Counter(r["image"] for r in records if r["endpoint"] == paid and r["billed"] and r["image"])
    return {
        "wall": check.wall,
        "checked": summary.checked,
        "failed": summary.failed + summary.rejected,
        "left": summary.not_attempted,
        "concurrency": runner.concurrency,
        "idle": longest_idle(provider.calls),
        "held": runner.pacer.held,
        "requests": len(records),
        "kinds": dict(Counter(r["kind"] for r in records)),
        "slow": sum(r["kind"] == "slower_than_timeout" for r in records),
        "billed_twice": sum(n > 1 for n in billed.values()),
    }


def faults_main(args) -> int:
    count = args.images or (QUICK_FAULT_IMAGES if args.quick else FAULT_IMAGES)
    providers = [args.provider] if args.provider else ["cometapi", "useapi"]
    print_machine()
    work = Path(tempfile.mkdtemp(prefix="kp-bench-faults-"))
    figures, notes = [], []
    try:
        with prepared("remote-faults", {"images": count, "seed": args.seed}, args.data,
                      lambda d: make_photos(d, count, args.seed, 0.3, 0.6)) as photos:  # fmt: skip
            print(f"Data: {photos.files} photos ({photos.bytes / 1e6:,.0f} MB)", flush=True)
            for provider_id in providers:
                clean = fault_run(provider_id, photos.folder, work, faults=False)
                print(f"{provider_id} without faults: {clean}", flush=True)
                faulty = fault_run(provider_id, photos.folder, work, faults=True)
                print(f"{provider_id} with faults: {faulty}", flush=True)
                figures += fault_figures(provider_id, clean, faulty)
                notes.append(
                    f"{provider_id}: {faulty['checked']} checked, {faulty['failed']} failed with a reason, "
                    f"{faulty['left']} left, in {faulty['wall']:.0f} s against {clean['wall']:.0f} s without faults; "
                    f"{faulty['requests']} requests, of which {faulty['slow']} slower than the {FAULT_READ_TIMEOUT:g} s read timeout"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(
        f"Remote checks under faults: {LATENCY * 1000:.0f} ms latency, {count} photos, default concurrency",
        figures,
        notes=([QUICK_NOTE] if args.quick else []) + notes,
    )
    return 0


def fault_figures(provider_id: str, clean: dict, faulty: dict) -> list[Figure]:
    """Throughput against the fault-free run (time lost to read timeouts taken out: a slow
    answer holds one worker for the read timeout), images billed twice, and the longest
    time with no call in flight against the longest wait the server asked for."""
    done = lambda run: run["checked"] + run["failed"]  # noqa: E731  (handled: an answer or a reason)
    clean_rate = done(clean) / clean["wall"]
    raw_rate = done(faulty) / faulty["wall"]
    excluded = faulty["slow"] * FAULT_READ_TIMEOUT / faulty["concurrency"]
    rate_ex = done(faulty) / max(1e-9, faulty["wall"] - excluded)
    asked = max(RETRY_AFTER, provider_class(provider_id).rate_limit_base_wait)
    rate_unheld = done(faulty) / max(1e-9, faulty["wall"] - excluded - faulty["held"])
    return [
        Figure(
            f"{provider_id} at concurrency {faulty['concurrency']}: throughput under faults", f"{raw_rate:.2f} images/s",
            f"without faults: {clean_rate:.2f}/s", f"{rate_ex / clean_rate:.2f} × ({raw_rate / clean_rate:.2f} × with the read timeouts)",
            f"≥ {GOAL_FAULT_THROUGHPUT} ×", rate_ex / clean_rate >= GOAL_FAULT_THROUGHPUT,
        ),
        Figure(
            f"{provider_id}: the same without the {faulty['held']:.0f} s the server asked the pool to wait", f"{rate_unheld:.2f} images/s",
            f"without faults: {clean_rate:.2f}/s", f"{rate_unheld / clean_rate:.2f} ×",
        ),
        Figure(f"{provider_id}: images billed twice", str(faulty["billed_twice"]), "", "", "0", faulty["billed_twice"] == 0)
        if provider_id == "cometapi" else
        # useapi charges a subscription, not calls; an upload processed twice is a second asset.
        Figure(f"{provider_id}: images uploaded twice (a second asset in the Kling account)", str(faulty["billed_twice"])),
        Figure(
            f"{provider_id}: longest time with no call in flight", f"{faulty['idle']:.1f} s",
            f"longest wait asked: {asked:g} s", f"{faulty['idle'] / asked:.2f} ×",
            f"≤ {GOAL_FAULT_GAP:g} ×", faulty["idle"] <= GOAL_FAULT_GAP * asked,
        ),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--memory-child"]:
        return memory_child(argv[1:])
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help=f"images to check (default {IMAGES}, --quick {QUICK_IMAGES})")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--faults", action="store_true", help="the faults scenario instead (see above)")
    parser.add_argument("--provider", choices=["cometapi", "useapi"], help="--faults: one provider only")
    args = parser.parse_args(argv)
    if args.faults:
        return faults_main(args)
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
