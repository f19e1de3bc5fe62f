"""Fixtures of the reliability suite.

- ``photo_folder``: 1,000 distinct 400 × 400 JPEGs, made once per session and shared
  (tests that change files copy them first).
- ``secret_ledger``: every key the suite hands out, and the folders it wrote outside
  pytest's temporary folder. The secrets sweep runs after every other test of the session
  and searches all of them.
- ``comet`` and ``useapi``: the fake servers, each with a fresh key from the ledger.
- ``make_app``: an :class:`~core.context.AppContext` built as the command line builds it,
  logging to its home's log file.
- ``figures``: records a test's figures for the README. When
  ``$KLING_PREFLIGHT_RELIABILITY_REPORT`` names a folder, each call writes one JSON file
  there (``bench/reliability_report.py`` collects them); otherwise it does nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Mapping

import pytest
from keyring.backends import fail
from PIL import Image

from core.context import AppContext
from core.logs import remove_handlers, setup_logging
from tests.conftest import make_context
from tests.fakes import FakeCometAPI, FakeUseAPI

REPORT_ENV = "KLING_PREFLIGHT_RELIABILITY_REPORT"
PHOTO_COUNT = 1000
PHOTO_SIDE = 400
SWEEP_MARKER = "sweep_last"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{SWEEP_MARKER}: runs after every other test of the session")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # The sweep searches what the whole session wrote, so it must come after all of it.
    items.sort(key=lambda item: item.get_closest_marker(SWEEP_MARKER) is not None)


class SecretLedger:
    """The keys the suite used and the folders outside pytest's temporary folder it wrote."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.folders: list[Path] = []

    def new_key(self, provider: str) -> str:
        """A fresh key shaped like a real one, remembered for the sweep."""
        key = f"sk-{provider}-{secrets.token_hex(20)}"
        self.keys.append(key)
        return key

    def folder(self, prefix: str) -> Path:
        """A new folder under /tmp that other users may enter (for tests that drop root),
        searched by the sweep and removed at the end of the session."""
        path = Path(tempfile.mkdtemp(prefix=f"kp-reliability-{prefix}-"))
        path.chmod(0o755)
        self.folders.append(path)
        return path


@pytest.fixture(scope="session")
def secret_ledger() -> Iterator[SecretLedger]:
    ledger = SecretLedger()
    yield ledger
    for folder in ledger.folders:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 distinct valid JPEGs (a JPEG comment makes each file's bytes unique)."""
    folder = tmp_path_factory.mktemp("photos")
    base = Image.linear_gradient("L").resize((PHOTO_SIDE, PHOTO_SIDE)).convert("RGB")
    for i in range(PHOTO_COUNT):
        base.save(folder / f"photo_{i:04d}.jpg", "JPEG", quality=80, comment=f"reliability photo {i}".encode())
    return folder


def _fail_on_internal_errors(fake) -> None:
    if fake.internal_errors:
        raise AssertionError(f"the fake {fake.name} server failed: {fake.internal_errors!r}")


@pytest.fixture
def comet(secret_ledger: SecretLedger) -> Iterator[FakeCometAPI]:
    with FakeCometAPI(key=secret_ledger.new_key("comet")) as fake:
        yield fake
    _fail_on_internal_errors(fake)


@pytest.fixture
def useapi(secret_ledger: SecretLedger) -> Iterator[FakeUseAPI]:
    with FakeUseAPI(key=secret_ledger.new_key("useapi")) as fake:
        yield fake
    _fail_on_internal_errors(fake)


@pytest.fixture
def make_app() -> Iterator[Callable[[Path, Mapping[str, str]], AppContext]]:
    """Build app contexts whose keys come from ``environ`` alone and whose logs go to
    ``home/logs``, redacted as the command line's are. The log handlers are removed after
    the test."""
    root = logging.getLogger()
    level = root.level

    def make(home: Path, environ: Mapping[str, str]) -> AppContext:
        app = make_context(home, fail.Keyring(), environ=environ)
        setup_logging(app.paths, redactor=app.redactor)
        return app

    yield make
    remove_handlers()
    root.setLevel(level)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``figures(section, **values)``: write this test's figures for the README, if asked.

    ``section`` is one of the Reliability table's rows (``faults``, ``kills``,
    ``hostile_files``, ``hostile_answers``, ``storage``, ``secrets``); every value must be
    JSON. Call it after the test's assertions, so a failing test reports nothing.
    """

    def record(section: str, **values) -> None:
        folder = os.environ.get(REPORT_ENV)
        if not folder:
            return
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        target = Path(folder) / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"test": request.node.nodeid, "section": section, **values}, indent=1))

    return record
