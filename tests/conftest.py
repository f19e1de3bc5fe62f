"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fakes.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "resources" / "samples"


@pytest.fixture
def app_home(tmp_path, monkeypatch) -> Path:
    """A private app data folder: settings, database, crops and logs go here."""
    home = tmp_path / "home"
    monkeypatch.setenv("KLING_PREFLIGHT_HOME", str(home))
    for name in ("KLING_PREFLIGHT_COMETAPI_KEY", "KLING_PREFLIGHT_USEAPI_KEY"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def samples() -> Path:
    return SAMPLES
