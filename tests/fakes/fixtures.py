"""Pytest fixtures for the fake providers (loaded through ``pytest_plugins``)."""

from __future__ import annotations

from typing import Iterator

import pytest

from .cometapi import FakeCometAPI
from .server import FakeServer
from .useapi import FakeUseAPI


def _fail_on_internal_errors(fake: FakeServer) -> None:
    # A crash inside the fake must not pass for a provider fault the client handled.
    if fake.internal_errors:
        raise AssertionError(f"the fake {fake.name} server failed: {fake.internal_errors!r}")


@pytest.fixture
def fake_cometapi() -> Iterator[FakeCometAPI]:
    """A started :class:`FakeCometAPI` on a free port, closed afterwards."""
    with FakeCometAPI() as fake:
        yield fake
    _fail_on_internal_errors(fake)


@pytest.fixture
def fake_useapi() -> Iterator[FakeUseAPI]:
    """A started :class:`FakeUseAPI` with one account on a free port, closed afterwards."""
    with FakeUseAPI() as fake:
        yield fake
    _fail_on_internal_errors(fake)
