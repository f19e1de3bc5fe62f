"""Size and start-up of the frozen app (build it first: `make dist`).

Prints the bundle's size against the 200 MB aim, and the time from launching the frozen
desktop app to its first painted window (its ``--self-test`` prints "self-test: ok" right
after the first paint) against a baseline measured in the same run: the smallest PySide6
program that paints a window, run from the same virtual environment. Exits 0.

    .venv/bin/python bench/frozen.py [--dist dist/kling-preflight] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIM_BYTES = 200 * 1000 * 1000
AIM_START_S = 2.0

MINIMAL_QT = """
import sys
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QLabel
app = QApplication(sys.argv)
label = QLabel("hello")
class Watch(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            print("painted", flush=True)
            app.quit()
        return False
watch = Watch()
label.installEventFilter(watch)
label.show()
app.exec()
"""


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def drop_caches() -> bool:
    """Make the next start a cold one where the system allows it (root on Linux)."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def time_until(command: list[str], marker: str, env: dict) -> float:
    """Seconds from spawning ``command`` until it prints a line containing ``marker``."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        for line in proc.stdout:
            if marker in line:
                return time.perf_counter() - start
        raise RuntimeError(f"{command[0]} ended without printing {marker!r}")
    finally:
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist" / "kling-preflight")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    gui = args.dist / "kling-preflight-gui"
    if not gui.exists():
        print(f"No frozen app in {args.dist}: run `make dist` first.")
        return 0
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    with tempfile.TemporaryDirectory() as home:
        env["KLING_PREFLIGHT_HOME"] = home
        cold = drop_caches()
        first = time_until([str(gui), "--self-test"], "self-test: ok", env)
        app_runs = [time_until([str(gui), "--self-test"], "self-test: ok", env) for _ in range(args.runs)]
        base_runs = [time_until([sys.executable, "-c", MINIMAL_QT], "painted", env) for _ in range(args.runs)]
    size = folder_size(args.dist)
    tarballs = sorted(args.dist.parent.glob("kling-preflight-*.tar.gz"))
    app_median, base_median = statistics.median(app_runs), statistics.median(base_runs)

    print(f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"Qt platform: {env['QT_QPA_PLATFORM']}; runs: {args.runs}\n")
    rows = [
        ("bundle size (folder)", f"{size / 1e6:.0f} MB ({size / 2**20:.0f} MiB)", f"aim ≤ {AIM_BYTES / 1e6:.0f} MB",
         f"{size / AIM_BYTES:.2f} × aim", size <= AIM_BYTES),
        ("first start" + (" (caches dropped)" if cold else " (caches could not be dropped)"),
         f"{first:.2f} s", f"aim < {AIM_START_S:.0f} s", f"{first / AIM_START_S:.2f} × aim", first < AIM_START_S),
        ("start to first paint, median", f"{app_median:.2f} s", f"aim < {AIM_START_S:.0f} s",
         f"{app_median / AIM_START_S:.2f} × aim", app_median < AIM_START_S),
        ("same, minimal PySide6 window (baseline)", f"{base_median:.2f} s", "", f"app is {app_median / base_median:.1f} × baseline", None),
    ]
    if tarballs:
        rows.append(("tarball", f"{tarballs[-1].stat().st_size / 1e6:.0f} MB", "", tarballs[-1].name, None))
    width = max(len(r[0]) for r in rows)
    for name, value, goal, ratio, met in rows:
        verdict = "" if met is None else ("met" if met else "NOT met")
        print(f"{name:<{width}}  {value:>22}  {goal:>12}  {ratio:>24}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
