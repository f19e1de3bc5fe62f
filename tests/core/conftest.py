import pytest

from core.store import Store


@pytest.fixture
def store(tmp_path):
    """A new results database in the test's folder."""
    with Store(tmp_path / "results.db") as s:
        yield s
