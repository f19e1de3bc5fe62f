"""``kling-preflight merge`` end to end, in a subprocess."""

from core.models import Status
from tests.core.test_merge import build, results
from tests.core.records import sha
from tests.e2e.test_cli import cli


def test_merge_brings_the_other_results_in_and_says_what_came(tmp_path):
    mine = build(tmp_path / "mine.db", "/a", [1, 2])
    theirs = build(tmp_path / "theirs.db", "/b", [2, 3, 4], Status.FAILED)
    done = cli("merge", str(theirs), "--db", str(mine), home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert f"From {theirs}: 2 results added, 0 replaced by newer answers" in done.stdout
    assert {key[0] for key in results(mine)} == {sha(n) for n in (1, 2, 3, 4)}


def test_merge_of_a_file_that_is_not_a_database_is_a_usage_mistake(tmp_path):
    mine = build(tmp_path / "mine.db", "/a", [1])
    junk = tmp_path / "notes.db"
    junk.write_text("not a database\n" * 200)
    refused = cli("merge", str(junk), "--db", str(mine), home=tmp_path / "home")
    assert refused.returncode == 2
    assert "is not a SQLite database" in refused.stderr and "Traceback" not in refused.stderr
