"""The main window: the queue and run controls on the left, the results on the right.

It wires the panels together and owns what crosses them: starting a run (a
:class:`~desktop.worker.RunSession`), exports, the results database in use, recent folders,
drag and drop, and the window's remembered state (QSettings).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QSettings, QSize, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core import __version__
from core.context import AppContext
from core.events import FileSkipped, ProviderHalted, ScanProgress, Summary
from core.export import FORMATS, export_file, export_rows
from core.logs import LOG_FILE_NAME
from core.models import Outcome, Status
from core.errors import user_sentence
from core.plugins import UnknownProviderError
from core.scan import stored_path
from core.session import RunChoices, prepare_run
from core.settings import SettingsError
from core.store import RowFilter, Store, StoreError
from core.words import missing_sentence, skipped_sentence

from .copies_dialog import open_collect, open_make_copies
from .errors import MessageBanner
from .icons import app_icon, icon
from .log_pane import LogPane
from .opener import open_path
from .reach_check import unreachable_sentence
from .queue_panel import QueuePanel
from .results_view import ResultsPanel, reveal_in_folder
from .run_panel import RunPanel, queue_hint, summary_text
from .settings_dialog import SettingsDialog
from .shortcuts_dialog import ShortcutsDialog, shortcut_rows
from .theme import THEME_LABELS, THEMES, ThemeSwitcher
from .worker import RunSession, call_in_background

log = logging.getLogger(__name__)

FIRST_SIZE = (1280, 800)
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.webp *.gif *.bmp *.tif *.tiff *.heic *.heif);;All files (*)"
EXPORT_FILTERS = {"CSV for Excel (*.csv)": ".csv", "JSON (*.json)": ".json"}
DATABASE_FILTER = "Results databases (*.db *.sqlite *.sqlite3);;All files (*)"


class MainWindow(QMainWindow):
    """The app's one window.

    :param app_context: paths, settings, keys and providers.
    :param window_settings: where geometry, splitters and panel state are remembered.
    :param db_path: the results database to show and write (default: the app's own).

    Signals: ``export_finished(str path, int rows)``, ``export_failed(str sentence)``,
    ``run_ended()`` (a run's thread is gone).
    """

    export_finished = Signal(str, int)
    export_failed = Signal(str)
    merge_finished = Signal(list)  # a sentence per merged database
    run_ended = Signal()
    copies_finished = Signal(str)  # the sentence shown when ready copies are made or collected

    def __init__(self, app_context: AppContext, window_settings: QSettings, db_path: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = app_context
        self.window_settings = window_settings
        self.db_path = Path(db_path) if db_path else app_context.paths.database
        self.session: RunSession | None = None
        self.settings_dialog: SettingsDialog | None = None
        self._skipped: list[FileSkipped] = []  # paths the current run could not use
        self._close_when_stopped = False
        self._closed = False
        self.quit_question: QMessageBox | None = None
        self._reaching = False  # the free reachability check before a paid run is under way
        self.themes = ThemeSwitcher(QApplication.instance())
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)

        self._make_actions()
        self.banner = MessageBanner()
        self.queue = QueuePanel(app_context, self.add_folder_action, self.add_files_action)
        self.run_panel = RunPanel(app_context)
        self.results = ResultsPanel(app_context)
        self.log_pane = LogPane(app_context.redactor, self)
        self.log_pane.attach()
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_pane)
        self.log_pane.hide()
        self._build_layout()
        self._make_menus()
        self._make_toolbar()
        self.db_label = QLabel()
        self.db_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.statusBar().addPermanentWidget(self.db_label)
        self._wire()

        self.queue.set_provider(self.run_panel.provider_id())
        self.set_database(self.db_path)
        self._restore_state()

    # -- building -------------------------------------------------------------------------

    def _action(self, icon_name: str | None, text: str, slot, keys: Iterable[str | QKeySequence] = (), tip: str = "") -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        sequences = [k if isinstance(k, QKeySequence) else QKeySequence(k) for k in keys]
        action.setShortcuts(sequences)
        if tip:
            first = sequences[0].toString(QKeySequence.SequenceFormat.NativeText) if sequences else ""
            action.setToolTip(f"{tip} ({first})" if first else tip)
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        return action

    def _make_actions(self) -> None:
        self.add_folder_action = self._action("add-folder", "Add &folder…", self.choose_folder, ["Ctrl+O"], "Queue a folder of photos")
        self.add_files_action = self._action("add-files", "Add f&iles…", self.choose_files, ["Ctrl+Shift+O"], "Queue single photos")
        self.open_db_action = self._action("database", "Open results &database…", self.choose_database, [], "Show and write another results database")
        self.open_db_action.setIconText("Open results")  # the toolbar's shorter words
        self.export_all_action = self._action("export", "Export &all…", lambda: self.export(None), ["Ctrl+Shift+E"], "Export every result as CSV or JSON")
        self.export_filter_action = self._action("export", "&Export current filter…", lambda: self.export(self.results.current_filter()), ["Ctrl+E"],
                                                 "Export the rows the table shows as CSV or JSON")
        self.make_copies_action = self._action(None, "Make ready &copies…", lambda: open_make_copies(self), [],
                                               "Write copies of refused photos fixed so they pass")
        self.collect_action = self._action(None, "Copy ready p&hotos to…", lambda: open_collect(self), [],
                                           "Copy the photos ready for a workflow into one folder")
        self.merge_action = self._action("database", "&Merge results…", self.choose_merge, [], "Bring in the results of another machine's database")
        self.quit_action = self._action("quit", "&Quit", self.close, ["Ctrl+Q"])
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.settings_action = self._action("settings", "&Settings…", self.open_settings, ["Ctrl+,"], "Provider keys, addresses and limits")
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.shortcuts_action = self._action(None, "&Keyboard shortcuts", self.show_shortcuts, ["F1"], "Every key the window answers")
        self.open_data_action = self._action("folder", "Open &data folder", lambda: self._open(self.context.paths.home),
                                             tip="The folder with the results database, settings and log")
        self.open_log_action = self._action("log", "Open &log file", lambda: self._open(self.context.paths.logs / LOG_FILE_NAME),
                                            tip="The app's log file, with everything the log pane ever showed")
        self.about_action = self._action("about", "&About Kling Preflight", self.show_about)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)

    def _build_layout(self) -> None:
        left = QWidget()
        left.setObjectName("leftColumn")
        column = QVBoxLayout(left)
        column.setContentsMargins(10, 8, 6, 10)
        column.setSpacing(8)
        column.addWidget(self.queue, 1)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        column.addWidget(line)
        column.addWidget(self.run_panel)
        left.setMinimumWidth(260)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.results)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([270, FIRST_SIZE[0] - 270])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        banner_row = QVBoxLayout()
        banner_row.setContentsMargins(10, 6, 10, 0)
        banner_row.addWidget(self.banner)
        layout.addLayout(banner_row)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

    def _make_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.add_folder_action)
        file_menu.addAction(self.add_files_action)
        file_menu.addAction(self.open_db_action)
        self.recent_menu = file_menu.addMenu("&Recent folders")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file_menu.addSeparator()
        file_menu.addAction(self.export_all_action)
        file_menu.addAction(self.export_filter_action)
        file_menu.addAction(self.merge_action)
        file_menu.addSeparator()
        file_menu.addAction(self.make_copies_action)
        file_menu.addAction(self.collect_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        run_menu = bar.addMenu("&Run")
        for action in (self.run_panel.start_action, self.run_panel.pause_action, self.run_panel.stop_action):
            run_menu.addAction(action)
        run_menu.addSeparator()
        run_menu.addAction(self.run_panel.retry_action)

        # The menu bar shows an action's icon instead of its words: this one has none.
        settings_entry = bar.addAction("&Settings…")
        settings_entry.setMenuRole(QAction.MenuRole.NoRole)
        settings_entry.triggered.connect(self.settings_action.trigger)

        view_menu = bar.addMenu("&View")
        self.log_action = self.log_pane.toggleViewAction()
        self.log_action.setText("&Log")
        self.log_action.setIcon(icon("log"))
        self.log_action.setShortcut(QKeySequence("Ctrl+L"))
        self.log_action.setToolTip("Show or hide the log (Ctrl+L)")
        view_menu.addAction(self.log_action)
        theme_menu = view_menu.addMenu("&Theme")
        self._theme_group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for theme in THEMES:
            action = theme_menu.addAction(THEME_LABELS[theme])
            action.setCheckable(True)
            action.setActionGroup(self._theme_group)
            action.triggered.connect(lambda _checked=False, t=theme: self.set_theme(t))
            self.theme_actions[theme] = action

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addSeparator()
        help_menu.addAction(self.open_data_action)
        help_menu.addAction(self.open_log_action)
        help_menu.addSeparator()
        help_menu.addAction(self.about_action)

    def _make_toolbar(self) -> None:
        # The run buttons live in the run panel, beside the provider they use; repeating
        # them here would only make two sets of the same buttons.
        toolbar = QToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setIconSize(QSize(20, 20))
        toolbar.addAction(self.add_folder_action)
        toolbar.addAction(self.add_files_action)
        toolbar.addSeparator()
        toolbar.addAction(self.open_db_action)
        toolbar.addAction(self.export_all_action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        toolbar.addAction(self.log_action)
        toolbar.addAction(self.settings_action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)

    def _wire(self) -> None:
        self.queue.changed.connect(self.run_panel.forget_summary)
        self.queue.changed.connect(self._update_run_controls)
        self.queue.counts_changed.connect(self._update_run_controls)
        self.run_panel.provider_changed.connect(self.queue.set_provider)
        self.queue.item_chosen.connect(self.results.filter_bar.set_scope)
        self.queue.cleared.connect(self._on_queue_cleared)
        self.run_panel.start_requested.connect(lambda retry: self.start_run(retry_failed=retry))
        self.run_panel.settings_requested.connect(self.open_settings)
        self.results.check_again_requested.connect(lambda paths: self.start_run(paths=paths, force=True))
        self.results.export_requested.connect(self.export)
        self.results.error.connect(self.show_error)
        # Esc never stops a run: it clears the search or closes what is open.
        self.escape_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self.escape_shortcut.activated.connect(self.escape)
        self._update_run_controls()

    # -- messages -------------------------------------------------------------------------

    @Slot(str)
    def show_error(self, message: str) -> None:
        self.banner.show_message(message, "error")

    def show_info(self, message: str) -> None:
        self.banner.show_message(message, "info")

    @Slot()
    def escape(self) -> None:
        """Esc: clear the search, else close the message, else hide the log pane."""
        search = self.results.filter_bar.search
        if search.text():
            search.clear()
            self.results.filter_bar.flush()
        elif search.hasFocus():
            self.results.table.setFocus(Qt.FocusReason.ShortcutFocusReason)
        elif self.banner.isVisible():
            self.banner.hide()
        elif self.log_pane.isVisible():
            self.log_pane.hide()

    def _open(self, path: Path) -> None:
        problem = open_path(path)
        if problem:
            self.show_error(problem)

    def set_theme(self, theme: str) -> None:
        """Light, dark or the system's colours, now and at the next launch."""
        self.themes.apply(theme)
        self.theme_actions[self.themes.current].setChecked(True)
        self.window_settings.setValue("appearance/theme", self.themes.current)

    # -- the queue ------------------------------------------------------------------------

    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos", self._last_folder())
        if folder:
            self.add_paths([folder])

    @Slot()
    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add photos", self._last_folder(), IMAGE_FILTER)
        if files:
            self.add_paths(files)

    def add_paths(self, paths: Iterable[str | os.PathLike]) -> list[str]:
        """Queue folders and files (from a dialog, a drop or the recent menu) and remember the folders.

        :returns: the paths added.
        """
        paths = [os.fspath(p) for p in paths]
        missing = [os.path.abspath(p) for p in paths if not os.path.exists(p)]
        added = self.queue.add_paths(paths)
        settings = self.context.settings
        if missing:
            self.show_error(missing_sentence(missing, known={os.path.abspath(p) for p in settings.recent_folders}))
        for path in added:
            if os.path.isdir(path):
                settings = settings.with_recent_folder(path)
        if added and settings != self.context.settings:
            try:
                self.context.save_settings(settings)
            except OSError as exc:
                log.warning("Could not remember the recent folders: %s", exc)
        if added:
            self.statusBar().showMessage(f"Queued {len(added)} item{'s' if len(added) != 1 else ''}.", 4000)
        return added

    @Slot(list)
    def _on_queue_cleared(self, paths: list[str]) -> None:
        self.results.filter_bar.set_scope(None)
        n = len(paths)
        self.banner.show_message(f"The queue was emptied ({n:,} item{'s' if n != 1 else ''}).", "info",
                                 ("Undo", lambda: (self.queue.add_paths(paths), self.banner.hide())))

    def _scanned_folder(self) -> str:
        """Where an export goes first: the first queued folder, else the last one used."""
        folders = [p for p in self.queue.roots() if os.path.isdir(p)]
        return folders[0] if folders else self._last_folder()

    def _last_folder(self) -> str:
        recent = self.context.settings.recent_folders
        return recent[0] if recent and os.path.isdir(recent[0]) else str(Path.home())

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        folders = self.context.settings.recent_folders
        if not folders:
            empty = self.recent_menu.addAction("No recent folders")
            empty.setEnabled(False)
            return
        for folder in folders:
            action = self.recent_menu.addAction(icon("folder"), folder)
            action.triggered.connect(lambda _checked=False, f=folder: self.add_paths([f]))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if _local_paths(event.mimeData().urls()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if _local_paths(event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        paths = _local_paths(event.mimeData().urls())
        if not paths:
            return
        event.acceptProposedAction()
        if not self.add_paths(paths) and all(os.path.exists(p) for p in paths):
            self.show_info("Those are already in the queue.")

    @Slot()
    def _update_run_controls(self) -> None:
        totals = self.queue.totals()
        has_items = bool(self.queue.roots())
        self.run_panel.set_queue_state(has_items, totals.failed, queue_hint(totals, has_items))

    # -- runs -----------------------------------------------------------------------------

    def start_run(self, *, retry_failed: bool = False, paths: list[str] | None = None, force: bool = False) -> bool:
        """Start a batch with the selected provider over the queue (or ``paths``).

        :param retry_failed: check only the images whose last check failed.
        :param paths: files to check instead of the queue ("check again").
        :param force: check again images the provider already answered for.
        :returns: True when a run started (or starts once the free reachability check of a paid
            provider has passed); otherwise the reason is shown in the window.
        """
        if self.session is not None:
            self.show_info("A run is already going: stop it first.")
            return False
        roots = list(paths) if paths else self.queue.roots()
        if not roots:
            self.show_info("Add a folder of photos to the queue first.")
            return False
        if self._reaching:
            return True
        provider_id = self.run_panel.provider_id()
        choices = RunChoices(provider_id=provider_id, recursive=self.queue.recursive(), force=force, retry_failed=retry_failed)
        base_url = self._remote_base_url(provider_id)
        if base_url:
            # A free check that the address answers at all, before a paid run is planned.
            self._reaching = True
            self.run_panel.set_queue_state(False, 0, f"Reaching {base_url}…")
            call_in_background(lambda: unreachable_sentence(base_url),
                               lambda problem: self._on_reached(problem, choices, roots),
                               lambda exc: self._on_reached("", choices, roots), self)
            return True
        return self._begin_run(choices, roots)

    def _remote_base_url(self, provider_id: str) -> str:
        try:
            if not self.context.registry.get(provider_id).remote:
                return ""
            return str(self.context.provider_config(provider_id).get("base_url") or "")
        except (SettingsError, UnknownProviderError):
            return ""  # prepare_run says what is wrong

    def _on_reached(self, problem: str, choices: RunChoices, roots: list[str]) -> None:
        self._reaching = False
        self._update_run_controls()
        if not problem:
            self._begin_run(choices, roots)
            return
        halted = ProviderHalted(choices.provider_id, problem, unreachable=True)
        self.run_panel.note_unusable(halted)
        self._on_halted(halted, sent=False)

    def _begin_run(self, choices: RunChoices, roots: list[str]) -> bool:
        provider_id = choices.provider_id
        try:
            runner = prepare_run(self.context, self.db_path, choices)
        except Exception as exc:
            sentence = user_sentence(exc)  # the one wording of errors, as the command line's
            if sentence is None:
                raise
            fix_in_settings = isinstance(exc, (SettingsError, UnknownProviderError))
            self.show_error(sentence.text + (" Fix it in Settings." if fix_in_settings else ""))
            return False
        provider, settings = runner.provider, self.context.settings
        session = RunSession(runner, roots, parent=self)
        self._run_scope = RowFilter(provider=provider.id, roots=tuple(stored_path(os.path.abspath(r)) for r in roots))
        session.outcomes.connect(self._on_outcomes)
        session.scan_progress.connect(self._on_scan_progress)
        session.files_skipped.connect(self._on_files_skipped)
        session.halted.connect(self._on_halted)
        session.failed.connect(self.show_error)
        session.failed.connect(lambda _message: self.statusBar().clearMessage())  # "Checking with…" is over
        session.finished.connect(self._on_run_finished)
        session.ended.connect(self._on_run_ended)
        self.session = session
        self._skipped: list[FileSkipped] = []
        self.run_panel.attach(session)
        self.open_db_action.setEnabled(False)
        self.banner.hide()
        self.statusBar().showMessage(f"Checking with {provider.label}…")
        if settings.default_provider != provider_id:
            try:
                self.context.save_settings(settings.with_default_provider(provider_id))
            except OSError as exc:
                log.warning("Could not remember the provider: %s", exc)
        log.info("Run started: %s over %s", provider.label, ", ".join(roots) if len(roots) <= 3 else f"{len(roots):,} items")
        session.start()
        return True

    @Slot(list)
    def _on_outcomes(self, outcomes: list[Outcome]) -> None:
        self.results.note_outcomes(outcomes)
        for outcome in outcomes:  # one readable line per photo that did not pass
            if outcome.status in (Status.FAILED, Status.REJECTED):
                log.warning("%s %s: %s", outcome.status.value.capitalize(), outcome.path, outcome.error or "no reason given")

    @Slot(object)
    def _on_scan_progress(self, scan: ScanProgress) -> None:
        if scan.scanning_done:
            self.results.refresh()  # the files just scanned show up as pending

    @Slot(list)
    def _on_files_skipped(self, skipped: list[FileSkipped]) -> None:
        for item in skipped:
            log.warning("%s", skipped_sentence(item.path, item.reason))
        self._skipped.extend(skipped)

    @Slot(object)
    def _on_halted(self, halted: ProviderHalted, sent: bool = True) -> None:
        provider = self.context.registry.providers.get(halted.provider)
        label = provider.label if provider is not None else halted.provider
        log.warning("%s could not be used: %s", label, halted.message)
        outcome = "The remaining photos were not sent." if sent else "Nothing was sent."
        self.banner.show_message(f"{label} could not be used. {halted.message} {outcome}",
                                 "error", ("Open Settings", self.open_settings))

    @Slot(object)
    def _on_run_finished(self, summary: Summary) -> None:
        self.results.refresh()
        self.queue.rescan()
        log.info("Run ended: %s", summary_text(summary).replace("\n", " "))
        self._count_run_files(self._run_scope)
        self.statusBar().showMessage(" ".join(line.rstrip(".") + "." for line in summary_text(summary).splitlines()), 10_000)
        if self._skipped and not summary.halted:
            first = self._skipped[0]
            more = f" and {len(self._skipped) - 1:,} more (see the log)" if len(self._skipped) > 1 else ""
            self.banner.show_message(f"{skipped_sentence(first.path, first.reason)}{more}.", "warning")

    def _count_run_files(self, scope: RowFilter) -> None:
        """Count the run's files in the store (:meth:`Store.summary`, as the command line
        does) off the UI thread, and show the figures under the run's summary."""
        db_path = self.db_path

        def work():
            with Store.open_readonly(db_path) as store:
                return store.summary(scope)

        call_in_background(work, self.run_panel.show_totals, lambda exc: log.warning("Could not count the run's files: %s", exc), self)

    @Slot()
    def _on_run_ended(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.deleteLater()
        self.open_db_action.setEnabled(True)
        self.run_ended.emit()
        if self._close_when_stopped:
            self.close()

    # -- results database and exports -----------------------------------------------------

    @Slot()
    def choose_database(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a results database", str(self.db_path.parent), DATABASE_FILTER)
        if not path:
            return
        try:
            Store.open_readonly(path).close()
        except StoreError as exc:
            self.show_error(str(exc))
            return
        self.set_database(Path(path))

    def set_database(self, path: Path) -> None:
        """Show and write the results database at ``path`` from now on."""
        self.db_path = Path(path)
        self.results.set_database(self.db_path)
        self.queue.set_database(self.db_path)
        self.db_label.setText(f"Results: {self.db_path}")
        default = self.db_path == self.context.paths.database
        self.setWindowTitle("Kling Preflight" if default else f"{self.db_path.name} — Kling Preflight")

    def export(self, what: RowFilter | list[dict[str, Any]] | None) -> None:
        """Ask where, then export in the background.

        :param what: None for every result, a filter for the rows it selects, or rows (a selection).
        """
        if not isinstance(what, list) and not self.db_path.is_file():
            self.show_info("There are no results to export yet: check some photos first.")
            return
        start = self.window_settings.value("export/folder") or self._scanned_folder()
        suggested = str(Path(start) / "kling-preflight-results.csv")
        path_text, chosen = QFileDialog.getSaveFileName(self, "Export results", suggested, ";;".join(EXPORT_FILTERS))
        if not path_text:
            return
        path = Path(path_text)
        if path.suffix.lower() not in FORMATS:
            path = path.with_name(path.name + EXPORT_FILTERS.get(chosen, ".csv"))
        self.window_settings.setValue("export/folder", str(path.parent))
        db_path = self.db_path

        def work() -> int:
            if isinstance(what, list):
                return export_rows(what, path)
            with Store.open_readonly(db_path) as store:
                return export_file(store, path, filter=what)

        self.statusBar().showMessage(f"Exporting to {path}…")
        call_in_background(work, lambda n: self._on_exported(path, n), lambda exc: self._on_export_failed(path, exc), self)

    @Slot()
    def choose_merge(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Merge results from", str(self.db_path.parent), DATABASE_FILTER)
        if paths:
            self.merge_results([Path(p) for p in paths])

    def merge_results(self, sources: list[Path]) -> None:
        """Merge other machines' results databases into this one, in the background."""
        if self.session is not None:
            self.show_info("Merge results when the run has ended.")
            return
        db_path = self.db_path

        def work() -> list[str]:
            from core.merge import merge_databases

            with Store(db_path) as store:
                return [report.sentence() for report in merge_databases(store, sources)]

        def done(sentences: list[str]) -> None:
            self.results.refresh()
            self.banner.show_message(" ".join(sentences), "success")
            self.merge_finished.emit(sentences)

        def failed(exc: BaseException) -> None:
            if not isinstance(exc, StoreError):
                log.error("Merging %s failed", sources, exc_info=exc)
            self.show_error(str(exc) if isinstance(exc, StoreError) else f"The merge failed ({type(exc).__name__}); the details are in the log.")

        self.statusBar().showMessage("Merging results…", 5_000)
        call_in_background(work, done, failed, self)

    def _on_exported(self, path: Path, rows: int) -> None:
        self.statusBar().showMessage(f"Wrote {rows:,} rows to {path}", 10_000)
        self.banner.show_message(f"Exported {rows:,} rows to {path}.", "success",
                                 ("Show in folder", lambda: reveal_in_folder(str(path.parent), str(path))))
        self.export_finished.emit(str(path), rows)

    def _on_export_failed(self, path: Path, exc: BaseException) -> None:
        if isinstance(exc, (StoreError, ValueError)):
            message = str(exc)
        elif isinstance(exc, OSError):
            message = f"{path} could not be written: {exc.strerror or exc}."
        else:
            log.error("Export to %s failed", path, exc_info=exc)
            message = f"The export failed unexpectedly ({type(exc).__name__}); the details are in the log."
        self.statusBar().clearMessage()
        self.show_error(message)
        self.export_failed.emit(message)

    # -- dialogs --------------------------------------------------------------------------

    @Slot()
    def open_settings(self) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.raise_()
            return
        dialog = SettingsDialog(self.context, self, provider_id=self.run_panel.provider_id())
        dialog.saved.connect(self._on_settings_saved)
        dialog.finished.connect(self._on_settings_closed)
        self.settings_dialog = dialog
        dialog.open()

    @Slot()
    def _on_settings_closed(self) -> None:
        dialog, self.settings_dialog = self.settings_dialog, None
        if dialog is not None:
            dialog.deleteLater()

    @Slot()
    def _on_settings_saved(self) -> None:
        self.run_panel.refresh_providers()
        self.queue.set_provider(self.run_panel.provider_id())
        self._update_run_controls()
        self.statusBar().showMessage("Settings saved.", 4000)

    def all_actions(self) -> list[QAction]:
        """The window's actions with their shortcuts, as Help → Keyboard shortcuts lists them."""
        panel = self.run_panel
        return [self.add_folder_action, self.add_files_action, panel.start_action, panel.pause_action, panel.stop_action,
                panel.retry_action, self.export_filter_action, self.export_all_action, self.log_action,
                self.settings_action, self.shortcuts_action, self.quit_action]

    @Slot()
    def show_shortcuts(self) -> None:
        dialog = ShortcutsDialog(shortcut_rows(self.all_actions()), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.shortcuts_dialog = dialog
        dialog.open()

    @Slot()
    def show_about(self) -> None:
        paths = self.context.paths
        QMessageBox.about(
            self,
            "About Kling Preflight",
            f"<h3>Kling Preflight {__version__}</h3>"
            "<p>Checks photos against Kling's input rules and recognition before you spend credits.</p>"
            f"<p>Results: {paths.database}<br>Settings: {paths.settings}<br>"
            f"Log: {paths.logs / LOG_FILE_NAME}</p>"
            f"<p>PySide6 {pyside_version}</p>",
        )

    # -- state ----------------------------------------------------------------------------

    def _restore_state(self) -> None:
        settings = self.window_settings
        geometry = settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self._first_placement()
        state = settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        splitter = settings.value("window/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)
        theme = str(settings.value("appearance/theme", "system"))
        if theme != "system":
            self.themes.apply(theme)
        self.theme_actions[self.themes.current].setChecked(True)
        queued = settings.value("queue/paths")
        if queued:
            # Quietly: a folder gone since last time is simply not queued again.
            self.queue.add_paths([p for p in ([queued] if isinstance(queued, str) else queued) if os.path.exists(p)])
        recursive = settings.value("queue/recursive")
        if recursive is not None:
            self.queue.set_recursive(str(recursive).lower() in ("true", "1"))
        self.results.restore_state(settings)

    def _first_placement(self) -> None:
        screen = QGuiApplication.primaryScreen()
        width, height = FIRST_SIZE
        if screen is None:
            self.resize(width, height)
            return
        available = screen.availableGeometry()
        width = min(width, int(available.width() * 0.95))
        height = min(height, int(available.height() * 0.95))
        self.resize(width, height)
        frame = self.frameGeometry()
        frame.moveCenter(available.center())
        self.move(frame.topLeft())

    def save_state(self) -> None:
        settings = self.window_settings
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/splitter", self.splitter.saveState())
        settings.setValue("queue/recursive", self.queue.recursive())
        settings.setValue("queue/paths", self.queue.roots())
        self.results.save_state(settings)
        settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self.session is not None and self.session.running and not self._close_when_stopped:
            event.ignore()
            self._ask_before_quitting()
            return
        if self.session is not None and self.session.running:
            # Never block the window on a run: stop it, and close once its results are saved.
            self.session.stop()
            self.show_info(
                "Stopping the run: the window closes once the answers of the calls in flight are saved "
                "(close again to leave them)."
            )
            event.ignore()
            return
        if not self._closed:
            self._closed = True
            self.save_state()
            self.statusBar().clearMessage()  # also ends its timeout timer
            self.queue.shutdown()
            self.results.shutdown()
            self.log_pane.detach()
        event.accept()


    def quit_now(self) -> None:
        """Close without asking: a run going is stopped first, and the window closes once its
        results are saved (never blocking the window on a run)."""
        self._close_when_stopped = True
        self.close()

    def _ask_before_quitting(self) -> None:
        if self.quit_question is not None:
            self.quit_question.raise_()
            return
        question = QMessageBox(QMessageBox.Icon.Question, "Quit while checking?", "A run is going. Stop it and quit?",
                               QMessageBox.StandardButton.NoButton, self)
        question.setInformativeText("The results so far are kept; Start goes on with the rest next time.")
        quit_button = self.quit_yes = question.addButton("Stop and quit", QMessageBox.ButtonRole.AcceptRole)
        keep = question.addButton("Keep running", QMessageBox.ButtonRole.RejectRole)
        question.setDefaultButton(keep)
        question.setEscapeButton(keep)

        def answered() -> None:
            self.quit_question = None
            question.deleteLater()
            if question.clickedButton() is quit_button:
                self.quit_now()

        question.finished.connect(answered)
        self.quit_question = question
        question.open()


def _local_paths(urls: Iterable[QUrl]) -> list[str]:
    return [url.toLocalFile() for url in urls if url.isLocalFile() and url.toLocalFile()]
