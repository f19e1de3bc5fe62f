"""The command line: ``kling-preflight scan | export | providers | keys | settings``.

Exit codes: 0 when every image was handled (checked, or found invalid and reported),
1 when some could not be checked (failed, or left because the provider stopped or you
pressed Ctrl-C), 2 for a usage mistake. Mistakes get a sentence, not a traceback.
"""

from __future__ import annotations

import functools
import getpass
import logging
import os
import signal
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

import click

from . import __version__
from .console import ProgressDisplay, describe_plan, progress_line, scan_line, summary_table
from .context import AppContext
from .errors import ProviderError, database_error_sentence, os_error_sentence
from .events import FileSkipped, Finished, ImageFinished, Plan, ProviderHalted, ScanProgress, Waiting
from .export import FORMATS, export_file
from .logs import setup_logging
from .plan import NOT_AN_IMAGE_CODES
from .plugins import BUILTIN_PLUGINS, UnknownProviderError
from .runner import BatchRunner
from .scan import stored_path
from .secrets import NoSecureStoreError
from .session import RunChoices, RunNotReady, prepare_run
from .settings import SettingsError, parse_setting_assignment, resolve_provider_settings
from .store import RowFilter, Store, StoreError
from .words import PROVIDER_STATE_WORDS

log = logging.getLogger("kling_preflight")

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2


class UserError(click.ClickException):
    """A mistake the user can fix; shown as one sentence with exit code 2."""

    exit_code = EXIT_USAGE


def friendly_errors(fn: Callable) -> Callable:
    """Turn the errors a user can cause into sentences instead of tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (StoreError, SettingsError, NoSecureStoreError) as exc:
            raise UserError(str(exc)) from None
        except UnknownProviderError as exc:  # the registry's message is a sentence
            raise UserError(exc.args[0] if exc.args else str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(database_error_sentence(exc)) from None
        except BrokenPipeError:  # `export | head`: the reader has all it wanted
            _leave_quietly()
        except OSError as exc:
            raise click.ClickException(os_error_sentence(exc)) from None

    return wrapper


def _leave_quietly() -> None:
    """Exit 0 without a word after the reader of standard output went away; what is still
    buffered goes nowhere, so Python's own flush at exit does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(EXIT_OK)


class _WholeHelp:
    """Commands listed in a help page with their whole first sentence, wrapped rather than
    cut off with "..." (Click's default cuts them to fit one line)."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return super().get_short_help_str(limit=10_000)  # type: ignore[misc]


class _Command(_WholeHelp, click.Command):
    pass


class _Group(_WholeHelp, click.Group):
    command_class = _Command
    group_class = type  # subgroups are _Group too


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kling-preflight")
@click.option("-v", "--verbose", is_flag=True, help="Show more detail on the terminal (the log file always has it).")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Check photos against Kling's input rules and recognition before you spend credits."""
    app = AppContext()
    setup_logging(app.paths, verbose=verbose, redactor=app.redactor)
    ctx.obj = app


def _db_path(app: AppContext, db: str | None) -> Path:
    return Path(db).expanduser() if db else app.paths.database


# -- scan ---------------------------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-p", "--provider", "provider_id", help="Provider id (see `kling-preflight providers`). Default: your default, else `local`.")
@click.option("--db", type=click.Path(dir_okay=False), help="Results database (default: in the app's data folder).")
@click.option("--export", "export_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the results of these files to a .csv or .json file.")
@click.option("-c", "--concurrency", type=click.IntRange(1, 32), help="Checks in flight at once.")
@click.option("--force", is_flag=True, help="Check again images this provider has already answered for.")
@click.option("--retry-failed", is_flag=True, help="Check only the images whose last check failed.")
@click.option("--retry-ambiguous", is_flag=True, help="Also retry failures that may already have been billed (timeouts, 5xx).")
@click.option("--dry-run", is_flag=True, help="Show what would be done; call nothing.")
@click.option("--quick", is_flag=True, help="Skip the full decode of new files (header and end-marker checks only).")
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Look inside subfolders.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE", help="Override a provider setting for this run.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before a run that costs money.")
@click.pass_obj
@friendly_errors
def scan(app: AppContext, paths, provider_id, db, export_path, concurrency, force, retry_failed,
         retry_ambiguous, dry_run, quick, recursive, overrides, yes) -> None:
    """Scan PATHS (files or folders), check new images, print a summary."""
    if export_path is not None and export_path.suffix.lower() not in FORMATS:
        raise UserError("--export needs a file name ending in .csv or .json.")
    provider_id = provider_id or app.default_provider_id()
    choices = RunChoices(
        provider_id=provider_id, overrides=_overrides(app, provider_id, overrides), recursive=recursive,
        force=force, retry_failed=retry_failed, retry_ambiguous=retry_ambiguous, dry_run=dry_run,
        quick=quick, concurrency=concurrency,
    )  # fmt: skip
    try:
        runner = prepare_run(app, _db_path(app, db), choices)
    except RunNotReady as exc:
        raise UserError(str(exc)) from None
    provider, db_path = runner.provider, runner.db_path
    gate = _PaidGate(yes=yes, interactive=sys.stdin.isatty())
    summary = _drive(runner, paths, gate)
    if gate.refused == "no_terminal":
        raise UserError(
            "Nothing was sent: this run may be billed and there is no terminal to ask you. "
            "Add --yes to send it (or --dry-run to see the plan only)."
        )
    if gate.refused == "declined":
        click.echo("Nothing was sent.")
        sys.exit(EXIT_INCOMPLETE)
    roots = tuple(os.path.abspath(p) for p in paths)
    row_filter = RowFilter(provider=provider.id, roots=tuple(stored_path(root) for root in roots))
    with Store.open_readonly(db_path) as store:
        counts = store.summary(row_filter)
        written = export_file(store, export_path, filter=row_filter) if export_path is not None else 0
        unhandled = _not_images_named(store, row_filter, roots)
    for path, sentence in unhandled:
        click.echo(f"{path}: {sentence}", err=True)
    click.echo(f"{provider.label} ({provider.id}) on {', '.join(stored_path(str(p)) for p in paths)}")
    click.echo(summary_table(summary, counts))
    click.echo(f"Results database: {db_path}")
    if export_path is not None:
        click.echo(f"Wrote {written:,} rows to {export_path}")
    if summary.dry_run:
        return
    if not summary.complete or counts.open or unhandled or gate.skipped_roots(roots):
        sys.exit(EXIT_INCOMPLETE)


def _not_images_named(store: Store, row_filter: RowFilter, roots) -> list[tuple[str, str]]:
    """The files the user named that are not images (or could not be read), each with the
    sentence saying so: they have a row, and the exit status says not everything was done."""
    files = tuple(stored_path(root) for root in roots if os.path.isfile(root))
    if not files:
        return []
    out = []
    for row in store.query_rows(replace(row_filter, roots=files)):
        problem = next((p for p in row["problems"] if p["code"] in NOT_AN_IMAGE_CODES), None)
        if row["path"] in files and problem is not None:
            out.append((row["path"], problem["message"]))
    return out


def _assignment(text: str) -> tuple[str, str]:
    try:
        return parse_setting_assignment(text)
    except ValueError as exc:  # its message is a sentence
        raise UserError(str(exc)) from None


def _overrides(app: AppContext, provider_id: str, assignments) -> dict[str, str]:
    """``--set NAME=VALUE`` pairs, refusing names the provider does not have (a typo must
    not silently fall back to the default, e.g. the real service's base URL)."""
    known = {spec.name for spec in app.registry.get(provider_id).settings_spec}
    out = {}
    for assignment in assignments:
        name, value = _assignment(assignment)
        if name not in known:
            raise UserError(f"{provider_id} has no setting {name!r}. Settings: {', '.join(sorted(known)) or 'none'}.")
        out[name] = value
    return out


class _PaidGate:
    """Whether a plan may go ahead: one that may be billed needs a yes, from ``--yes`` or
    from the user at a terminal. Without a terminal nobody can say yes, so it is refused."""

    def __init__(self, *, yes: bool, interactive: bool) -> None:
        self.yes = yes
        self.interactive = interactive
        self.refused: str | None = None  # "no_terminal" | "declined"
        self.skipped: list[str] = []  # paths the scan could not use

    def __call__(self, plan: Plan) -> bool:
        if not plan.costs_money or self.yes:
            return True
        click.echo(describe_plan(plan), err=True)
        if not self.interactive:
            self.refused = "no_terminal"
            return False
        if click.confirm(f"Send {plan.to_check:,} images to {plan.provider_label}? Each call may be billed.", err=True):
            return True
        self.refused = "declined"
        return False

    def skipped_roots(self, roots) -> list[str]:
        """The paths the user named that the scan could not use."""
        named = set(roots)
        return [path for path in self.skipped if path in named]


def _drive(runner: BatchRunner, paths, confirm: Callable[[Plan], bool] | None):
    """Run the batch, drawing progress. The first Ctrl-C stops it cleanly (every result
    obtained is written and the summary printed); a second one quits at once."""
    display = ProgressDisplay()
    waiting: Waiting | None = None
    summary = None

    def on_interrupt(signum, frame):
        signal.signal(signal.SIGINT, previous)
        runner.cancel()
        display.clear()
        click.echo("Stopping: saving the results so far (Ctrl-C again to quit at once)...", err=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        for event in runner.run(paths):
            if isinstance(event, ScanProgress):
                display.show(scan_line(event))
            elif isinstance(event, FileSkipped):
                display.clear()
                click.echo(f"Skipped {event.path}: {event.reason}", err=True)
                if isinstance(confirm, _PaidGate):
                    confirm.skipped.append(event.path)
            elif isinstance(event, Plan):
                display.clear()
                if runner.options.dry_run:
                    click.echo(describe_plan(event))
                elif confirm is not None and not confirm(event):
                    runner.cancel()
            elif isinstance(event, Waiting):
                waiting = event
                display.show(f"{event}")
            elif isinstance(event, ImageFinished):
                display.show(progress_line(event.progress, waiting))
                waiting = None
            elif isinstance(event, ProviderHalted):
                display.clear()
                click.echo(f"{event.message} The remaining images were not sent.", err=True)
            elif isinstance(event, Finished):
                summary = event.summary
    finally:
        signal.signal(signal.SIGINT, previous)
        display.clear()
    return summary


# -- export -------------------------------------------------------------------------------


@main.command()
@click.option("--db", type=click.Path(dir_okay=False), help="Results database (default: in the app's data folder).")
@click.option("-f", "--format", "fmt", type=click.Choice(["csv", "json"]), help="Default: from --out's suffix, else csv.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Output file (default: standard output).")
@click.option("-p", "--provider", "provider_id", help="Only this provider's results.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(["checked", "invalid", "rejected", "failed", "pending"]), help="Only these statuses (repeatable).")
@click.option("--verdict", type=click.Choice(["avatar", "tryon", "asset"]), help="Only images ready for this workflow.")
@click.option("--has-face/--no-face", "has_face", default=None, help="Only images with (or without) a face.")
@click.option("--bom/--no-bom", default=True, show_default=True, help="Start CSV files with a UTF-8 byte order mark (Excel needs it).")
@click.pass_obj
@friendly_errors
def export(app: AppContext, db, fmt, out, provider_id, statuses, verdict, has_face, bom) -> None:
    """Export results as CSV or JSON."""
    db_path = _db_path(app, db)
    if not db_path.exists():
        raise UserError(f"There is no results database at {db_path}: run `kling-preflight scan` first.")
    fmt = fmt or (FORMATS.get(out.suffix.lower(), "csv") if out is not None else "csv")
    row_filter = RowFilter(provider=provider_id, statuses=tuple(statuses) or None, verdict=verdict, has_face=has_face)
    with Store.open_readonly(db_path) as store:
        written = export_file(store, out, fmt=fmt, filter=row_filter, bom=bom and out is not None)
    if out is not None:
        click.echo(f"Wrote {written} rows to {out}", err=True)


# -- providers ----------------------------------------------------------------------------

@main.command()
@click.option("--check", is_flag=True, help="Verify each ready provider with a call that costs nothing.")
@click.pass_obj
@friendly_errors
def providers(app: AppContext, check: bool) -> None:
    """List the providers and whether each can run."""
    default = app.default_provider_id()
    failures = 0
    for state in app.states():
        mark = "*" if state.id == default else " "
        line = f"{mark} {state.id:<10} {PROVIDER_STATE_WORDS.get(state.availability.state, state.availability.state):<12} {state.label}"
        click.echo(line)
        details = []
        if state.availability.reason:
            details.append(state.availability.reason)
        if state.key_source not in ("not needed",):
            details.append(f"key: {state.key_source}")
        if state.cost_note:
            details.append(state.cost_note)
        if state.origin not in BUILTIN_PLUGINS:
            details.append(f"from plugin {state.origin}")
        for detail in details:
            click.echo(f"               {detail}")
        if check and state.availability.ready:
            ok, message = _verify(app, state.id)
            failures += not ok
            click.echo(f"               check: {'ok, ' if ok else 'FAILED: '}{message}")
    for problem in app.registry.problems:
        click.echo(f"! plugin {problem.plugin} was skipped: {problem.message}")
    click.echo(f"(* = default; keys are looked up in the keychain ({app.keystore.backend_description()}), then the environment)")
    if failures:
        sys.exit(EXIT_INCOMPLETE)


def _verify(app: AppContext, provider_id: str) -> tuple[bool, str]:
    provider = app.create_provider(provider_id)
    try:
        return True, provider.verify()
    except ProviderError as exc:
        return False, exc.message
    finally:
        provider.close()


# -- keys ---------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Store, remove and show provider keys (kept in the OS keychain, never in files)."""


def _key_provider(app: AppContext, provider_id: str):
    cls = app.registry.get(provider_id)
    if not cls.key_env:
        raise UserError(f"{cls.label} needs no key.")
    return cls


@keys.command("set")
@click.argument("provider_id")
@click.pass_obj
@friendly_errors
def keys_set(app: AppContext, provider_id: str) -> None:
    """Ask for PROVIDER's key (not echoed) and store it in the keychain."""
    cls = _key_provider(app, provider_id)
    if not app.keystore.secure():
        raise UserError(
            f"This computer has no secure key store ({app.keystore.backend_description()}). "
            f"Set {cls.key_env} in your environment instead."
        )
    key = getpass.getpass(f"{cls.label} key (input hidden): ") if sys.stdin.isatty() else sys.stdin.readline()
    try:
        app.keystore.set(provider_id, key, env_var=cls.key_env)
    except ValueError as exc:  # an empty key: the message is a sentence
        raise UserError(str(exc)) from None
    click.echo(f"Stored the {provider_id} key in {app.keystore.backend_description()}.")


@keys.command("delete")
@click.argument("provider_id")
@click.pass_obj
@friendly_errors
def keys_delete(app: AppContext, provider_id: str) -> None:
    """Remove PROVIDER's key from the keychain."""
    _key_provider(app, provider_id)
    if app.keystore.delete(provider_id):
        click.echo(f"Removed the {provider_id} key from the keychain.")
    else:
        click.echo(f"There was no {provider_id} key in the keychain.")


@keys.command("status")
@click.pass_obj
@friendly_errors
def keys_status(app: AppContext) -> None:
    """Show where each provider's key comes from."""
    click.echo(f"Key store: {app.keystore.backend_description()}")
    classes = dict(sorted(app.registry.providers.items()))
    for provider_id, lookup in app.keystore.status(classes.values()):
        click.echo(f"  {provider_id:<10} {lookup.detail}  (environment variable: {classes[provider_id].key_env})")


# -- settings -----------------------------------------------------------------------------


@main.group()
def settings() -> None:
    """Show and change provider settings (base URL, email, concurrency, timeouts)."""


@settings.command("show")
@click.pass_obj
@friendly_errors
def settings_show(app: AppContext) -> None:
    """Show every provider's settings and where the settings file is."""
    click.echo(f"Settings file: {app.paths.settings}")
    click.echo(f"Default provider: {app.default_provider_id()}")
    for provider_id, cls in sorted(app.registry.providers.items()):
        click.echo(f"{provider_id}:")
        try:
            values = resolve_provider_settings(app.settings, cls)
        except SettingsError as exc:
            click.echo(f"  (invalid: {exc})")
            continue
        for spec in cls.settings_spec:
            click.echo(f"  {spec.name:<16} {values.get(spec.name)!s:<32} {spec.help}")


@settings.command("set")
@click.argument("provider_id")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.pass_obj
@friendly_errors
def settings_set(app: AppContext, provider_id: str, assignments) -> None:
    """Change settings of PROVIDER (for example: settings set useapi email=me@example.com)."""
    cls = app.registry.get(provider_id)
    new = app.settings.with_provider_values(provider_id, _overrides(app, provider_id, assignments))
    resolve_provider_settings(new, cls)  # validate before saving
    app.save_settings(new)
    click.echo(f"Saved to {app.paths.settings}")


@settings.command("default")
@click.argument("provider_id")
@click.pass_obj
@friendly_errors
def settings_default(app: AppContext, provider_id: str) -> None:
    """Make PROVIDER the default for `scan`."""
    app.registry.get(provider_id)
    app.save_settings(app.settings.with_default_provider(provider_id))
    click.echo(f"Default provider: {provider_id}")


if __name__ == "__main__":  # python -m core.cli
    main()
