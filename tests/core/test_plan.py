"""One plan: the runner's plan and the desktop queue's counts decide with the same rule
(:func:`core.plan.decide`), so they show the same numbers."""

from __future__ import annotations

import shutil
import threading

from core.events import Plan
from core.models import Constraints, ProbedImage, Problem, Status
from core.plan import Action, PlanChoices, decide
from core.preview import CountJob, ProbeCache, count_images
from core.runner import BatchRunner, RunOptions
from tests.conftest import SAMPLES
from tests.core.test_runner import ScriptedProvider

#: Rules stricter than Kling's: the provider's own, which the content alone does not break.
STRICT = Constraints(min_side=500)


class StrictProvider(ScriptedProvider):
    constraints = STRICT


def image(width=400, height=400, problems=()) -> ProbedImage:
    return ProbedImage("/p/a.jpg", 1000, 0, "0" * 64, "JPEG", width, height, problems)


def test_decide_is_the_rule_for_every_case():
    broken = image(problems=(Problem("truncated", "Cut short."),))
    cases = [
        (image(), None, PlanChoices(), Action.CHECK),
        (image(), Status.CHECKED, PlanChoices(), Action.KNOWN),
        (image(), Status.REJECTED, PlanChoices(), Action.KNOWN),
        (image(), Status.FAILED, PlanChoices(), Action.FAILED_BEFORE),
        (image(), Status.FAILED, PlanChoices(retry_failed=True), Action.CHECK),
        (image(), None, PlanChoices(retry_failed=True), Action.CHECK),  # never checked: not done yet
        (image(), Status.CHECKED, PlanChoices(force=True), Action.CHECK),
        (image(width=200), None, PlanChoices(), Action.INVALID),
        (image(width=200), Status.INVALID, PlanChoices(), Action.INVALID_KNOWN),
        (broken, Status.INVALID, PlanChoices(force=True), Action.INVALID),
    ]
    for probed, status, choices, expected in cases:
        assert decide(probed, status, Constraints(), choices)[0] is expected, (probed, status, choices)


def test_the_queue_counts_what_the_run_plans(tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("*.md"))
    db = tmp_path / "results.db"
    provider = StrictProvider()
    # A first run that checks part of the folder, so some images are known.
    list(BatchRunner(db, provider, RunOptions(deep_check=False)).run([folder / "fr_obama.jpg", folder / "china.jpg"]))

    [plan] = [e for e in BatchRunner(db, StrictProvider(), RunOptions(dry_run=True)).run([folder]) if isinstance(e, Plan)]
    job = CountJob(str(folder), True, db, provider.id, STRICT)
    counts = count_images(job, ProbeCache(), threading.Event(), lambda counts: None)

    # Some photos pass Kling's rules but not this provider's: both count them invalid.
    assert plan.invalid > 5
    assert (counts.invalid, counts.checked, counts.failed) == (plan.invalid, plan.already_known, plan.failed_before)
    assert counts.images - counts.invalid - counts.checked - counts.failed == plan.to_check
