"""The example provider package (examples/brightness-provider) installed by pip, as a
provider author's users would install it, and run through the real command line."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT, read_export_csv
from tests.e2e.test_cli import cli
from tests.imagefiles import make_jpeg

EXAMPLE = ROOT / "examples" / "brightness-provider"
MODULE = "kling_preflight_brightness"


def pip_install(source: Path, target: Path) -> Path:
    """Build and install ``source`` into ``target`` with pip, offline, without touching the venv."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    return target


def broken_copy(into: Path) -> Path:
    """The example under another name, importing a name the public module does not have."""
    copy = into / "broken-src"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    (copy / MODULE).rename(copy / f"{MODULE}_broken")
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("kling-preflight-brightness", "kling-preflight-brightness-broken")
                         .replace(f'brightness = "{MODULE}"', f'brightness_broken = "{MODULE}_broken"')
                         .replace(f'packages = ["{MODULE}"]', f'packages = ["{MODULE}_broken"]'))
    module = copy / f"{MODULE}_broken" / "__init__.py"
    module.write_text(module.read_text().replace("    say,\n", "    say,\n    NoSuchThing,\n"))
    return copy


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """PYTHONPATH values: the example alone, and the example beside a broken copy of it."""
    root = tmp_path_factory.mktemp("example")
    source = root / "src"
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    good = pip_install(source, root / "good")
    broken = pip_install(broken_copy(root), root / "broken")
    return {"good": str(good), "both": os.pathsep.join([str(good), str(broken)])}


@pytest.fixture
def with_plugins(installed, monkeypatch):
    """Put the installed packages where a subprocess's Python finds them; pass "good" or "both"."""

    def use(which: str) -> None:
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [installed[which], os.environ.get("PYTHONPATH")])))

    return use


def test_the_example_imports_nothing_of_the_app_but_the_public_module():
    tree = ast.parse((EXAMPLE / MODULE / "__init__.py").read_text())
    app_imports = {
        node.module for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("core", "plugins", "desktop")
    } | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names if alias.name.split(".")[0] in ("core", "plugins", "desktop")
    }
    assert app_imports == {"plugins.api"}


def test_providers_lists_the_installed_example(with_plugins, tmp_path):
    with_plugins("good")
    result = cli("providers", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["brightness"])
    assert "ready" in line and "Brightness (example plugin)" in line
    assert f"from plugin brightness ({MODULE})" in result.stdout
    assert "skipped" not in result.stdout


def test_scan_with_the_example_checks_refuses_and_takes_its_setting(with_plugins, tmp_path):
    with_plugins("good")
    photos = tmp_path / "photos"
    photos.mkdir()
    make_jpeg(photos / "bright.jpg", 400, 300)
    Image.new("RGB", (400, 300), (3, 3, 3)).save(photos / "dark.jpg", quality=95)
    out = tmp_path / "out.csv"
    result = cli("scan", str(photos), "--provider", "brightness", "--export", str(out), home=tmp_path / "home")
    assert "Traceback" not in result.stderr
    rows = {row["file"]: row for row in read_export_csv(out)}
    assert {name: row["provider"] for name, row in rows.items()} == {"bright.jpg": "brightness", "dark.jpg": "brightness"}
    assert rows["bright.jpg"]["status"] == "checked"
    # Every flag "cannot tell": the verdicts stay unknown, never guessed.
    assert (rows["bright.jpg"]["face_seg"], rows["bright.jpg"]["verdict_avatar"]) == ("", "unknown")
    assert rows["dark.jpg"]["status"] == "rejected"
    assert rows["dark.jpg"]["error"] == "The photo is too dark to judge (mean brightness 3 of 255)."
    assert result.returncode == 0, result.stdout + result.stderr  # a refused image is handled
    # Its setting reaches it: with nothing too dark, the dark photo is checked (its
    # brightness comes from the memo this time).
    again = cli("scan", str(photos), "--provider", "brightness", "--force", "--set", "dark_below=0",
                "--export", str(out), home=tmp_path / "home")
    assert again.returncode == 0, again.stderr
    assert {row["file"]: row["status"] for row in read_export_csv(out)} == {"bright.jpg": "checked", "dark.jpg": "checked"}


def test_a_broken_copy_is_named_and_skipped(with_plugins, tmp_path):
    with_plugins("both")
    result = cli("providers", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert f"! plugin brightness_broken ({MODULE}_broken) was skipped: ImportError" in result.stdout
    assert "NoSuchThing" in result.stdout
    # Its traceback is in the log file, not on the terminal.
    assert "Traceback" not in result.stderr
    assert "plugin brightness_broken" in result.stderr and "details in" in result.stderr
    # The good copy and the built-ins are still there and still work.
    listed = {line[2:].split()[0] for line in result.stdout.splitlines() if line[:1] in " *" and line[2:3].strip()}
    assert listed == {"brightness", "local", "cometapi", "useapi"}
    photos = tmp_path / "photos"
    photos.mkdir()
    make_jpeg(photos / "bright.jpg", 400, 300)
    scan = cli("scan", str(photos), "--provider", "brightness", home=tmp_path / "home")
    assert scan.returncode == 0, scan.stderr
    assert "Traceback" not in scan.stderr
