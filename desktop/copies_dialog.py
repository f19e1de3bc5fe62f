"""File → Make ready copies… and Copy ready photos to…: the dialogs and the background run.

The work is core/copies.py's, the same as ``kling-preflight fix`` and ``collect``: this
module only asks which photos and where, runs it off the UI thread and says what happened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from core.copies import NOT_FIXED, SKIPPED, CopyRecord, OutputError, collect_files, fix_files, write_manifest
from core.fix import FixOptions
from core.store import RowFilter, Store, StoreError

from .worker import call_in_background

log = logging.getLogger("kling_preflight")

#: Which photos "Make ready copies…" works on.
SCOPES = (("selection", "The selected photos"), ("filter", "The photos the table shows"), ("invalid", "Every invalid photo"))
WORKFLOWS = (("avatar", "Avatar"), ("tryon", "Try-on"), ("asset", "Subject / asset"))


@dataclass(frozen=True)
class CopiesReport:
    """What a run did, in a sentence for the banner, and whether all went well."""

    text: str
    complete: bool
    manifest: Path | None


def _folder_row(parent: QWidget, start: str) -> tuple[QLineEdit, QHBoxLayout]:
    edit = QLineEdit(start)
    browse = QPushButton("Browse…")
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(browse)

    def choose() -> None:
        folder = QFileDialog.getExistingDirectory(parent, "Folder for the copies", edit.text())
        if folder:
            edit.setText(folder)

    browse.clicked.connect(choose)
    return edit, row


class MakeCopiesDialog(QDialog):
    """Asks which photos, where to, and how; :meth:`options` and :meth:`scope` read it."""

    def __init__(self, start_folder: str, has_selection: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Make ready copies")
        layout = QVBoxLayout(self)
        self.scope_group = QButtonGroup(self)
        for key, words in SCOPES:
            button = QRadioButton(words)
            button.setObjectName(f"scope_{key}")
            button.setEnabled(key != "selection" or has_selection)
            self.scope_group.addButton(button)
            layout.addWidget(button)
        self._scope_button("selection" if has_selection else "invalid").setChecked(True)
        form = QFormLayout()
        self.folder, row = _folder_row(self, start_folder)
        form.addRow("Write copies to", row)
        self.fit = QComboBox()
        self.fit.addItem("Pad to the allowed shape", "pad")
        self.fit.addItem("Crop around the faces", "crop")
        form.addRow("Too wide or too tall", self.fit)
        self.pad = QComboBox()
        self.pad.addItem("A blurred extension of the photo", "blur")
        self.pad.addItem("White", "colour")
        form.addRow("Pad with", self.pad)
        layout.addLayout(form)
        self.upscale = QCheckBox("Enlarge photos under 300 px")
        self.lossless = QCheckBox("PNG copies (lossless) instead of JPEG")
        self.keep_gps = QCheckBox("Keep the GPS location")
        for box in (self.upscale, self.lossless, self.keep_gps):
            layout.addWidget(box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Make copies")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _scope_button(self, key: str) -> QRadioButton:
        return self.findChild(QRadioButton, f"scope_{key}")

    def scope(self) -> str:
        return next(key for key, _ in SCOPES if self._scope_button(key).isChecked())

    def out(self) -> Path:
        return Path(self.folder.text()).expanduser()

    def options(self) -> FixOptions:
        return FixOptions(
            lossless=self.lossless.isChecked(), keep_gps=self.keep_gps.isChecked(), fit=self.fit.currentData(),
            pad=self.pad.currentData(), upscale=self.upscale.isChecked(),
        )  # fmt: skip


class CollectDialog(QDialog):
    """Asks which workflow's ready photos, where to, and whether to link them."""

    def __init__(self, start_folder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Copy ready photos")
        form = QFormLayout(self)
        self.workflow = QComboBox()
        for key, words in WORKFLOWS:
            self.workflow.addItem(words, key)
        form.addRow("Ready for", self.workflow)
        self.folder, row = _folder_row(self, start_folder)
        form.addRow("Copy them to", row)
        self.link = QCheckBox("Link them instead of copying (saves space)")
        form.addRow(self.link)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Copy")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def out(self) -> Path:
        return Path(self.folder.text()).expanduser()


# --- the work, off the UI thread --------------------------------------------------------------


def paths_for(db_path: Path, scope: str, selected: Sequence[dict[str, Any]], shown: RowFilter) -> list[str]:
    """The photos a scope names, each once, in table order (selection) or path order."""
    if scope == "selection":
        rows: Any = selected
    else:
        row_filter = shown if scope == "filter" else RowFilter(provider=shown.provider, statuses=("invalid",))
        with Store.open_readonly(db_path) as store:
            rows = list(store.query_rows(row_filter))
    return list(dict.fromkeys(row["path"] for row in rows))


def make_copies(db_path: Path, paths: Sequence[str], out: Path, options: FixOptions) -> CopiesReport:
    """Fix ``paths`` into ``out``, linking each copy to its original in the database."""
    if not paths:
        return CopiesReport("No photos to make copies of.", True, None)
    store = Store(db_path) if db_path.is_file() else None
    try:
        records = fix_files(paths, out, options, recursive=False)
        return _finish(store.recording_copies(records) if store is not None else records, out, ("copy", "copies", "made in"))
    finally:
        if store is not None:
            store.close()


def collect(db_path: Path, workflow: str, out: Path, link: bool) -> CopiesReport:
    """Copy (or link) the photos ready for ``workflow`` into ``out``."""
    with Store.open_readonly(db_path) as store:
        photos = {row["path"]: row["sha256"] for row in store.query_rows(RowFilter(verdict=workflow)) if row["sha256"]}
    if not photos:
        return CopiesReport("No photo is ready for that yet.", True, None)
    words = ("photo", "photos", "linked into" if link else "copied to")
    return _finish(collect_files(photos.items(), out, link=link), out, words)


def _finish(records, out: Path, words: tuple[str, str, str]) -> CopiesReport:
    """Run ``records`` to the end, write the manifest, and say what happened.

    :param words: one, many, and what was done: ("copy", "copies", "made in").
    """
    done: list[CopyRecord] = []
    failure: str | None = None
    try:
        done.extend(records)
    except OutputError as exc:
        failure = str(exc)
    manifest = write_manifest(out, done) if done else None
    made = sum(bool(r.copy) for r in done)
    left = [r for r in done if r.action in (NOT_FIXED, SKIPPED)]
    text = f"{made:,} {words[0] if made == 1 else words[1]} {words[2]} {out}."
    if left:
        text += f" {len(left):,} could not be: {left[0].why}" + (" (the manifest lists them all)" if len(left) > 1 else "")
    if failure:
        text = f"{failure} {text}"
    return CopiesReport(text, not left and failure is None, manifest)


def error_sentence(exc: BaseException) -> str:
    """What the user reads when a run fails outside the photos themselves."""
    if isinstance(exc, (OutputError, StoreError)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"The copies could not be written: {exc.strerror or exc}."
    log.error("Making copies failed", exc_info=exc)
    return f"Making copies failed unexpectedly ({type(exc).__name__}); the details are in the log."


def run_dialog(
    window: Any, dialog: QDialog, work: Callable[[], CopiesReport], on_done: Callable[[CopiesReport], None]
) -> None:
    """Open ``dialog`` (window-modal, not blocking); when accepted, run ``work`` in the
    background and hand its report to ``on_done``."""

    def accepted() -> None:
        window.window_settings.setValue("copies/folder", str(dialog.out()))
        window.statusBar().showMessage("Making copies…")
        call_in_background(work, on_done, lambda exc: window.show_error(error_sentence(exc)), window)

    dialog.accepted.connect(accepted)
    dialog.open()


def open_make_copies(window: Any) -> None:
    """File → Make ready copies…: the selection, the current filter or every invalid photo."""
    start = str(window.window_settings.value("copies/folder", str(Path.home() / "Kling ready")))
    selected = window.results.selected_rows()
    dialog = MakeCopiesDialog(start, bool(selected), window)
    window.copies_dialog = dialog  # for tests
    db_path, shown = window.db_path, window.results.current_filter()

    def work() -> CopiesReport:
        paths = paths_for(db_path, dialog.scope(), selected, shown)
        return make_copies(db_path, paths, dialog.out(), dialog.options())

    run_dialog(window, dialog, work, lambda report: _report(window, report))


def open_collect(window: Any) -> None:
    """File → Copy ready photos to…: every photo ready for one workflow, in one folder."""
    if not window.db_path.is_file():
        window.show_info("There are no results yet: check some photos first.")
        return
    start = str(window.window_settings.value("copies/folder", str(Path.home() / "Kling ready")))
    dialog = CollectDialog(start, window)
    window.copies_dialog = dialog  # for tests
    db_path = window.db_path
    run_dialog(window, dialog, lambda: collect(db_path, dialog.workflow.currentData(), dialog.out(), dialog.link.isChecked()),
               lambda report: _report(window, report))  # fmt: skip


def _report(window: Any, report: CopiesReport) -> None:
    window.statusBar().showMessage(report.text, 10_000)
    window.banner.show_message(report.text, "success" if report.complete else "warning")
    window.copies_finished.emit(report.text)
    window.results.refresh()

