"""One truth (issue 11): no paid call without a yes, one plan, one summary that says what
``export`` counts, and exit statuses that tell the truth about the whole set.

The command line runs in a subprocess as a user runs it; the remote providers talk to the
fakes, whose request logs say what was sent.
"""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, read_export_csv
from tests.e2e.test_remote_cli import COMET_ENV, EXE, FACE_BOXES, SHA, USEAPI_ENV, VALID, cli_env, configure, kp
from tests.fakes.cometapi import COMET_ERRORS, COST
from tests.fakes.useapi import DEFAULT_ACCOUNT

# -- a folder with copies of one photo -----------------------------------------------------------


def photo_folder(tmp_path: Path) -> Path:
    """The samples, plus two copies of a portrait and one of a photo without a face, under
    other names: three copies of content the provider is asked about once."""
    folder = tmp_path / "photos"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("*.md"))
    shutil.copyfile(SAMPLES / "fr_obama.jpg", folder / "obama_copy_1.jpg")
    shutil.copyfile(SAMPLES / "fr_obama.jpg", folder / "obama_copy_2.jpg")
    shutil.copyfile(SAMPLES / "china.jpg", folder / "china_again.jpg")
    return folder


def printed(stdout: str, label: str) -> int:
    """The number the summary prints after ``label`` (thousands separators allowed)."""
    match = re.search(rf"^\s*{re.escape(label)}:?\s+([\d,]+)\s*$", stdout, re.MULTILINE)
    assert match, f"{label!r} is not in the summary:\n{stdout}"
    return int(match.group(1).replace(",", ""))


def export_count(home: Path, provider: str, *filters: str, env: dict | None = None) -> list[dict]:
    out = home.parent / f"export-{provider}-{len(list(home.parent.glob('export-*')))}.csv"
    result = kp("export", "--provider", provider, "--out", str(out), *filters, home=home, env=env)
    assert result.returncode == 0, result.stderr
    return read_export_csv(out)


def setup_provider(provider: str, home: Path, request) -> dict[str, str]:
    """Point ``provider`` at its fake (with faces and flags set); returns its environment."""
    if provider == "local":
        return {}
    fake = request.getfixturevalue(f"fake_{provider}")
    if provider == "cometapi":
        for name in VALID:
            face = name in FACE_BOXES
            fake.set_flags(SHA[name], head_seg=face, face_seg=face, cloth_seg=True, object_seg=True)
        configure(home, "cometapi", f"base_url={fake.base_url}")
        return {COMET_ENV: fake.key}
    for name, box in FACE_BOXES.items():
        fake.set_faces(SHA[name], [box])
    configure(home, "useapi", f"base_url={fake.base_url}", f"email={DEFAULT_ACCOUNT}")
    return {USEAPI_ENV: fake.key}


@pytest.mark.parametrize("provider", ["local", "cometapi", "useapi"])
def test_the_printed_summary_says_what_export_counts(provider, request, tmp_path):
    home = tmp_path / "home"
    env = setup_provider(provider, home, request)
    folder = photo_folder(tmp_path)
    result = kp("scan", str(folder), "--provider", provider, "--yes", home=home, env=env, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout

    rows = export_count(home, provider, env=env)
    assert printed(out, "Files") == len(rows) == 19
    statuses = Counter(row["status"] for row in rows)
    assert printed(out, "Checked") == statuses["checked"] == 14
    assert printed(out, "Invalid (not sent)") == statuses["invalid"] == 5
    with_face = export_count(home, provider, "--has-face", env=env)
    # Five portraits, one of them three times over.
    assert printed(out, "Images with a face") == len(with_face) == 7
    avatar = export_count(home, provider, "--verdict", "avatar", env=env)
    assert re.search(rf"^\s*avatar\s+{len(avatar)}\s", out, re.MULTILINE), out

    # Cost: once per content, however many files share it, added exactly.
    costs = {row["sha256"]: Decimal(row["cost"]) for row in rows if row["cost"]}
    if provider == "cometapi":
        assert len(costs) == 11 and sum(costs.values()) == 11 * Decimal(COST)
        assert f"Cost reported by the provider: {sum(costs.values())}" in out
        fake = request.getfixturevalue("fake_cometapi")
        assert len(fake.requests) == 11  # one billed call per distinct valid image
    else:
        assert not costs and "Cost" not in out


# -- no paid call without a yes ------------------------------------------------------------------


def test_a_paid_run_without_a_terminal_or_yes_sends_nothing_and_exits_2(fake_cometapi, tmp_path):
    home = tmp_path / "home"
    configure(home, "cometapi", f"base_url={fake_cometapi.base_url}")
    env = {COMET_ENV: fake_cometapi.key}
    result = kp("scan", str(SAMPLES), "--provider", "cometapi", home=home, env=env)  # stdin: /dev/null
    assert result.returncode == 2, result.stdout + result.stderr
    assert fake_cometapi.requests == []
    assert "--yes" in result.stderr and "Traceback" not in result.stderr
    assert "11 to check" in result.stderr  # the plan was shown
    # With --yes the same command sends.
    sent = kp("scan", str(SAMPLES), "--provider", "cometapi", "--yes", home=home, env=env)
    assert sent.returncode == 0, sent.stderr
    assert len(fake_cometapi.requests) == 11


def run_at_terminal(args: list[str], home: Path, env: dict, answer: str) -> tuple[int, str]:
    """Run the command line with a terminal as its standard input and type ``answer``."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(EXE), *args], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=cli_env(home, env), cwd=home.parent,
        )  # fmt: skip
        os.write(master, answer.encode())
        output, _ = proc.communicate(timeout=60)
        return proc.returncode, output.decode()
    finally:
        os.close(master)
        os.close(slave)


def test_declining_the_prompt_sends_nothing_and_prints_no_cost_of_other_runs(fake_cometapi, tmp_path):
    home = tmp_path / "home"
    configure(home, "cometapi", f"base_url={fake_cometapi.base_url}")
    env = {COMET_ENV: fake_cometapi.key}
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(SAMPLES / "fr_obama.jpg", folder / "a.jpg")
    first = kp("scan", str(folder), "--provider", "cometapi", "--yes", home=home, env=env)
    assert first.returncode == 0 and "Cost reported by the provider: 0.2" in first.stdout, first.stdout
    shutil.copyfile(SAMPLES / "fr_biden.jpg", folder / "b.jpg")

    code, output = run_at_terminal(["scan", str(folder), "--provider", "cometapi"], home, env, "n\n")
    assert "1 to check" in output and "Send 1 images" in output, output
    assert "Nothing was sent." in output
    assert "Cost" not in output and "Traceback" not in output
    assert code == 1  # one photo is still to be checked
    assert len(fake_cometapi.requests) == 1  # only the first run's call


# -- one plan: the dry run's plan and its summary agree --------------------------------------------


def test_the_dry_runs_plan_and_summary_show_the_same_numbers(tmp_path):
    """Three of the samples' invalid files break only the provider's rules (too small, too
    wide, a GIF); the summary used to count only the two whose content is broken."""
    home = tmp_path / "home"
    result = kp("scan", str(SAMPLES), "--provider", "local", "--dry-run", home=home)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    planned_invalid = int(re.search(r"^\s+(\d+) invalid, will not be sent", out, re.MULTILINE).group(1))
    planned_check = int(re.search(r"^\s+(\d+) to check:", out, re.MULTILINE).group(1))
    assert (planned_invalid, planned_check) == (5, 11)
    assert printed(out, "Invalid (not sent)") == planned_invalid
    assert printed(out, "Not checked yet") == planned_check
    # Nothing was called: the run after it checks every valid photo.
    real = kp("scan", str(SAMPLES), "--provider", "local", home=home)
    assert real.returncode == 0 and "This run: 11 checked" in real.stdout, real.stdout


# -- exit status: the whole set ------------------------------------------------------------------


def test_a_re_run_exits_1_while_failures_remain(fake_cometapi, tmp_path):
    """The re-run touches nothing (the failure may have been billed, so it is not retried
    without --retry-failed), but the set is not done: exit 1, and the summary says why."""
    home = tmp_path / "home"
    configure(home, "cometapi", f"base_url={fake_cometapi.base_url}")
    env = {COMET_ENV: fake_cometapi.key}
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("fr_obama.jpg", "fr_biden.jpg"):
        shutil.copyfile(SAMPLES / name, folder / name)
    fake_cometapi.enqueue("recognize", COMET_ERRORS["gateway_500"])
    first = kp("scan", str(folder), "--provider", "cometapi", "--yes", home=home, env=env)
    assert first.returncode == 1 and "1 failed" in first.stdout, first.stdout
    again = kp("scan", str(folder), "--provider", "cometapi", "--yes", home=home, env=env)
    assert "This run: 0 checked" in again.stdout, again.stdout
    assert "Not done: 1 photo is still open: 1 failed (retry with --retry-failed)." in again.stdout
    assert again.returncode == 1, again.stdout
    assert len(fake_cometapi.requests) == 2
    retried = kp("scan", str(folder), "--provider", "cometapi", "--retry-failed", "--yes", home=home, env=env)
    assert retried.returncode == 0 and "Not done" not in retried.stdout, retried.stdout


# -- what a user names is never dropped silently ------------------------------------------------


def test_a_named_file_that_is_not_an_image_gets_a_sentence_a_row_and_exit_1(tmp_path):
    home = tmp_path / "home"
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")
    photo = tmp_path / "photo.jpg"
    shutil.copyfile(SAMPLES / "fr_obama.jpg", photo)
    result = kp("scan", str(photo), str(notes), "--provider", "local", home=home)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{notes}: This is not an image." in result.stderr
    rows = {row["file"]: row for row in export_count(home, "local")}
    assert set(rows) == {"notes.txt", "photo.jpg"}
    assert rows["notes.txt"]["status"] == "invalid" and "not_an_image" in rows["notes.txt"]["problem_codes"]
    assert rows["photo.jpg"]["status"] == "checked"


# -- small things --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [(), ("keys",), ("settings",)])
def test_help_lists_every_command_whole(command, tmp_path):
    result = kp(*command, "--help", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("Commands:")[1]
    assert "..." not in commands, commands
    if command == ("settings",):
        assert "email=me@example.com" in commands


def test_export_into_a_reader_that_stops_early_exits_quietly(tmp_path):
    """``export | head -1``: the pipe closes while rows are still coming."""
    home = tmp_path / "home"
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(1500):  # far more than a pipe's buffer holds
        shutil.copyfile(SAMPLES / "flower.gif", folder / f"f{n:04d}.gif")
    assert kp("scan", str(folder), "--dry-run", "--quick", home=home).returncode == 0
    export = subprocess.Popen([str(EXE), "export"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=cli_env(home), cwd=tmp_path)
    first_line = export.stdout.readline()
    export.stdout.close()  # what `head -1` does once it has its line
    stderr = export.stderr.read().decode()
    assert export.wait(60) == 0, stderr
    assert first_line.startswith(b"\xef\xbb\xbfpath,") or first_line.startswith(b"path,")
    assert stderr == ""
