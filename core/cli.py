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
from pathlib import Path
from typing import Callable, Iterator

import click

from . import __version__
from .console import ProgressDisplay, RowTally, describe_plan, progress_line, scan_line, summary_table
from .context import AppContext
from .errors import ProviderError, database_error_sentence, os_error_sentence
from .events import FileSkipped, Finished, ImageFinished, Plan, ProviderHalted, ScanProgress, Stopping, Waiting
from .export import FORMATS, export_file, export_rows
from .logs import setup_logging
from .plugins import BUILTIN_PLUGINS, UnknownProviderError
from .runner import BatchRunner, RunOptions
from .secrets import NoSecureStoreError
from .settings import SettingsError, parse_setting_assignment, resolve_provider_settings
from .store import RowFilter, Store, StoreError

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
        except OSError as exc:
            raise click.ClickException(os_error_sentence(exc)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    if force and retry_failed:
        raise UserError("--force and --retry-failed cannot be used together.")
    if export_path is not None and export_path.suffix.lower() not in FORMATS:
        raise UserError("--export needs a file name ending in .csv or .json.")
    provider_id = provider_id or app.default_provider_id()
    provider = app.create_provider(provider_id, _overrides(app, provider_id, overrides))
    availability = provider.availability()
    if not availability.ready and not dry_run:
        raise UserError(f"{provider.label} cannot run: {availability.reason}.")
    options = RunOptions(
        recursive=recursive,
        force=force,
        retry_failed=retry_failed,
        retry_ambiguous=retry_ambiguous or app.settings.retry_ambiguous,
        dry_run=dry_run,
        deep_check=app.settings.deep_check and not quick,
        concurrency=concurrency,
    )
    db_path = _db_path(app, db)
    runner = BatchRunner(db_path, provider, options)
    confirm = None if (yes or not sys.stdin.isatty()) else _confirm_paid_plan
    summary = _drive(runner, paths, confirm)
    # One pass over the rows feeds both the summary and the export.
    tally = RowTally()
    rows = tally.counting(_rows_for(db_path, provider.id, paths))
    written = export_rows(rows, export_path) if export_path is not None else sum(1 for _ in rows)
    click.echo(f"{provider.label} ({provider.id}) on {', '.join(str(p) for p in paths)}")
    click.echo(summary_table(summary, tally))
    click.echo(f"Results database: {db_path}")
    if export_path is not None:
        click.echo(f"Wrote {written} rows to {export_path}")
    if not summary.complete and not summary.dry_run:
        sys.exit(EXIT_INCOMPLETE)


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


def _confirm_paid_plan(plan: Plan) -> bool:
    if not plan.costs_money:
        return True
    click.echo(describe_plan(plan), err=True)
    return click.confirm(f"Send {plan.to_check} images to {plan.provider_label}? Each call may be billed.", err=True)


def _drive(runner: BatchRunner, paths, confirm: Callable[[Plan], bool] | None):
    """Run the batch, drawing progress. The first Ctrl-C stops it cleanly (nothing new is
    sent, the calls in flight are awaited and every answer is written, then the summary is
    printed); a second one leaves those calls (journaled as unknown); a third quits."""
    display = ProgressDisplay()
    waiting: Waiting | None = None
    summary = None

    def on_interrupt(signum, frame):
        display.clear()
        if runner.stopping:  # the second Ctrl-C: leave the calls in flight (a third quits)
            signal.signal(signal.SIGINT, previous)
            runner.abandon()
            click.echo("Leaving the calls in flight; they are recorded as unknown.", err=True)
            return
        runner.cancel()
        click.echo("Stopping: no new calls; saving the results so far...", err=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        for event in runner.run(paths):
            if isinstance(event, ScanProgress):
                display.show(scan_line(event))
            elif isinstance(event, FileSkipped):
                display.clear()
                click.echo(f"Skipped {event.path}: {event.reason}", err=True)
            elif isinstance(event, Plan):
                display.clear()
                if runner.options.dry_run:
                    click.echo(describe_plan(event))
                elif confirm is not None and not confirm(event):
                    runner.cancel()
            elif isinstance(event, Stopping):
                display.clear()
                click.echo(f"{str(event).capitalize()} (Ctrl-C again to leave them)...", err=True)
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


def _rows_for(db_path: Path, provider_id: str, paths) -> Iterator[dict]:
    """The rows of the files under ``paths``, for the summary and the export."""
    with Store.open_readonly(db_path) as store:
        seen: set[str] = set()
        for root in paths:
            root = os.path.abspath(root)
            is_folder = os.path.isdir(root)
            # For a file, the query matches the path itself (and any rows left from a folder
            # that once had its name, which the check below keeps out).
            for row in store.query_rows(RowFilter(provider=provider_id, paths_under=root)):
                if row["path"] in seen or (not is_folder and row["path"] != root):
                    continue
                seen.add(row["path"])
                yield row


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

STATE_WORDS = {"ready": "ready", "needs_key": "needs a key", "unavailable": "unavailable"}


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
        line = f"{mark} {state.id:<10} {STATE_WORDS.get(state.availability.state, state.availability.state):<12} {state.label}"
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
    """Change settings of PROVIDER, e.g. `settings set useapi email=me@example.com`."""
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
