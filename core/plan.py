"""What a batch does with each image: the one rule, used by the runner (its plan and
``--dry-run``) and by the desktop's queue counts.

:func:`decide` looks at one image, the provider's rules and what that provider said about
it before, and returns an :class:`Action`. :class:`ActionCounts` adds decisions up into the
figures both front ends show.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Iterable

from .models import Constraints, ProbedImage, Problem, Status
from .validate import is_valid, validate


#: Problems that make a file no image at all: one the user named gets a row saying so, and
#: the run does not count as done (nothing named is dropped silently).
NOT_AN_IMAGE_CODES: frozenset[str] = frozenset({"not_an_image", "empty", "unreadable"})


def not_an_image(problems: Iterable[Problem]) -> Problem | None:
    """The problem that says a file is no image at all, if one does."""
    return next((p for p in problems if p.code in NOT_AN_IMAGE_CODES), None)


class Action(str, Enum):
    """What one batch does with one image."""

    INVALID = "invalid"  # breaks the provider's rules: record it as invalid (never sent)
    INVALID_KNOWN = "invalid_known"  # breaks them and is already recorded so
    CHECK = "check"  # send it to the provider
    KNOWN = "known"  # the provider answered before (checked or rejected): skipped
    FAILED_BEFORE = "failed_before"  # failed before and not retried this time
    SKIP = "skip"  # not this batch's business: a retry of failures leaves the rest alone

    @property
    def invalid(self) -> bool:
        return self in (Action.INVALID, Action.INVALID_KNOWN)


@dataclass(frozen=True)
class PlanChoices:
    """The user's choices that change a decision."""

    #: Check again images the provider already answered for.
    force: bool = False
    #: Check only images whose last check with this provider failed.
    retry_failed: bool = False


def decide(
    image: ProbedImage, status: Status | None, constraints: Constraints, choices: PlanChoices = PlanChoices()
) -> tuple[Action, tuple[Problem, ...]]:
    """What a batch does with ``image``, and the problems that go with it.

    :param status: what the provider said about this content before; None if nothing.
    :returns: the action, and every problem against ``constraints`` (blocking ones for an
        invalid image; otherwise the notes to keep with its result).
    """
    problems = validate(image, constraints)
    if not is_valid(problems):
        recorded = status is Status.INVALID and not choices.force
        return (Action.INVALID_KNOWN if recorded else Action.INVALID), problems
    notes = tuple(p for p in problems if not p.blocking)
    if choices.retry_failed:
        # What is not done yet: the failures, and images never checked (a photo added since,
        # or left by a stop), so that repeating `scan --retry-failed` until it exits 0 ends
        # with every photo answered. Answers stay as they are.
        if status in (Status.FAILED, None):
            return Action.CHECK, notes
        return (Action.KNOWN if status is not Status.INVALID else Action.SKIP), notes
    if choices.force or status in (None, Status.INVALID):
        return Action.CHECK, notes
    return (Action.FAILED_BEFORE if status is Status.FAILED else Action.KNOWN), notes


def first_blocking_code(problems: Iterable[Problem]) -> str:
    """The code an invalid image is counted under (its first blocking problem)."""
    return next((p.code for p in problems if p.blocking), "invalid")


class ActionTally:
    """Decisions added up, as the plan, the dry run and the queue panel show them."""

    def __init__(self) -> None:
        self.actions: Counter[Action] = Counter()
        #: Invalid images by their first blocking problem's code.
        self.invalid_by_code: Counter[str] = Counter()

    def add(self, action: Action, problems: Iterable[Problem] = ()) -> None:
        self.actions[action] += 1
        if action.invalid:
            self.invalid_by_code[first_blocking_code(problems)] += 1

    @property
    def invalid(self) -> int:
        return self.actions[Action.INVALID] + self.actions[Action.INVALID_KNOWN]

    @property
    def known(self) -> int:
        return self.actions[Action.KNOWN]

    @property
    def failed_before(self) -> int:
        return self.actions[Action.FAILED_BEFORE]

    @property
    def to_check(self) -> int:
        return self.actions[Action.CHECK]
