"""Settings: per provider its key, base URL, email, concurrency and timeouts; a few general choices.

Keys go to the keychain through :class:`core.secrets.KeyStore` and are never shown again;
where there is no secure store the dialog says so and names the environment variable to
use. Every other value is checked by core's own rules before anything is saved; a value
that breaks them is explained under its field. "Test connection" makes the provider's free
verification call in the background with the values as typed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.context import AppContext
from core.errors import ProviderError
from core.providers import Provider, SettingSpec
from core.secrets import KeyStoreError
from core.settings import CONCURRENCY_RANGE, SettingsError, resolve_provider_settings

from .errors import MessageBanner, tint_text
from .worker import call_in_background

log = logging.getLogger(__name__)


class _InlineMessage(QLabel):
    """A sentence under a field: hidden when empty, coloured by level."""

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def say(self, text: str, level: str = "error") -> None:
        self.setText(text)
        tint_text(self, level)
        self.setVisible(bool(text))


class ProviderPage(QWidget):
    """One provider's key, settings and connection test."""

    def __init__(self, context: AppContext, cls: type[Provider], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.cls = cls
        self.fields: dict[str, QWidget] = {}
        self.errors: dict[str, _InlineMessage] = {}

        layout = QVBoxLayout(self)
        title = QLabel(cls.label)
        title_font = title.font()
        title_font.setBold(True)
        title_font.setPointSizeF(title_font.pointSizeF() * 1.15)
        title.setFont(title_font)
        layout.addWidget(title)
        about = QLabel(cls.cost_note or "")
        about.setWordWrap(True)
        about.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(about)

        self.key_edit: QLineEdit | None = None
        self.key_status = QLabel()
        self.key_error = _InlineMessage()
        self.no_store_warning: MessageBanner | None = None
        self.remove_key_button: QPushButton | None = None
        if cls.key_env:
            layout.addWidget(self._key_group())

        form_box = QGroupBox("Connection" if cls.remote else "Detection")
        form = QFormLayout(form_box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        try:
            values = resolve_provider_settings(context.settings, cls)
        except SettingsError as exc:
            values = {spec.name: spec.default for spec in cls.settings_spec}
            saved = context.settings.providers.get(cls.id, {})
            values.update({k: v for k, v in saved.items() if k != exc.setting})
        for spec in cls.settings_spec:
            field = self._field(spec, values.get(spec.name, spec.default))
            field.setToolTip(spec.help)
            self.fields[spec.name] = field
            error = _InlineMessage()
            self.errors[spec.name] = error
            cell = QVBoxLayout()
            cell.setSpacing(2)
            cell.addWidget(field)
            if "threshold" in spec.name:
                # A number alone says nothing: what moving it does is said where it is set.
                explain = QLabel(f"{spec.help} Higher: fewer false faces, but faint or small faces are missed. "
                                 f"Lower: more faces found, and more that are not faces. The default is {spec.default:g}.")
                explain.setObjectName("explain_" + spec.name)
                explain.setWordWrap(True)
                explain.setForegroundRole(QPalette.ColorRole.PlaceholderText)
                cell.addWidget(explain)
            cell.addWidget(error)
            form.addRow(f"{spec.label}:", cell)
        layout.addWidget(form_box)

        self.test_button = QPushButton("Test connection" if cls.remote else "Test the detector")
        self.test_button.setToolTip("A check that costs nothing, with the values above")
        self.test_button.clicked.connect(self.test_connection)
        self.test_result = _InlineMessage()
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addStretch(1)
        layout.addLayout(test_row)
        layout.addWidget(self.test_result)
        layout.addStretch(1)

    # -- building -------------------------------------------------------------------------

    def _key_group(self) -> QGroupBox:
        cls, keystore = self.cls, self.context.keystore
        box = QGroupBox("Key")
        layout = QVBoxLayout(box)
        if not keystore.secure():
            self.no_store_warning = MessageBanner()
            self.no_store_warning.show_message(
                f"This computer has no secure place to keep keys ({keystore.backend_description()}). "
                "A key pasted here is used for this session only and forgotten when Kling Preflight "
                f"quits. To keep one, set the environment variable {cls.key_env} before starting it.",
                "warning",
            )
            layout.addWidget(self.no_store_warning)
        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setClearButtonEnabled(True)
        self.key_edit.textEdited.connect(lambda _t: self.key_error.say(""))
        self.remove_key_button = QPushButton("Remove stored key")
        self.remove_key_button.clicked.connect(self.remove_key)
        row = QHBoxLayout()
        row.addWidget(self.key_edit, 1)
        row.addWidget(self.remove_key_button)
        layout.addLayout(row)
        self.key_status.setWordWrap(True)
        self.key_status.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(self.key_status)
        layout.addWidget(self.key_error)
        self._show_key_status()
        return box

    def _field(self, spec: SettingSpec, value: Any) -> QWidget:
        if spec.kind is int:
            field = QSpinBox()
            low, high = CONCURRENCY_RANGE if spec.name == "concurrency" else (0, 1_000_000)
            field.setRange(low, high)
            field.setValue(int(value))
        elif spec.kind is float:
            field = QDoubleSpinBox()
            if "threshold" in spec.name:
                field.setRange(0.0, 0.99)
                field.setSingleStep(0.05)
            else:
                field.setRange(0.0, 3600.0)
                field.setSingleStep(1.0)
            field.setDecimals(2)
            field.setValue(float(value))
        else:
            field = QLineEdit("" if value is None else str(value))
            field.setPlaceholderText(str(spec.default) if spec.default else spec.help)
            field.textEdited.connect(lambda _t, name=spec.name: self.errors[name].say(""))
        return field

    def _show_key_status(self) -> None:
        cls, keystore = self.cls, self.context.keystore
        lookup = keystore.get(cls.id, cls.key_env)
        if lookup.source == "keychain":
            status = f"A key is stored in the {keystore.backend_description()}."
            placeholder = "Paste a new key to replace the stored one"
        elif lookup.source == "session":
            status = "A key is set for this session only; it is forgotten when Kling Preflight quits."
            placeholder = "Paste a new key to use instead, for this session only"
        elif lookup.source == "environment":
            status = f"The key comes from the environment variable {cls.key_env}."
            placeholder = "Paste a key to store it in the keychain instead"
        else:
            status = f"No key yet. Keys are kept in the {keystore.backend_description()}." if keystore.secure() \
                else "No key yet."
            placeholder = "Paste your key" if keystore.secure() else "Paste your key to use it for this session only"
        self.key_status.setText(status)
        if self.key_edit is not None:
            self.key_edit.setPlaceholderText(placeholder)
        if self.remove_key_button is not None:
            self.remove_key_button.setVisible(lookup.source == "keychain")

    # -- values ---------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """:returns: the settings as typed, converted to each spec's kind."""
        out: dict[str, Any] = {}
        for name, field in self.fields.items():
            if isinstance(field, (QSpinBox, QDoubleSpinBox)):
                out[name] = field.value()
            else:
                out[name] = field.text().strip()
        return out

    def typed_key(self) -> str:
        return self.key_edit.text().strip() if self.key_edit is not None else ""

    def clear_errors(self) -> None:
        for error in self.errors.values():
            error.say("")
        self.key_error.say("")

    def show_setting_error(self, setting: str, message: str) -> None:
        target = self.errors.get(setting)
        if target is None:
            self.test_result.say(message)
        else:
            target.say(message)

    def store_key(self) -> bool:
        """Store a typed key in the keychain. :returns: False when the keychain refused (shown)."""
        key = self.typed_key()
        if not key:
            return True
        try:
            if self.context.keystore.secure():
                self.context.keystore.set(self.cls.id, key, env_var=self.cls.key_env)
            else:
                self.context.keystore.set_for_session(self.cls.id, key)
        except KeyStoreError as exc:
            self.key_error.say(str(exc))
            return False
        self.key_edit.clear()
        self._show_key_status()
        return True

    @Slot()
    def remove_key(self) -> None:
        try:
            self.context.keystore.delete(self.cls.id)
        except KeyStoreError as exc:
            self.key_error.say(str(exc))
            return
        self._show_key_status()

    # -- test -----------------------------------------------------------------------------

    @Slot()
    def test_connection(self) -> None:
        """Verify the provider with the values as typed, in the background; the answer is shown below."""
        self.clear_errors()
        try:
            config = self.context.provider_config(self.cls.id, self.values())
        except SettingsError as exc:
            self.show_setting_error(exc.setting, _setting_sentence(exc))
            return
        key = self.typed_key()
        if key:
            self.context.redactor.add(key)
            config = replace(config, key=key, key_source="session")
        cls = self.cls
        if cls.key_env and not config.key:
            self.test_result.say(f"There is no key to test: paste one above or set {cls.key_env}.")
            return
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.test_button.setEnabled(False)
        self.test_result.say("Testing…", "info")

        def verify() -> str:
            provider = cls(config)
            try:
                return provider.verify()
            except ProviderError:
                raise
            except Exception:
                log.exception("Testing %s failed unexpectedly", cls.id)
                raise
            finally:
                provider.close()

        call_in_background(verify, self._on_tested, self._on_test_failed, self)

    @Slot(object)
    def _on_tested(self, sentence: str) -> None:
        self.test_button.setEnabled(True)
        self.test_result.say(f"✓ Works: {sentence}", "success")

    @Slot(object)
    def _on_test_failed(self, exc: BaseException) -> None:
        self.test_button.setEnabled(True)
        if isinstance(exc, ProviderError):
            message = exc.message
        else:
            message = f"The test failed unexpectedly ({type(exc).__name__}); the details are in the log."
        self.test_result.say(f"✗ {self.context.redactor.redact(message)}")


class GeneralPage(QWidget):
    """Choices that apply to every provider."""

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.deep_check = QCheckBox("Decode every new photo fully to find damaged files (slower, more thorough)")
        self.deep_check.setChecked(context.settings.deep_check)
        self.retry_ambiguous = QCheckBox("Retry calls that failed without a clear answer, even where a retry may be billed")
        self.retry_ambiguous.setChecked(context.settings.retry_ambiguous)
        where = QLabel(f"Settings are saved in {context.paths.settings}.\nResults and logs are kept in {context.paths.home}.")
        where.setWordWrap(True)
        where.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.deep_check)
        layout.addWidget(self.retry_ambiguous)
        layout.addSpacing(12)
        layout.addWidget(where)
        layout.addStretch(1)


class SettingsDialog(QDialog):
    """Per-provider tabs plus a General tab; Save checks everything before writing anything.

    ``saved()`` is emitted after a successful save.
    """

    saved = Signal()

    def __init__(self, context: AppContext, parent: QWidget | None = None, provider_id: str | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.setWindowTitle("Settings")
        self.resize(640, 580)
        self.tabs = QTabWidget()
        self.pages: dict[str, ProviderPage] = {}
        ordered = sorted(context.registry.providers.items(), key=lambda kv: (kv[1].remote, kv[0]))
        for pid, cls in ordered:
            page = ProviderPage(context, cls)
            self.pages[pid] = page
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QScrollArea.Shape.NoFrame)
            scroll.setWidget(page)
            self.tabs.addTab(scroll, _short_label(cls.label))
            self.tabs.setTabToolTip(self.tabs.count() - 1, cls.label)
        self.general = GeneralPage(context)
        self.tabs.addTab(self.general, "General")
        if provider_id in self.pages:
            self.tabs.setCurrentIndex(list(self.pages).index(provider_id))

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.save_error = _InlineMessage()
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.save_error)
        layout.addWidget(buttons)

    @Slot()
    def save(self) -> bool:
        """Check every value, store typed keys, write the settings, close.

        :returns: True when saved; False when something was refused (said under its field,
            and the dialog stays open on that tab).
        """
        self.save_error.say("")
        new = self.context.settings
        for pid, page in self.pages.items():
            page.clear_errors()
            saved = self.context.settings.providers.get(pid, {})
            defaults = {spec.name: spec.default for spec in page.cls.settings_spec}
            changed = {name: value for name, value in page.values().items() if name in saved or value != defaults.get(name)}
            new = new.with_provider_values(pid, changed)
        for pid, page in self.pages.items():
            try:
                resolved = resolve_provider_settings(new, page.cls)
            except SettingsError as exc:
                page.show_setting_error(exc.setting, _setting_sentence(exc))
                self._show_page(pid)
                return False
            # Saved as core reads them: "https://x.test/" as "https://x.test".
            new = new.with_provider_values(pid, {name: resolved[name] for name in new.providers.get(pid, {}) if name in resolved})
        for pid, page in self.pages.items():
            if not page.store_key():
                self._show_page(pid)
                return False
        new = replace(new, deep_check=self.general.deep_check.isChecked(),
                      retry_ambiguous=self.general.retry_ambiguous.isChecked())
        try:
            self.context.save_settings(new)
        except (OSError, ValueError, TypeError) as exc:
            self.save_error.say(f"The settings could not be saved: {exc}")
            return False
        self.saved.emit()
        self.accept()
        return True

    def _show_page(self, provider_id: str) -> None:
        self.tabs.setCurrentIndex(list(self.pages).index(provider_id))


def _setting_sentence(exc: SettingsError) -> str:
    """SettingsError says "cometapi base_url: <why>"; under the field only the why is needed."""
    text = str(exc)
    prefix = f"{exc.provider_id} {exc.setting}: "
    text = text[len(prefix):] if text.startswith(prefix) else text
    return text[:1].upper() + text[1:]


def _short_label(label: str) -> str:
    """"CometAPI (Kling image recognition)" -> "CometAPI": tabs need the name, not the story."""
    return label.split(" (", 1)[0]
