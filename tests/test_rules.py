"""The import rules stay complete: every core module is either the desktop's door or the
engine's machinery, so a new module cannot slip past the import contract unclassified."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def test_every_core_module_is_in_the_door_or_forbidden_to_the_desktop():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    door = set(config["tool"]["kling-preflight"]["desktop_door"])
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c.get("source_modules") == ["desktop"]]
    machinery = {name for name in contract["forbidden_modules"] if name.startswith("core")}
    modules = {"core"} | {f"core.{path.stem}" for path in (ROOT / "core").glob("*.py") if path.stem != "__init__"}
    assert not door & machinery, "a module is both the door and forbidden"
    assert door | machinery == modules, "classify each core module in pyproject.toml: the desktop's door or forbidden"
