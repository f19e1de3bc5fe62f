"""The app icon files each platform's build needs, rendered from the one SVG and up to date."""

from __future__ import annotations

from PIL import Image, ImageChops, ImageStat

from desktop.make_app_icons import ICO_SIZES, ICONS, SOURCE, render


def test_the_windows_icon_holds_every_size_from_16_to_256():
    with Image.open(ICONS / "kling-preflight.ico") as ico:
        assert sorted(ico.info["sizes"]) == sorted(ICO_SIZES)


def test_the_macos_icon_goes_up_to_1024_px():
    with Image.open(ICONS / "kling-preflight.icns") as icns:
        # (side, scale): 512 at scale 2 is the 1,024-px retina icon, which Pillow opens by default.
        assert {(16, 16, 2), (128, 128, 1), (256, 256, 1), (512, 512, 1), (512, 512, 2)} <= set(icns.info["sizes"])
        icns.load()
        assert icns.size == (1024, 1024)


def test_the_committed_icons_match_the_svg(qapp):
    fresh = render(SOURCE, 256)
    for name in ("kling-preflight.png", "kling-preflight.ico"):
        with Image.open(ICONS / name) as committed:
            if name.endswith(".ico"):
                committed.size = (256, 256)
            difference = ImageChops.difference(fresh, committed.convert("RGBA"))
            # Anti-aliasing may differ by a level here and there between Qt versions; a
            # changed drawing differs by far more.
            assert max(ImageStat.Stat(difference).mean) < 2.0, f"{name} is stale: run python -m desktop.make_app_icons"
