"""Fixtures shared by every test folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping

import pytest

pytest_plugins = ["tests.fakes.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "resources" / "samples"


def make_context(home: Path, backend, environ: Mapping[str, str] | None = None):
    """The app as a front end builds it, on ``home``, with keys in the keyring ``backend``
    and an environment of its own (by default only the home; never the real one)."""
    from core.context import AppContext
    from core.logs import Redactor
    from core.paths import HOME_ENV, AppPaths
    from core.secrets import KeyStore

    environ = {HOME_ENV: str(home)} if environ is None else environ
    redactor = Redactor()
    keystore = KeyStore(backend=backend, environ=environ, redactor=redactor)
    return AppContext(AppPaths(home), environ=environ, keystore=keystore, redactor=redactor)


def read_export_csv(path: Path) -> list[dict[str, str]]:
    """The rows of an exported CSV file, as a spreadsheet would read them (BOM and all)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


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
