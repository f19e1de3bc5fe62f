"""The run controls: which provider, Start / Pause / Stop / Retry failed, and the progress.

The panel owns the four run actions (the Run menu shows the same ones, so their enabled
states never disagree) and shows a running :class:`~desktop.worker.RunSession`.
Starting a run is the window's job: the panel only asks for one with ``start_requested``.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QRectF, Qt, Signal, Slot
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.store import RowSummary
from core.words import PROVIDER_STATE_WORDS, format_duration, plural, run_summary_text, totals_sentence
from core.context import AppContext, ProviderState
from core.events import Plan, Progress, ProviderHalted, ScanProgress, Stopping, Summary, Waiting
from core.validate import PROBLEM_CODES

from .errors import LEVEL_COLOURS, blend, tint_text
from .icons import icon
from .worker import RunSession

STATE_WORDS = {state: words.capitalize() for state, words in PROVIDER_STATE_WORDS.items()}
STATE_LEVELS = {"ready": "success", "needs_key": "warning", "unavailable": "error"}


def _dot(colour: QColor, size: int = 16, diameter: int = 10, scale: int = 2) -> QIcon:
    """A coloured dot for the provider list, centred in an icon-sized square, drawn at twice
    the size for HiDPI screens."""
    pixmap = QPixmap(size * scale, size * scale)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour)
    offset = (size - diameter) * scale / 2
    painter.drawEllipse(QRectF(offset, offset, diameter * scale, diameter * scale))
    painter.end()
    pixmap.setDevicePixelRatio(scale)
    return QIcon(pixmap)


class PlanDialog(QDialog):
    """Asks before a run that costs money, showing its plan. ``accept()`` sends, ``reject()`` does not."""

    def __init__(self, plan: Plan, cost_note: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plan = plan
        self.setWindowTitle("Confirm a paid run")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        headline = QLabel(f"Send {plural(plan.to_check, 'image')} to {plan.provider_label}?")
        font = headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        headline.setFont(font)
        headline.setWordWrap(True)
        explain = QLabel(cost_note or "Each call may be billed.")
        explain.setWordWrap(True)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        self.rows: dict[str, str] = {}

        def row(key: str, label: str, value: str) -> None:
            self.rows[key] = value
            shown = QLabel(value)
            shown.setWordWrap(True)
            shown.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(label, shown)

        row("send", "Will be sent:", plural(plan.to_check, "image"))
        invalid = plural(plan.invalid, "image")
        if plan.invalid_by_code:
            reasons = sorted(plan.invalid_by_code.items(), key=lambda kv: (-kv[1], kv[0]))
            invalid += " (" + ", ".join(f"{PROBLEM_CODES.get(code, code).lower()}: {n}" for code, n in reasons) + ")"
        row("invalid", "Invalid, not sent:", invalid)
        row("known", "Already checked, skipped:", plural(plan.already_known, "image"))
        if plan.failed_before:
            row("failed_before", "Failed before, skipped:", plural(plan.failed_before, "image"))
        row("provider", "Provider called:", plan.provider_label)

        buttons = QDialogButtonBox()
        self.send_button = QPushButton(f"Send {plural(plan.to_check, 'image')}")
        self.send_button.setAutoDefault(False)
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setDefault(True)
        buttons.addButton(self.send_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        layout.addWidget(headline)
        layout.addWidget(explain)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.setMinimumWidth(440)


class RunPanel(QWidget):
    """Provider picker, run buttons and progress.

    Signals: ``start_requested(bool retry_failed)``, ``provider_changed(str)``,
    ``settings_requested()`` (the "open Settings" link of a provider that needs a key).
    """

    start_requested = Signal(bool)
    provider_changed = Signal(str)
    settings_requested = Signal()

    def __init__(self, app_context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._context = app_context
        self._states: dict[str, ProviderState] = {}
        self._session: RunSession | None = None
        self._state = "idle"  # idle | running | pausing | paused | stopping
        self._has_items = False
        self._failed = 0
        self.plan_dialog: PlanDialog | None = None
        self.last_summary: Summary | None = None
        self._declined = False
        self._waiting_level = "warning"

        self.start_action = self._action("start", "&Start", "Check the queued photos", ["Ctrl+R", "F5"])
        self.pause_action = self._action("pause", "&Pause", "Finish the checks in flight, start no new ones", ["Space", "Ctrl+P"])
        self.stop_action = self._action("stop", "S&top", "Stop now; results so far are kept", ["Esc", "Ctrl+."])
        self.retry_action = self._action("retry", "&Retry failed", "Check again only the photos whose check failed", [])
        self.start_action.triggered.connect(lambda: self.start_requested.emit(False))
        self.retry_action.triggered.connect(lambda: self.start_requested.emit(True))
        self.pause_action.triggered.connect(self._toggle_pause)
        self.stop_action.triggered.connect(self._stop)

        title = QLabel("Run")
        title_font = title.font()
        title_font.setBold(True)
        title.setFont(title_font)
        self.provider_box = QComboBox()
        self.provider_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.provider_box.setMinimumContentsLength(16)
        self.provider_box.currentIndexChanged.connect(self._on_provider_index)
        self.provider_state_label = QLabel()
        self.provider_state_label.setWordWrap(True)
        self.provider_state_label.setTextFormat(Qt.TextFormat.RichText)
        self.provider_state_label.linkActivated.connect(lambda _link: self.settings_requested.emit())

        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        for action in (self.start_action, self.pause_action, self.stop_action):
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setSizePolicy(button.sizePolicy().Policy.Expanding, button.sizePolicy().Policy.Fixed)
            buttons.addWidget(button)
        retry_row = QHBoxLayout()
        retry = QToolButton()
        retry.setDefaultAction(self.retry_action)
        retry.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        retry.setAutoRaise(True)
        retry_row.addWidget(retry)
        retry_row.addStretch(1)

        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")
        self.progress_bar.hide()  # until there is something to show
        self.stats_label = QLabel("Queue photos, then press Start.")
        self.stats_label.setWordWrap(True)
        self.waiting_label = QLabel()
        self.waiting_label.setWordWrap(True)
        self.waiting_label.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        provider_row = QFormLayout()
        provider_row.setContentsMargins(0, 0, 0, 0)
        provider_row.addRow("Provider:", self.provider_box)
        layout.addLayout(provider_row)
        layout.addWidget(self.provider_state_label)
        layout.addLayout(buttons)
        layout.addLayout(retry_row)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.stats_label)
        layout.addWidget(self.waiting_label)

        self.refresh_providers()
        self._update_actions()

    def _action(self, icon_name: str, text: str, tip: str, keys: list[str]) -> QAction:
        action = QAction(icon(icon_name), text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        shortcut = f" ({keys[0]})" if keys else ""
        action.setToolTip(f"{tip}{shortcut}")
        action.setStatusTip(tip)
        return action

    # -- providers ------------------------------------------------------------------------

    def refresh_providers(self) -> None:
        """Read every provider's state again (after the settings changed), keeping the choice."""
        current = self.provider_id() if self.provider_box.count() else None
        self._states = {state.id: state for state in self._context.states()}
        if current is None:
            preferred = self._context.default_provider_id()
            state = self._states.get(preferred)
            # A chosen default that cannot run (no key yet) must not hide the one that can.
            current = preferred if state is not None and state.availability.ready else "local"
        self.provider_box.blockSignals(True)
        self.provider_box.clear()
        for state in self._states.values():
            colour = LEVEL_COLOURS[STATE_LEVELS.get(state.availability.state, "error")]
            suffix = "" if state.availability.ready else f" ({STATE_WORDS.get(state.availability.state, '').lower()})"
            self.provider_box.addItem(_dot(colour), f"{state.label}{suffix}", state.id)
        index = self.provider_box.findData(current)
        self.provider_box.setCurrentIndex(max(0, index))
        self.provider_box.blockSignals(False)
        self._show_provider_state()
        self._update_actions()

    def provider_id(self) -> str:
        return self.provider_box.currentData()

    def select_provider(self, provider_id: str) -> None:
        """:raises KeyError: no such provider."""
        index = self.provider_box.findData(provider_id)
        if index < 0:
            raise KeyError(provider_id)
        self.provider_box.setCurrentIndex(index)

    def provider_state(self) -> ProviderState:
        return self._states[self.provider_id()]

    @Slot(int)
    def _on_provider_index(self, _index: int) -> None:
        self._show_provider_state()
        self._update_actions()
        self.provider_changed.emit(self.provider_id())

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            self._show_provider_state()  # its colours are mixed from the palette

    def _show_provider_state(self) -> None:
        state = self._states.get(self.provider_id())
        if state is None:
            self.provider_state_label.setText("")
            return
        level = STATE_LEVELS.get(state.availability.state, "error")
        window = self.palette().color(QPalette.ColorRole.Window)
        text_colour = self.palette().color(QPalette.ColorRole.WindowText)
        chip = blend(text_colour, LEVEL_COLOURS[level], 0.75 if window.lightness() > 128 else 0.55).name()
        words = STATE_WORDS.get(state.availability.state, state.availability.state)
        if state.availability.state == "needs_key":
            detail = 'add its key in <a href="settings">Settings</a>'
        elif state.availability.reason:
            detail = html.escape(state.availability.reason)
        else:
            detail = html.escape(state.cost_note)
        self.provider_state_label.setText(f'<span style="color:{chip}">●&nbsp;<b>{words}</b></span> · {detail}')

    # -- queue state --------------------------------------------------------------------------

    def set_queue_state(self, has_items: bool, failed: int) -> None:
        """Tell the panel whether anything is queued and how many queued photos failed before."""
        self._has_items = has_items
        self._failed = failed
        self._update_actions()

    def _update_actions(self) -> None:
        ready = bool(self._states.get(self.provider_id()) and self._states[self.provider_id()].availability.ready)
        idle = self._state == "idle"
        self.start_action.setEnabled(idle and ready and self._has_items)
        self.retry_action.setEnabled(idle and ready and self._has_items and self._failed > 0)
        self.retry_action.setText(f"&Retry failed ({self._failed:,})" if self._failed else "&Retry failed")
        self.pause_action.setEnabled(self._state in ("running", "pausing", "paused"))
        self.stop_action.setEnabled(self._state in ("running", "pausing", "paused", "stopping"))
        paused = self._state in ("pausing", "paused")
        if self.pause_action.text() != ("&Resume" if paused else "&Pause"):  # a change repaints
            self.pause_action.setText("&Resume" if paused else "&Pause")
            self.pause_action.setIcon(icon("start" if paused else "pause"))
        self.provider_box.setEnabled(idle)
        if idle and not self._has_items and self.last_summary is None:
            self.stats_label.setText("Queue photos, then press Start.")

    # -- a run ----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``idle``, ``running``, ``pausing``, ``paused`` or ``stopping``."""
        return self._state

    def attach(self, session: RunSession) -> None:
        """Show ``session`` until it ends; the window starts it after this call."""
        self._session = session
        self._state = "running"
        self.last_summary = None
        self._declined = False
        session.scan_progress.connect(self._on_scan)
        session.plan_ready.connect(self._on_plan)
        session.confirmation_needed.connect(self._on_confirmation_needed)
        session.progress.connect(self._on_progress)
        session.waiting.connect(self._on_waiting)
        session.halted.connect(self._on_halted)
        session.paused_changed.connect(self._on_paused)
        session.stopping.connect(self._on_stopping)
        session.finished.connect(self._on_finished)
        session.failed.connect(self._on_failed)
        session.ended.connect(self._on_ended)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setFormat("")
        self.progress_bar.show()
        self.stats_label.setText("Looking for photos…")
        self.waiting_label.hide()
        self._update_actions()

    @Slot()
    def _toggle_pause(self) -> None:
        if self._session is None:
            return
        if self._state == "running":
            self._session.pause()
            self._state = "pausing"
            self._show_waiting("Pausing: the checks in flight finish, no new ones start.")
        elif self._state in ("pausing", "paused"):
            self._session.resume()
            self._state = "running"
            self.waiting_label.hide()
        self._update_actions()

    @Slot()
    def _stop(self) -> None:
        if self._session is None:
            return
        self._session.stop()  # a second press leaves the calls in flight
        if self._state == "stopping":
            self._show_waiting("Leaving the calls in flight: they are recorded as unknown…")
            self.stop_action.setEnabled(False)
            return
        self._state = "stopping"
        self._show_waiting("Stopping: saving the results so far…")
        self._update_actions()

    @Slot(object)
    def _on_stopping(self, stopping: Stopping) -> None:
        text = str(stopping)
        self._show_waiting(f"{text[:1].upper()}{text[1:]}: their answers may be paid for (Stop again to leave them)…")

    @Slot(object)
    def _on_scan(self, scan: ScanProgress) -> None:
        self.progress_bar.setRange(0, 0)
        self.stats_label.setText(f"Looking for photos: {plural(scan.files_found, 'file')} found, {scan.probed:,} read")

    @Slot(object)
    def _on_plan(self, plan: Plan) -> None:
        self.progress_bar.setRange(0, max(1, plan.to_check))
        self.progress_bar.setValue(0 if plan.to_check else 1)
        self.progress_bar.setFormat(f"0 of {plan.to_check:,}" if plan.to_check else "Nothing to do")
        if plan.to_check:
            self.stats_label.setText(f"{plural(plan.to_check, 'photo')} to check with {plan.provider_label}")
        else:
            self.stats_label.setText("Nothing new to check.")

    @Slot(object)
    def _on_confirmation_needed(self, plan: Plan) -> None:
        state = self._states.get(plan.provider)
        self.plan_dialog = PlanDialog(plan, state.cost_note if state else "", self.window())
        self.plan_dialog.finished.connect(self._on_plan_answered)
        self.plan_dialog.open()

    @Slot(int)
    def _on_plan_answered(self, result: int) -> None:
        dialog, self.plan_dialog = self.plan_dialog, None
        if self._session is not None:
            allowed = result == QDialog.DialogCode.Accepted
            self._session.answer_plan(allowed)
            if not allowed:
                self._declined = True
                self._state = "stopping"
                self._update_actions()
        if dialog is not None:
            dialog.deleteLater()

    @Slot(object)
    def _on_progress(self, progress: Progress) -> None:
        finished = progress.done + progress.failed
        self.progress_bar.setRange(0, max(1, progress.total))
        self.progress_bar.setValue(finished)
        self.progress_bar.setFormat(f"{finished:,} of {progress.total:,}")
        self.stats_label.setText(
            f"{progress.done:,} done · {progress.failed:,} failed · {progress.remaining:,} remaining\n"
            f"{progress.per_second:.1f}/s · ETA {format_duration(progress.eta_seconds)}"
            + (f" · {progress.concurrency} at once" if progress.concurrency else "")
        )
        if self._state == "running" and self._waiting_level == "warning":
            self.waiting_label.hide()  # the wait is over; an error stays

    @Slot(object)
    def _on_waiting(self, waiting: Waiting) -> None:
        text = str(waiting)
        self._show_waiting(text[:1].upper() + text[1:])

    @Slot(object)
    def _on_halted(self, halted: ProviderHalted) -> None:
        self._show_waiting(f"{halted.message} The remaining photos were not sent.", "error")

    @Slot(bool)
    def _on_paused(self, paused: bool) -> None:
        if paused and self._state in ("running", "pausing"):
            self._state = "paused"
            self._show_waiting("Paused. Press Resume to go on.")
        self._update_actions()

    @Slot(object)
    def _on_finished(self, summary: Summary) -> None:
        self.last_summary = summary
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1 if summary.complete else 0)
        self.progress_bar.setFormat("Done" if summary.complete else "Stopped")
        if self._declined:
            self.progress_bar.setFormat("Not sent")
            self.stats_label.setText("Nothing was sent: you cancelled the paid run.")
        else:
            self.stats_label.setText(summary_text(summary))
        if summary.halted:
            self._show_waiting(summary.halted, "error")
        else:
            self.waiting_label.hide()

    def show_totals(self, counts: RowSummary) -> None:
        """Add what the run's files hold now (faces, cost, what is still open), as the
        command line's summary counts them, under how the run ended."""
        if self.last_summary is None or self._declined:
            return
        failed, pending = counts.statuses.get("failed", 0), counts.statuses.get("pending", 0)
        totals = totals_sentence(
            counts.with_face, counts.cost, failed, pending, retry="press Retry failed", again="press Start to check them"
        )
        self.stats_label.setText(f"{summary_text(self.last_summary)}\n{totals}")

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Stopped")
        self.stats_label.setText("The run stopped.")
        self._show_waiting(message, "error")

    @Slot()
    def _on_ended(self) -> None:
        self._session = None
        self._state = "idle"
        if self.plan_dialog is not None:  # the run ended (stopped) while the question was open
            self.plan_dialog.reject()
        self._update_actions()

    def _show_waiting(self, text: str, level: str = "warning") -> None:
        self._waiting_level = level
        tint_text(self.waiting_label, level)
        self.waiting_label.setText(text)
        self.waiting_label.show()


def summary_text(summary: Summary) -> str:
    """One or two sentences on how a run ended (:func:`core.words.run_summary_text`)."""
    return run_summary_text(summary)
