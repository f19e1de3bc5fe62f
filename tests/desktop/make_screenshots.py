"""Take the README's screenshots of the desktop app (not a test: nothing here is collected).

    xvfb-run -s "-screen 0 1440x900x24" .venv/bin/python tests/desktop/make_screenshots.py [OUT_DIR]

It works offscreen too (``QT_QPA_PLATFORM=offscreen``), with plainer fonts. Everything
happens in a temporary home folder with an in-memory keyring: the user's own data is never
touched. Writes to OUT_DIR (default ``docs/screenshots``):

- ``empty.png``: the window as a new user first sees it;
- ``running.png``: a run with the offline provider, part way through;
- ``results.png``: the results with a photo selected, its faces boxed in the detail pane;
- ``review.png``: the "Needs review" filter, with a photo whose face is cut off selected;
- with ``--extras``: ``plan.png`` (the paid-run confirmation, against the fake CometAPI),
  ``settings.png`` and ``dark.png`` (the results on a dark palette).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageEnhance  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtGui import QColor, QPalette  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from core.context import AppContext  # noqa: E402
from core.paths import AppPaths  # noqa: E402
from core.secrets import KeyStore  # noqa: E402
from desktop.app import configure_application  # noqa: E402
from desktop.main_window import MainWindow  # noqa: E402
from tests.fakes.cometapi import FakeCometAPI  # noqa: E402
from tests.keyring_backend import MemoryKeyring  # noqa: E402

SAMPLES = ROOT / "resources" / "samples"
FACE_PHOTOS = ("fr_obama.jpg", "fr_biden.jpg", "mpl_grace_hopper.jpg", "sk_astronaut.png", "sk_camera.png")


def wait_until(app: QApplication, condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def settle(app: QApplication, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def make_photos(folder: Path) -> Path:
    """The samples plus a few variants of the portraits, so a run lasts long enough to be seen."""
    photos = folder / "Photos" / "shoot-2024-05"
    shutil.copytree(SAMPLES, photos, ignore=shutil.ignore_patterns("*.md"))
    for name in FACE_PHOTOS:
        with Image.open(SAMPLES / name) as image:
            image = image.convert("RGB")
            for n, factor in enumerate((0.85, 1.1, 1.25), start=1):
                ImageEnhance.Brightness(image).enhance(factor).save(photos / f"{Path(name).stem}_take{n}.jpg", quality=90)
    # A crop that cuts Grace Hopper's face at the left edge: usable, but a person should look.
    with Image.open(SAMPLES / "mpl_grace_hopper.jpg") as image:
        image.convert("RGB").crop((250, 0, 512, 600)).resize((393, 900)).save(photos / "hopper_cropped.jpg", quality=90)
    return photos


def save(widget: QWidget, path: Path) -> None:
    widget.grab().save(str(path))
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--extras", action="store_true", help="also the settings, plan and dark screenshots")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    app = QApplication.instance() or QApplication([sys.argv[0]])
    configure_application(app)
    with tempfile.TemporaryDirectory(prefix="demo-") as temp_name:
        temp = Path(temp_name)
        photos = make_photos(temp)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KLING_PREFLIGHT_")}
        context = AppContext(AppPaths(temp / "home"), environ=environ,
                             keystore=KeyStore(backend=MemoryKeyring(), environ=environ))
        window = MainWindow(context, QSettings(str(temp / "window.ini"), QSettings.Format.IniFormat))
        window.show()
        window.resize(1280, 800)
        settle(app, 0.5)
        save(window, out / "empty.png")

        window.add_paths([photos])
        wait_until(app, lambda: (window.queue.counts_for(str(photos)) or None) is not None
                   and window.queue.counts_for(str(photos)).complete)
        window.run_panel.select_provider("local")
        shots = {"taken": False}

        def grab_mid_run(progress) -> None:
            if not shots["taken"] and progress.total and 0.3 <= (progress.done + progress.failed) / progress.total <= 0.8:
                shots["taken"] = True
                settle(app, 0.05)
                save(window, out / "running.png")

        ended = {"done": False}
        window.run_ended.connect(lambda: ended.update(done=True))
        window.start_run()
        window.session.progress.connect(grab_mid_run)
        wait_until(app, lambda: ended["done"], timeout=120)
        if not shots["taken"]:
            print("the run was too quick to catch part way; running.png not written", file=sys.stderr)

        model, table = window.results.model, window.results.table
        wait_until(app, lambda: model.rowCount() > 0)
        target = next(n for n in range(model.rowCount()) if (model.row_at(n) or {}).get("file") == "fr_obama.jpg")
        table.selectRow(target)
        table.scrollTo(model.index(target, 0))
        settle(app, 2.0)  # thumbnails and the preview load in the background
        save(window, out / "results.png")

        window.results.filter_bar.quick_actions["review"].trigger()
        wait_until(app, lambda: any((model.row_at(n) or {}).get("file") == "hopper_cropped.jpg" for n in range(model.rowCount())))
        table.selectRow(next(n for n in range(model.rowCount()) if (model.row_at(n) or {}).get("file") == "hopper_cropped.jpg"))
        settle(app, 2.0)
        save(window, out / "review.png")

        if args.extras:
            with FakeCometAPI() as fake:
                context.keystore.set("cometapi", fake.key)
                context.save_settings(context.settings.with_provider_value("cometapi", "base_url", fake.base_url))
                window.run_panel.refresh_providers()
                window.run_panel.select_provider("cometapi")
                window.start_run()
                wait_until(app, lambda: window.run_panel.plan_dialog is not None)
                settle(app, 0.3)
                save(window.run_panel.plan_dialog, out / "plan.png")
                window.run_panel.plan_dialog.reject()
                wait_until(app, lambda: window.session is None)
            window.run_panel.select_provider("local")
            window.open_settings()
            settle(app, 0.5)
            dialog = window.settings_dialog
            dialog.tabs.setCurrentIndex(1)
            settle(app, 0.3)
            save(dialog, out / "settings.png")
            dialog.reject()
            _dark(app)
            settle(app, 1.0)
            save(window, out / "dark.png")

        window.close()
        wait_until(app, lambda: not window.isVisible())
    return 0


def _dark(app: QApplication) -> None:
    """A dark palette like the ones desktops hand Qt, to check the app reads well on it."""
    palette = QPalette()
    for role, colour in {
        QPalette.ColorRole.Window: "#2b2b2b", QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f1f1f", QPalette.ColorRole.AlternateBase: "#262626",
        QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#333333",
        QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.Highlight: "#3d6cc0",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.PlaceholderText: "#9a9a9a",
        QPalette.ColorRole.Mid: "#4a4a4a", QPalette.ColorRole.ToolTipBase: "#333333",
        QPalette.ColorRole.ToolTipText: "#e6e6e6", QPalette.ColorRole.Link: "#8ab4f8",
    }.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    app.setPalette(palette)
    app.setStyle("Fusion")


if __name__ == "__main__":
    sys.exit(main())
