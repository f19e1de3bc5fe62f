"""The offline detector's mistakes and the face and photo rules, measured on a labelled set.

``python -m bench.faces [--quick]``: builds the cases of :mod:`bench.face_cases` (the real
photos in ``resources/samples`` and copies cut at the edge, scaled down to tiny faces, put
side by side, blurred, darkened, brightened, painted and printed), runs the ``local``
provider once on each at a low threshold, and prints Markdown tables:

1. the detector at several confidence thresholds: faces found, missed and false boxes;
2. each rule at several values (the others at their defaults): which derived cases it
   catches and how many clean portraits it would wrongly send to review;
3. at the defaults: each kind's verdicts and warnings;
4. what the local measurement costs per photo, against the detector's own call.

A detection matches a true face when their intersection over union is at least 0.3.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.common import arguments, print_machine
from bench.face_cases import Case, cases
from core import quality
from core.models import ProbedImage
from core.providers import CheckContext, DictMemo, ProviderConfig

LOWEST = 0.3  # the detector is run once at this threshold, and its answer filtered after
DETECTOR_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
#: Each rule's setting and the values tried (the default among them).
RULE_VALUES = {
    "min_confidence": (0.7, 0.8, 0.85, 0.9),
    "face_min_share": (0.08, 0.12, 0.16, 0.2),
    "face_min_margin": (0.0, 0.02, 0.05, 0.1),
    "second_face_share": (0.3, 0.4, 0.5, 0.7),
    "min_sharpness": (10.0, 30.0, 60.0, 150.0),
    "min_brightness": (30.0, 50.0, 70.0),
    "max_brightness": (175.0, 200.0, 220.0, 240.0),
}
RULE_CODES = {
    "min_confidence": "low_confidence",
    "face_min_share": "face_small",
    "face_min_margin": "face_cut_off",
    "second_face_share": "several_faces",
    "min_sharpness": "blurry",
    "min_brightness": "too_dark",
    "max_brightness": "too_bright",
}


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def score(truth, found) -> tuple[int, int, int]:
    """:returns: found, missed, false boxes (each true face matched at most once)."""
    unmatched = list(found)
    hits = 0
    for box in truth:
        best = max(unmatched, key=lambda f: iou(box, f), default=None)
        if best is not None and iou(box, best) >= 0.3:
            unmatched.remove(best)
            hits += 1
    return hits, len(truth) - hits, len(unmatched)


def detect_all(items: list[Case]) -> tuple[dict[str, list[dict]], float]:
    """Run the local provider on every case at :data:`LOWEST`.

    :returns: per case name its faces as stored dicts, and the mean ms a call took.
    """
    from plugins.local import LocalProvider

    spent = 0.0
    out = {}
    with tempfile.TemporaryDirectory() as crops:
        provider = LocalProvider(ProviderConfig(settings={"threshold": LOWEST}, data_dir=Path(crops)))
        ctx = CheckContext(cancel=threading.Event(), memo=DictMemo())
        for case in items:
            sha = hashlib.sha256(case.data).hexdigest()
            image = ProbedImage(f"{case.name}.png", len(case.data), 0, sha, "PNG", None, None)
            started = time.perf_counter()
            result = provider.check(image, case.data, ctx)
            spent += time.perf_counter() - started
            out[case.name] = [
                {"x": f.x, "y": f.y, "width": f.width, "height": f.height, "confidence": f.confidence}
                for f in result.faces or ()
            ]
    return out, spent * 1000 / len(items)


def verdict(measured, faces, thresholds) -> tuple[str, tuple[str, ...]]:
    """The local provider's avatar verdict and the warning codes, as the store would decide."""
    if not faces:
        return "no", ()
    codes = tuple(w.code for w in quality.warnings_for(measured, faces, thresholds))
    # Every warning concerns the avatar workflow.
    return ("review" if codes else "yes"), codes


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    items = cases()
    if args.quick:  # every kind, fewer of each
        seen: Counter = Counter()
        items = [c for c in items if (seen.update([c.kind]) or seen[c.kind] <= 2)]
    print_machine()
    detected, detect_ms = detect_all(items)
    measured, measure_ms = {}, []
    for case in items:
        started = time.perf_counter()
        measured[case.name] = quality.measure(case.data)
        measure_ms.append((time.perf_counter() - started) * 1000)

    print("\n### The detector: faces found, missed and false boxes\n")
    print(f"{len(items)} photos holding {sum(len(c.boxes) for c in items)} faces "
          f"({sum(1 for c in items if c.kind == 'portrait')} clean portraits).\n")
    print("| threshold | found | missed | false boxes | false boxes on photos without a face |")
    print("|---|---|---|---|---|")
    for t in DETECTOR_THRESHOLDS:
        total = [0, 0, 0]
        false_empty = 0
        for case in items:
            faces = [f for f in detected[case.name] if f["confidence"] > t]
            boxes = [(f["x"], f["y"], f["width"], f["height"]) for f in faces]
            hit, miss, false = score(case.boxes, boxes)
            total = [total[0] + hit, total[1] + miss, total[2] + false]
            if not case.boxes:
                false_empty += false
        print(f"| {t} | {total[0]} | {total[1]} | {total[2]} | {false_empty} |")

    default_detector = 0.6
    at_default = {name: [f for f in faces if f["confidence"] > default_detector] for name, faces in detected.items()}
    kinds = sorted({c.kind for c in items if c.kind != "portrait"})

    print("\n### Each rule: derived cases it catches, portraits it sends to review\n")
    print("Detector at 0.6; the other rules at their defaults. A case is caught when the rule's "
          "warning is among its warnings. Cells: caught / cases of that kind where a face was found.\n")
    print("| rule | value | " + " | ".join(kinds) + " | clean portraits flagged |")
    print("|---|---|" + "---|" * len(kinds) + "---|")
    for setting, values in RULE_VALUES.items():
        code = RULE_CODES[setting]
        for value in values:
            thresholds = dataclasses.replace(quality.Thresholds(), **{setting: value})
            caught: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            portraits_flagged = 0
            for case in items:
                faces = at_default[case.name]
                if not faces:
                    continue
                _, codes = verdict(measured[case.name], faces, thresholds)
                if case.kind == "portrait":
                    portraits_flagged += code in codes
                else:
                    caught[case.kind][0] += code in codes
                    caught[case.kind][1] += 1
            default = " (default)" if getattr(quality.Thresholds(), setting) == value else ""
            cells = " | ".join(f"{caught[k][0]}/{caught[k][1]}" for k in kinds)
            print(f"| `{code}` | {value}{default} | {cells} | {portraits_flagged} |")

    print("\n### At the defaults: avatar verdict per kind\n")
    print("| kind | cases | yes | review | no | warnings (cases) | should not be yes |")
    print("|---|---|---|---|---|---|---|")
    by_kind: dict[str, list[Case]] = defaultdict(list)
    for case in items:
        by_kind[case.kind].append(case)
    for kind, group in by_kind.items():
        verdicts: Counter = Counter()
        codes: Counter = Counter()
        for case in group:
            v, found = verdict(measured[case.name], at_default[case.name], quality.Thresholds())
            verdicts[v] += 1
            codes.update(set(found))
        listed = ", ".join(f"`{c}` {n}" for c, n in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"
        wrong = verdicts["yes"] if not group[0].want_yes else verdicts["review"] + verdicts["no"]
        print(f"| {kind} | {len(group)} | {verdicts['yes']} | {verdicts['review']} | {verdicts['no']} | {listed} | "
              f"{'wrong: ' + str(wrong) if wrong else 'all right'} |")

    ms = sorted(measure_ms)
    print("\n### Cost of the local measurement\n")
    print("| figure | value |")
    print("|---|---|")
    print(f"| measurement per photo (decode to grey at ≤ {quality.MEASURE_SIDE} px, Laplacian, grid), median | {ms[len(ms) // 2]:.1f} ms |")
    print(f"| the same, slowest | {ms[-1]:.1f} ms |")
    print(f"| the local provider's check on the same photos, mean | {detect_ms:.1f} ms |")
    print(f"| measurement against the check | {sum(ms) / len(ms) / detect_ms:.2f} × |")


if __name__ == "__main__":
    main()
