"""The door into the engine: both front ends turn the user's choices into a ready
:class:`~core.runner.BatchRunner` here, so the provider lookup, its availability and the
run's options are decided in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .context import AppContext
from .errors import SaysSentence
from .runner import BatchRunner, RunOptions


class RunNotReady(SaysSentence):
    """The run cannot start; the message is the user's sentence."""


@dataclass(frozen=True)
class RunChoices:
    """What the user chose for one run (command-line flags, or the window's buttons)."""

    provider_id: str | None = None  # None: the user's default provider
    overrides: Mapping[str, str] = field(default_factory=dict)  # provider settings for this run only
    recursive: bool = True
    force: bool = False
    retry_failed: bool = False
    retry_ambiguous: bool = False
    dry_run: bool = False
    quick: bool = False  # skip the full decode of new files
    concurrency: int | None = None


def prepare_run(app: AppContext, db_path: str | Path, choices: RunChoices) -> BatchRunner:
    """A runner for ``choices``, not started.

    :raises RunNotReady: contradictory choices, or a provider that cannot run now (a dry run
        still may: it calls nothing).
    :raises core.plugins.UnknownProviderError: no such provider.
    :raises core.settings.SettingsError: a saved or overriding setting is invalid.
    :raises OSError: the provider's data folder cannot be made.
    """
    if choices.force and choices.retry_failed:
        raise RunNotReady("--force and --retry-failed cannot be used together.")
    provider = app.create_provider(choices.provider_id or app.default_provider_id(), choices.overrides or None)
    availability = provider.availability()
    if not availability.ready and not choices.dry_run:
        provider.close()
        raise RunNotReady(f"{provider.label} cannot run: {availability.reason}.")
    settings = app.settings
    options = RunOptions(
        recursive=choices.recursive,
        force=choices.force,
        retry_failed=choices.retry_failed,
        retry_ambiguous=choices.retry_ambiguous or settings.retry_ambiguous,
        dry_run=choices.dry_run,
        deep_check=settings.deep_check and not choices.quick,
        concurrency=choices.concurrency,
        quality=settings.quality_thresholds(),
    )
    return BatchRunner(db_path, provider, options)
