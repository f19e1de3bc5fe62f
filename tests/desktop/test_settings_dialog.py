"""Settings: keys through the keychain, values checked by core's rules, a free connection test."""

from __future__ import annotations

import pytest
from keyring.backends import null
from PySide6.QtWidgets import QLabel

from core.secrets import SERVICE
from desktop.settings_dialog import SettingsDialog

from tests.conftest import make_context

from .conftest import WAIT_MS


@pytest.fixture
def open_dialog(qtbot, no_leaks):
    def make(context, provider_id="cometapi") -> SettingsDialog:
        dialog = SettingsDialog(context, provider_id=provider_id)
        qtbot.addWidget(dialog)
        dialog.show()
        no_leaks.append(dialog)
        return dialog

    return make


def _shown_text(dialog) -> str:
    return "\n".join(label.text() for label in dialog.findChildren(QLabel) if label.isVisible())


def test_key_and_settings_round_trip(qtbot, app_context, keyring_backend, open_dialog):
    dialog = open_dialog(app_context)
    page = dialog.pages["cometapi"]
    assert dialog.tabs.currentIndex() == list(dialog.pages).index("cometapi")
    page.key_edit.setText("sk-test-0123456789")
    page.fields["base_url"].setText("https://comet.example.test/")
    page.fields["concurrency"].setValue(7)
    dialog.general.deep_check.setChecked(False)

    assert dialog.save()
    assert keyring_backend.passwords == {(SERVICE, "cometapi"): "sk-test-0123456789"}
    saved = app_context.settings
    assert saved.providers["cometapi"]["base_url"] == "https://comet.example.test"  # as core normalises it
    assert saved.providers["cometapi"]["concurrency"] == 7
    assert "useapi" not in saved.providers  # nothing changed there: nothing written
    assert saved.deep_check is False
    assert "sk-test" not in app_context.paths.settings.read_text()

    # A fresh start reads it all back; the key itself is never shown again.
    again = open_dialog(make_context(app_context.paths.home, keyring_backend))
    page = again.pages["cometapi"]
    assert page.fields["base_url"].text() == "https://comet.example.test"
    assert page.fields["concurrency"].value() == 7
    assert page.key_edit.text() == ""
    assert "A key is stored in the" in page.key_status.text()
    assert page.remove_key_button.isVisibleTo(again)
    assert "sk-test" not in _shown_text(again)
    assert again.general.deep_check.isChecked() is False

    page.remove_key()
    assert keyring_backend.passwords == {}
    assert "No key yet" in page.key_status.text()


def test_an_invalid_value_is_explained_under_its_field_and_nothing_is_saved(app_context, keyring_backend, open_dialog):
    dialog = open_dialog(app_context)
    page = dialog.pages["cometapi"]
    page.key_edit.setText("sk-test-0123456789")
    page.fields["base_url"].setText("http://images.example.com")  # plain http to another host: refused

    assert dialog.save() is False
    assert dialog.isVisible()
    message = page.errors["base_url"].text()
    assert page.errors["base_url"].isVisible()
    assert "plain http" in message and "Traceback" not in message
    assert keyring_backend.passwords == {}
    assert not app_context.paths.settings.exists()


def test_without_a_secure_store_the_dialog_says_so_and_names_the_variable(app_home, open_dialog):
    context = make_context(app_home, null.Keyring())
    dialog = open_dialog(context)
    page = dialog.pages["cometapi"]
    assert page.no_store_warning is not None and page.no_store_warning.isVisibleTo(dialog)
    assert "KLING_PREFLIGHT_COMETAPI_KEY" in page.no_store_warning.text()
    assert "no secure place" in page.no_store_warning.text()
    assert "for this session only" in page.no_store_warning.text()
    assert page.key_edit.isEnabled() and "this session only" in page.key_edit.placeholderText()
    assert "not set" not in page.key_status.text()  # no hint that contradicts the session key
    assert dialog.save()  # the other settings still save


def test_without_a_secure_store_a_key_is_used_for_this_session_only(app_home, open_dialog):
    context = make_context(app_home, null.Keyring())
    dialog = open_dialog(context)
    page = dialog.pages["cometapi"]
    page.key_edit.setText("sk-session-only")
    assert dialog.save()
    lookup = context.keystore.get("cometapi", "KLING_PREFLIGHT_COMETAPI_KEY")
    assert (lookup.key, lookup.source) == ("sk-session-only", "session")
    assert "this session only" in page.key_status.text()
    assert next(s for s in context.states() if s.id == "cometapi").availability.ready
    assert "sk-session-only" not in context.paths.settings.read_text(encoding="utf-8")  # never written


def test_test_connection_reports_a_good_key(qtbot, app_context, open_dialog, fake_cometapi):
    dialog = open_dialog(app_context)
    page = dialog.pages["cometapi"]
    page.fields["base_url"].setText(fake_cometapi.base_url)
    page.key_edit.setText(fake_cometapi.key)
    page.test_button.click()
    qtbot.waitUntil(lambda: page.test_button.isEnabled(), timeout=WAIT_MS)
    assert page.test_result.text().startswith("✓ Works: ")
    assert fake_cometapi.base_url in page.test_result.text()
    assert app_context.keystore.get("cometapi", "KLING_PREFLIGHT_COMETAPI_KEY").source == "none"  # tested, not stored


def test_test_connection_reports_a_bad_key_in_words(qtbot, app_context, open_dialog, fake_cometapi):
    dialog = open_dialog(app_context)
    page = dialog.pages["cometapi"]
    page.fields["base_url"].setText(fake_cometapi.base_url)
    page.key_edit.setText("sk-wrong-key-000000")
    page.test_button.click()
    qtbot.waitUntil(lambda: page.test_button.isEnabled(), timeout=WAIT_MS)
    text = page.test_result.text()
    assert text.startswith("✗ ")
    assert "sk-wrong-key-000000" not in text and "Traceback" not in text


def test_test_connection_needs_a_key_first(app_context, open_dialog, fake_cometapi):
    dialog = open_dialog(app_context)
    page = dialog.pages["cometapi"]
    page.test_button.click()
    assert "no key to test" in page.test_result.text()
    assert fake_cometapi.requests == []


def test_the_detector_threshold_is_explained_where_it_is_set(app_context, open_dialog):
    dialog = open_dialog(app_context, "local")
    explain = dialog.pages["local"].findChild(QLabel, "explain_threshold")
    assert explain is not None and explain.isVisibleTo(dialog)
    assert "Higher: fewer false faces" in explain.text() and "The default is" in explain.text()
