"""What every benchmark shares: seeded data, timing, peak memory, the table, the machine.

Data is made from a seed into a temporary folder (removed afterwards), or into
``--data DIR`` where a later run finds and reuses it. Pictures are crops of one seeded,
photo-like texture (smooth colour fields plus grain, which JPEG compresses like a photo),
encoded in two worker processes. Peak memory is measured in a child process, which reports
its own high-water mark, so one measurement never inherits another's.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "resources" / "samples"
#: Bumped whenever the generators change, so data left in --data DIR is not reused wrongly.
GENERATOR_VERSION = 1

# --- command line -----------------------------------------------------------------------------


def arguments(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes; a benchmark may add its own.

    :param description: one line on what the benchmark measures.
    :returns: a parser with ``--quick``, ``--data`` and ``--seed``.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a small, fast smoke run (figures are rougher)")
    parser.add_argument("--data", type=Path, help="make the data here, or reuse what an earlier run made here")
    parser.add_argument("--seed", type=int, default=20250101, help="seed of the generated data")
    return parser


# --- the machine ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on.

    :returns: CPU model, cores, RAM, Python, OS and Pillow versions, as display strings.
    """
    from PIL import __version__ as pillow_version

    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count() or "?"),
        "RAM": f"{_ram_bytes() / 2**30:.1f} GiB" if _ram_bytes() else "unknown",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": platform.platform(terse=False),
        "Pillow": pillow_version,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def print_machine() -> None:
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()))


# --- figures and the table -------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One line of a benchmark's table.

    ``ratio`` compares ``value`` with ``reference`` in the direction the goal is written
    (e.g. "× the bound", "× faster"); ``met`` is None for figures that have no goal.
    """

    name: str
    value: str
    reference: str = ""
    ratio: str = ""
    goal: str = ""
    met: bool | None = None


def print_table(title: str, figures: Sequence[Figure], notes: Sequence[str] = ()) -> None:
    """Print figures as a Markdown table (readable in a terminal, pasteable in the README)."""
    header = ("figure", "value", "bound / baseline", "ratio", "goal", "met?")
    rows = [
        (f.name, f.value, f.reference, f.ratio, f.goal, {True: "yes", False: "NO", None: ""}[f.met])
        for f in figures
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print()
    print(f"## {title}")
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    for note in notes:
        print(f"- {note}")
    sys.stdout.flush()


def goal_at_most(value: float, goal: float) -> bool:
    return value <= goal


#: Added under every table of a --quick run.
QUICK_NOTE = "--quick: a smoke run on smaller data; the goals are stated for the full sizes"


# --- timing -------------------------------------------------------------------------------------


@dataclass
class Stopwatch:
    """Wall and process CPU seconds of a ``with`` block."""

    wall: float = 0.0
    cpu: float = 0.0
    _start: tuple[float, float] = field(default=(0.0, 0.0), repr=False)

    def __enter__(self) -> "Stopwatch":
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._start[0]
        self.cpu = time.process_time() - self._start[1]


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


# --- peak memory --------------------------------------------------------------------------------


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux: VmHWM; elsewhere getrusage)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS says bytes, Linux KiB


def reset_peak_rss() -> bool:
    """Restart this process's high-water mark from its current RSS (Linux 4.0 and later).

    :returns: False where that cannot be done; the peak then covers everything before too.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def report_to_parent(figures: dict) -> None:
    """In a child process: print the figures, with the peak RSS, as the last line of JSON."""
    print(json.dumps({**figures, "peak_rss": peak_rss_bytes()}), flush=True)


def run_child(module: str, args: Sequence[str], *, extra_env: dict[str, str] | None = None, timeout: float = 900) -> dict:
    """Run ``python -m module args`` and read the JSON it reports on its last line.

    :param extra_env: variables added to the child's environment (e.g. a fake's key).
    :raises RuntimeError: the child failed; its error output is in the message.
    """
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


# --- generated data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    folder: Path
    files: int
    bytes: int
    #: Seconds spent making it; None when an earlier run's data was reused.
    made_in: float | None


@dataclass(frozen=True)
class FileSpec:
    """One picture to encode and the files to write from it.

    Every file gets its own comment (its name) inside the image, so no two files have the
    same content even when they share the picture. ``damage`` per file: "" (none),
    "truncated" (cut short), "corrupt" (a second start-of-image marker in the JPEG's pixel
    data: only a decode finds it).
    """

    paths: tuple[str, ...]
    width: int
    height: int
    fmt: str  # "JPEG" or "PNG"
    seed: int
    quality: int = 88
    progressive: bool = False
    damage: tuple[str, ...] = ()
    #: Seed of the texture the picture is cut from (one per data set).
    texture: int = 0
    #: A sample photo to scale up instead of the texture (for the face detector).
    sample: str | None = None


@contextlib.contextmanager
def prepared(name: str, params: dict, data_dir: Path | None, make: Callable[[Path], None]) -> Iterator[DataSet]:
    """Give a folder of generated files: reused from ``data_dir / name`` when an earlier run
    made it with the same parameters, else made by ``make(folder)``.

    Without ``data_dir`` the folder is temporary and removed afterwards.

    :raises SystemExit: ``data_dir / name`` holds something this benchmark did not make.
    """
    manifest = {"name": name, "generator": GENERATOR_VERSION, **params}
    if data_dir is None:
        temp = Path(tempfile.mkdtemp(prefix=f"kp-bench-{name}-"))
        try:
            yield _make(temp / "data", make)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return
    folder = data_dir / name
    marker = data_dir / f"{name}.manifest.json"
    if marker.exists() and json.loads(marker.read_text()).get("params") == manifest and folder.is_dir():
        files, size = _count(folder)
        yield DataSet(folder, files, size, None)
        return
    if folder.exists():
        if not marker.exists():
            raise SystemExit(f"{folder} exists and was not made by the benchmarks: choose another --data folder.")
        shutil.rmtree(folder)  # made by an older run with other parameters
    data = _make(folder, make)
    marker.write_text(json.dumps({"params": manifest}))
    yield data


def _make(folder: Path, make: Callable[[Path], None]) -> DataSet:
    folder.mkdir(parents=True)
    with Stopwatch() as sw:
        make(folder)
    # Write the data out now: gigabytes still being written back would slow whatever is
    # measured next that syncs (the scan's database) and nothing else.
    os.sync()
    files, size = _count(folder)
    return DataSet(folder, files, size, sw.wall)


def _count(folder: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _dirs, names in os.walk(folder):
        for n in names:
            files += 1
            size += os.stat(os.path.join(dirpath, n)).st_size
    return files, size


def photo_dimensions(rng: random.Random, low_mp: float, high_mp: float, too_wide: float = 0.0) -> tuple[int, int]:
    """A photo's size: megapixels log-uniform between the bounds, a common aspect ratio
    (landscape or portrait), or with probability ``too_wide`` 3:1, beyond Kling's 2.5:1."""
    megapixels = math.exp(rng.uniform(math.log(low_mp), math.log(high_mp)))
    if rng.random() < too_wide:
        aspect = 3.0
    else:
        aspect = rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3, 9 / 16])
    width = round(math.sqrt(megapixels * 1e6 * aspect))
    return width, max(1, round(width / aspect))


def write_files(specs: Sequence[FileSpec], workers: int | None = None) -> None:
    """Encode and write every spec, in worker processes (one per core)."""
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for spec in specs:
            _write_spec(spec)
        return
    # Biggest first, so the pool does not end waiting on one large picture.
    ordered = sorted(specs, key=lambda s: -(s.width * s.height * len(s.paths)))
    with ProcessPoolExecutor(workers) as pool:
        for _ in pool.map(_write_spec, ordered, chunksize=4):
            pass


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


#: The texture's side: a 12 MP picture of any aspect up to 3:1 fits in it.
_TEXTURE_SIDE = 6000


@functools.lru_cache(maxsize=1)
def _texture(seed: int):
    """A photo-like picture: smooth colour fields with luminance grain (made once per process)."""
    import numpy as np
    from PIL import Image, ImageChops

    rng = np.random.default_rng(seed)
    side = _TEXTURE_SIDE
    fields = Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).resize(
        (side, side), Image.Resampling.BICUBIC
    )
    grain = Image.effect_noise((side, side), 12)
    return ImageChops.add(fields, Image.merge("RGB", (grain, grain, grain)), scale=1.0, offset=-128)


def _picture(spec: FileSpec):
    from PIL import Image, ImageOps

    rng = random.Random(spec.seed)
    if spec.sample is not None:
        with Image.open(spec.sample) as im:
            im = im.convert("RGB")
        if rng.random() < 0.5:
            im = ImageOps.mirror(im)
        return im.resize((spec.width, spec.height), Image.Resampling.BICUBIC)
    texture = _texture(spec.texture)
    width, height = min(spec.width, _TEXTURE_SIDE), min(spec.height, _TEXTURE_SIDE)
    x = rng.randrange(0, _TEXTURE_SIDE - width + 1)
    y = rng.randrange(0, _TEXTURE_SIDE - height + 1)
    picture = texture.crop((x, y, x + width, y + height))
    if (width, height) != (spec.width, spec.height):
        picture = picture.resize((spec.width, spec.height))
    return picture


def encode(spec: FileSpec) -> bytes:
    """The spec's picture, encoded (without a comment or damage)."""
    import io

    picture = _picture(spec)
    buffer = io.BytesIO()
    if spec.fmt == "JPEG":
        picture.save(buffer, "JPEG", quality=spec.quality, progressive=spec.progressive)
    else:
        picture.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _write_spec(spec: FileSpec) -> None:
    encoded = encode(spec)
    for i, path in enumerate(spec.paths):
        data = with_comment(encoded, spec.fmt, os.path.basename(path).encode())
        damage = spec.damage[i] if i < len(spec.damage) else ""
        if damage == "truncated":
            data = data[: int(len(data) * random.Random(path).uniform(0.4, 0.9))]
        elif damage == "corrupt":
            data = _break_jpeg(data)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def with_comment(data: bytes, fmt: str, text: bytes) -> bytes:
    """The image with a comment (JPEG COM segment, PNG tEXt chunk) after its signature:
    the same pixels, different content (and hash)."""
    if fmt == "JPEG":
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
    body = b"Comment\x00" + text
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def _break_jpeg(data: bytes) -> bytes:
    """Put a second start-of-image marker inside the pixel data: a fatal decode error."""
    start = data.find(b"\xff\xda")
    length = int.from_bytes(data[start + 2 : start + 4], "big")
    at = start + 2 + length + (len(data) - start) // 3
    return data[:at] + b"\xff\xd8" + data[at + 2 :]


# --- running the pipeline -----------------------------------------------------------------------


def scan_only(roots: Sequence[Path], db_path: Path, *, deep: bool, threads: int | None = None):
    """Scan as ``kling-preflight scan --dry-run`` does: find, read, hash, probe, store, plan.

    :param deep: also decode every new file (``--quick`` turns this off).
    :param threads: scan threads; None for the runner's default.
    :returns: the runner's :class:`core.events.Plan`.
    """
    from core.events import Plan
    from core.providers import ProviderConfig
    from core.runner import BatchRunner, RunOptions
    from plugins.local import LocalProvider

    options = RunOptions(dry_run=True, deep_check=deep)
    if threads is not None:
        options = RunOptions(dry_run=True, deep_check=deep, scan_threads=threads)
    provider = LocalProvider(ProviderConfig(data_dir=db_path.parent / "crops"))
    plan = None
    for event in BatchRunner(db_path, provider, options).run([str(r) for r in roots]):
        if isinstance(event, Plan):
            plan = event
    return plan


def describe_plan(plan) -> str:
    """The plan in one line: files found, invalid and why."""
    why = ", ".join(f"{code} {n}" for code, n in sorted(plan.invalid_by_code.items()))
    return f"{plan.files_found:,} files, {plan.images:,} images, {plan.invalid:,} invalid ({why})"
