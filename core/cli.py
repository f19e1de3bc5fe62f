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
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

import click

from . import __version__
from .console import ProgressDisplay, describe_plan, progress_line, scan_line, summary_table
from .context import AppContext
from .errors import ProviderError, user_sentence
from .events import FileSkipped, Finished, ImageFinished, Plan, ProviderHalted, ScanProgress, Stopping, Waiting
from .export import FORMATS, export_file
from .quality import SETTINGS as QUALITY_SETTINGS
from .quality import measure_missing
from .logs import setup_logging
from .plan import NOT_AN_IMAGE_CODES
from .plugins import BUILTIN_PLUGINS
from .runner import BatchRunner
from .scan import stored_path
from .session import RunChoices, RunNotReady, prepare_run
from .settings import SettingsError, parse_setting_assignment, resolve_provider_settings
from .store import RowFilter, Store
from .words import PROVIDER_STATE_WORDS, skipped_sentence

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
        except BrokenPipeError:  # `export | head`: the reader has all it wanted
            _leave_quietly()
        except Exception as exc:
            sentence = user_sentence(exc)
            if sentence is None:  # a bug: its traceback is worth more than any sentence
                raise
            raise (UserError if sentence.mistake else click.ClickException)(sentence.text) from None

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
@click.option("--retry-failed", is_flag=True, help="Check only what is not done: images whose last check failed, and images never checked.")
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
                click.echo(skipped_sentence(event.path, event.reason), err=True)
                if isinstance(confirm, _PaidGate):
                    confirm.skipped.append(event.path)
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


# -- export -------------------------------------------------------------------------------


@main.command()
@click.option("--db", type=click.Path(dir_okay=False), help="Results database (default: in the app's data folder).")
@click.option("-f", "--format", "fmt", type=click.Choice(["csv", "json"]), help="Default: from --out's suffix, else csv.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Output file (default: standard output).")
@click.option("-p", "--provider", "provider_id", help="Only this provider's results.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(["checked", "invalid", "rejected", "failed", "pending"]), help="Only these statuses (repeatable).")
@click.option("--verdict", type=click.Choice(["avatar", "tryon", "asset", "review"]), help="Only images ready for this workflow; review: only those a person should look at first.")
@click.option("--has-face/--no-face", "has_face", default=None, help="Only images with (or without) a face.")
@click.option("--disagree", is_flag=True, default=None, help="Only images whose providers disagree about whether there is a face.")
@click.option("--bom/--no-bom", default=True, show_default=True, help="Start CSV files with a UTF-8 byte order mark (Excel needs it).")
@click.pass_obj
@friendly_errors
def export(app: AppContext, db, fmt, out, provider_id, statuses, verdict, has_face, disagree, bom) -> None:
    """Export results as CSV or JSON."""
    db_path = _db_path(app, db)
    if not db_path.exists():
        raise UserError(f"There is no results database at {db_path}: run `kling-preflight scan` first.")
    fmt = fmt or (FORMATS.get(out.suffix.lower(), "csv") if out is not None else "csv")
    review = True if verdict == "review" else None
    row_filter = RowFilter(provider=provider_id, statuses=tuple(statuses) or None, verdict=None if review else verdict,
                           has_face=has_face, review=review, disagree=disagree)
    with Store.open_readonly(db_path) as store:
        written = export_file(store, out, fmt=fmt, filter=row_filter, bom=bom and out is not None)
    if out is not None:
        click.echo(f"Wrote {written} rows to {out}", err=True)


# -- providers ----------------------------------------------------------------------------

#: The name that stands for the quality thresholds in `settings set` and `settings show`.
QUALITY = "quality"


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
        elif check and state.availability.state == "unavailable":
            # Set up but unusable (a base URL holding the API's path, a missing detector): a
            # script that checks before a paid run must not be told all is well.
            failures += 1
            click.echo("               check: FAILED: it cannot run (see above).")
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
    thresholds = app.settings.quality_thresholds()
    click.echo(f"{QUALITY}: (every provider; when a warning turns a yes into review)")
    for spec in QUALITY_SETTINGS:
        click.echo(f"  {spec.name:<18} {getattr(thresholds, spec.name)!s:<30} {spec.label}")


@settings.command("set")
@click.argument("provider_id")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.pass_obj
@friendly_errors
def settings_set(app: AppContext, provider_id: str, assignments) -> None:
    """Change settings of PROVIDER (for example: settings set useapi email=me@example.com) or the
    quality thresholds (for example: settings set quality min_confidence=0.8)."""
    if provider_id == QUALITY:
        _set_quality(app, assignments)
        return
    cls = app.registry.get(provider_id)
    new = app.settings.with_provider_values(provider_id, _overrides(app, provider_id, assignments))
    resolve_provider_settings(new, cls)  # validate before saving
    app.save_settings(new)
    click.echo(f"Saved to {app.paths.settings}")


def _set_quality(app: AppContext, assignments) -> None:
    """Save quality thresholds, then judge the stored results again (no provider is called)."""
    try:
        new = app.settings.with_quality_values(dict(_assignment(a) for a in assignments))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    app.save_settings(new)
    click.echo(f"Saved to {app.paths.settings}")
    db_path = _db_path(app, None)
    if db_path.exists():
        with Store(db_path) as store:
            measured = measure_missing(store)
            changed = store.recompute_warnings(new.quality_thresholds())
        if measured:
            click.echo(f"Measured {measured} images checked before quality was measured.")
        click.echo(f"Judged the stored results again: {changed} changed.")


@settings.command("default")
@click.argument("provider_id")
@click.pass_obj
@friendly_errors
def settings_default(app: AppContext, provider_id: str) -> None:
    """Make PROVIDER the default for `scan`."""
    app.registry.get(provider_id)
    app.save_settings(app.settings.with_default_provider(provider_id))
    click.echo(f"Default provider: {provider_id}")


# -- fix and collect ----------------------------------------------------------------------


def _colour(ctx, param, value: str) -> tuple[int, int, int]:
    from PIL import ImageColor

    try:
        return ImageColor.getrgb(value)[:3]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a colour: use a name (white) or #rrggbb.") from None


def _report_copies(records, out: Path, dry_run: bool) -> int:
    """Print a line per photo, write the manifest (not in a dry run), print the tally.

    :returns: how many photos were left without the copy they needed.
    """
    from .copies import NOT_FIXED, SKIPPED, OutputError, discard_output, write_manifest

    done: list = []
    verb = "would write" if dry_run else "wrote"
    try:
        for record in records:
            done.append(record)
            if record.copy:
                changes = f": {'; '.join(record.changes)}" if record.changes else ""
                click.echo(f"{verb} {record.copy}  (from {record.original}){changes}")
            elif record.action in (NOT_FIXED, SKIPPED):
                click.echo(f"cannot use {record.original}: {record.why}", err=True)
    except OutputError as exc:
        if done and not dry_run:
            try:
                click.echo(f"Manifest of what was done: {write_manifest(out, done)}", err=True)
            except OutputError as also:
                click.echo(str(also), err=True)
        if not dry_run:
            discard_output(out)
        raise click.ClickException(str(exc)) from None
    left = sum(r.action in (NOT_FIXED, SKIPPED) for r in done)
    made = sum(bool(r.copy) for r in done)
    passing = len(done) - made - left
    click.echo(f"{made} {'would be written' if dry_run else 'written'}, {left} could not be, {passing} needed nothing.")
    if not dry_run and done:
        click.echo(f"Manifest: {write_manifest(out, done)}")
    return left


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Folder for the copies (created when missing).")
@click.option("--lossless", is_flag=True, help="Write PNG copies instead of JPEG.")
@click.option("--background", default="white", show_default=True, callback=_colour, help="Colour transparency is flattened on, and padding of --pad colour.")
@click.option("--keep-gps", is_flag=True, help="Keep the GPS location (dropped by default).")
@click.option("--fit", type=click.Choice(["pad", "crop"]), default="pad", show_default=True, help="Photos outside 1:2.5 to 2.5:1: pad them, or crop them around their faces.")
@click.option("--pad", "pad_with", type=click.Choice(["blur", "colour"]), default="blur", show_default=True, help="Pad with a blurred extension of the photo or with the background colour.")
@click.option("--upscale", is_flag=True, help="Enlarge photos under 300 px (Lanczos); otherwise they are left and told why.")
@click.option("--dry-run", is_flag=True, help="Print what would be written; write nothing.")
@click.option("--db", type=click.Path(dir_okay=False), help="Results database: face boxes for --fit crop, and where copies are linked to their originals.")
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Look inside subfolders.")
@click.pass_obj
@friendly_errors
def fix(app: AppContext, paths, out, lossless, background, keep_gps, fit, pad_with, upscale, dry_run, db, recursive) -> None:
    """Write copies of the photos in PATHS that Kling would refuse, fixed so they pass, to --out.

    Originals are never changed. Exit status 1 when some photo could not be fixed.
    """
    from .copies import OutputError, fix_files
    from .fix import FixOptions

    options = FixOptions(lossless=lossless, background=background, keep_gps=keep_gps, fit=fit, pad=pad_with, upscale=upscale)
    db_path = _db_path(app, db)
    store = None
    if db_path.exists():  # a dry run reads faces but records nothing
        store = Store.open_readonly(db_path) if dry_run else Store(db_path)
    try:
        faces = store.face_boxes() if store is not None and fit == "crop" else {}
        records = fix_files(paths, out, options, dry_run=dry_run, recursive=recursive,
                            faces_for=lambda sha256: faces.get(sha256, ()))
        if store is not None and not dry_run:
            records = store.recording_copies(records)
        left = _report_copies(records, out, dry_run)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if store is not None:
            store.close()
    if left:
        sys.exit(EXIT_INCOMPLETE)


@main.command()
@click.option("--verdict", required=True, type=click.Choice(["avatar", "tryon", "asset"]), help="Photos ready for this workflow.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(["checked", "invalid", "rejected", "failed", "pending"]), help="Only these statuses (repeatable).")
@click.option("-p", "--provider", "provider_id", help="Only this provider's verdicts.")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Folder to copy them to (created when missing).")
@click.option("--link", is_flag=True, help="Hard-link them (symbolic links across disks) instead of copying.")
@click.option("--dry-run", is_flag=True, help="Print what would be written; write nothing.")
@click.option("--db", type=click.Path(dir_okay=False), help="Results database (default: in the app's data folder).")
@click.pass_obj
@friendly_errors
def collect(app: AppContext, verdict, statuses, provider_id, out, link, dry_run, db) -> None:
    """Copy the photos ready for a workflow into one folder, names kept (a clash gets a suffix)."""
    from .copies import OutputError, collect_files

    db_path = _db_path(app, db)
    if not db_path.exists():
        raise UserError(f"There is no results database at {db_path}: run `kling-preflight scan` first.")
    row_filter = RowFilter(provider=provider_id, statuses=tuple(statuses) or None, verdict=verdict)
    with Store.open_readonly(db_path) as store:
        seen: set[str] = set()
        photos = []
        for row in store.query_rows(row_filter):
            if row["path"] not in seen and row["sha256"]:
                seen.add(row["path"])
                photos.append((row["path"], row["sha256"]))
    try:
        left = _report_copies(collect_files(photos, out, link=link, dry_run=dry_run), out, dry_run)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    if left:
        sys.exit(EXIT_INCOMPLETE)


# -- merge --------------------------------------------------------------------------------


@main.command()
@click.argument("others", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--db", type=click.Path(dir_okay=False), help="Results database to merge into (default: in the app's data folder).")
@click.pass_obj
@friendly_errors
def merge(app: AppContext, others, db) -> None:
    """Bring the results in OTHERS (other machines' results databases) into this one."""
    from .merge import merge_databases

    with Store(_db_path(app, db)) as store:
        for report in merge_databases(store, others):
            click.echo(report.sentence())


if __name__ == "__main__":  # python -m core.cli
    main()
