"""The GitHub Actions workflow cannot run here: check it against GitHub's workflow schema, and
check that it covers what the project says it supports."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from ruamel.yaml import YAML

from tests.conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def schema_check(path: Path) -> subprocess.CompletedProcess:
    """check-jsonschema with the GitHub workflow schema it vendors (no download)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_workflow_passes_githubs_schema():
    done = schema_check(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_refuses_a_broken_workflow(tmp_path):
    broken = tmp_path / "ci.yml"
    broken.write_text(WORKFLOW.read_text(encoding="utf-8").replace("runs-on:", "runs_on:"), encoding="utf-8")
    done = schema_check(broken)
    assert done.returncode != 0
    assert "runs-on" in done.stdout + done.stderr


def supported_pythons() -> list[str]:
    """The versions the Makefile looks for, which pyproject's requires-python must bound."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return re.search(r"^SUPPORTED := (.+)$", makefile, re.M).group(1).split()


def test_the_matrix_covers_every_supported_system_and_python():
    matrix = YAML(typ="safe").load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["test"]["strategy"]["matrix"]
    systems = set(matrix["os"])
    assert any(s.startswith("ubuntu") for s in systems) and any(s.startswith("windows") for s in systems)
    assert {"macos-13", "macos-14"} <= systems  # Intel and Apple Silicon
    assert sorted(matrix["python"]) == sorted(supported_pythons())


def test_requires_python_agrees_with_the_makefile():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    versions = sorted(supported_pythons(), key=lambda v: tuple(int(n) for n in v.split(".")))
    lowest, highest = versions[0], versions[-1]
    major, minor = highest.split(".")
    assert project["requires-python"] == f">={lowest},<{major}.{int(minor) + 1}"
