"""The offline detectors on the real photos: faces found, false boxes and time, per backend.

    python -m bench.detectors [--quick] [--photos DIR] [--repeats N]

The photos and their face boxes are ``../shared/photos`` (its README lists the boxes). Each
photo is decoded and scaled as the provider does (at most 640 px), then every backend that
loads here detects on the same input, one call at a time, interleaved photo by photo so that
a busy machine slows them alike. A detection above the provider's default threshold is a
face found when its box, mapped back to the photo, overlaps a listed face by an intersection
over union of at least 0.3; otherwise it is a false box. Time is per photo, the median of the
repeats, as a ratio to the first backend measured in the same run.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from bench.common import ROOT, arguments, print_machine

PHOTOS = ROOT.parent / "shared" / "photos"
REPEATS, QUICK_REPEATS = 7, 2
MATCH_IOU = 0.3


def listed_faces(folder: Path) -> dict[str, tuple[int, int, int, int]]:
    """The face boxes (x, y, w, h) the photos' README lists, by file name."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    return {name: tuple(int(v) for v in box) for name, *box in re.findall(r"(\w+\.(?:png|jpg)) (\d+),(\d+),(\d+),(\d+)", text)}


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return inter / (aw * ah + bw * bh - inter)


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=PHOTOS, help=f"photos and their README (default {PHOTOS})")
    parser.add_argument("--repeats", type=int, help=f"detections per photo and backend (default {REPEATS}, --quick {QUICK_REPEATS})")
    args = parser.parse_args(argv)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)

    from plugins.detectors import ORDER, backend
    from plugins.local import DEFAULT_THRESHOLD, DETECT_SIDE, _decode_upright, _detector_input, _locate

    faces = listed_faces(args.photos)
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in {".jpg", ".png"})
    inputs = {}
    for path in photos:
        reduced, orientation, full_size = _decode_upright(path.read_bytes(), longest_at_least=DETECT_SIDE)
        scale, image = _detector_input(reduced, full_size)
        inputs[path.name] = (scale, image, full_size, orientation)

    backends = []
    for name in ORDER:
        try:
            detector = backend(name)
            detector.load()
        except ImportError as exc:
            print(f"{name}: not measured here ({exc})")
            continue
        backends.append(detector)
    times = {b.name: [] for b in backends}
    found = {b.name: 0 for b in backends}
    false = {b.name: 0 for b in backends}
    for name, (scale, image, full_size, orientation) in inputs.items():
        for detector in backends:
            detector.detect(image)  # warm: the first call may load weights
        for detector in backends:
            spent = []
            for _ in range(repeats):
                start = time.perf_counter()
                candidates = detector.detect(image)
                spent.append(time.perf_counter() - start)
            times[detector.name].append(statistics.median(spent) * 1000)
            kept = [c for c in candidates if c.confidence > DEFAULT_THRESHOLD]
            for detection in _locate(kept, scale, full_size, orientation):
                x0, y0, x1, y1 = detection.stored
                if name in faces and iou((x0, y0, x1 - x0, y1 - y0), faces[name]) >= MATCH_IOU:
                    found[detector.name] += 1
                else:
                    false[detector.name] += 1

    print_machine()
    print(f"\n{len(photos)} photos, {len(faces)} faces listed; threshold {DEFAULT_THRESHOLD}; {repeats} detections per photo\n")
    print("| backend | how it is called | faces found | false boxes | ms per photo, median (range) | × first |")
    print("|---|---|---|---|---|---|")
    baseline = statistics.median(times[backends[0].name]) if backends else 1.0
    for detector in backends:
        ms = times[detector.name]
        print(
            f"| {detector.name} {detector.version()} | {detector.call} | {found[detector.name]}/{len(faces)} "
            f"| {false[detector.name]} | {statistics.median(ms):.0f} ({min(ms):.0f}–{max(ms):.0f}) "
            f"| {statistics.median(ms) / baseline:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
