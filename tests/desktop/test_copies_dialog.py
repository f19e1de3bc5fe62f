"""File → Make ready copies… and Copy ready photos to…, driven as a user would."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.copies import read_manifest
from core.models import Constraints, ScannedFile
from core.probe import probe_file
from core.validate import validate
from desktop.main_window import MainWindow
from desktop.results_model import COLUMN_INDEX
from tests.desktop.test_main_window import FACES, _queue
from tests.desktop.test_results_view import select_rows

from .conftest import WAIT_MS


@pytest.fixture
def checked(qtbot, app_context, window_settings, no_leaks, photos) -> MainWindow:
    """A window whose database holds an offline run over the sample photos."""
    window = MainWindow(app_context, window_settings)
    qtbot.addWidget(window)
    no_leaks.append(window)
    window.show()
    _queue(qtbot, window, photos)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    qtbot.waitUntil(lambda: window.results.model.rowCount() == 16, timeout=WAIT_MS)
    return window


def _passes(path: Path) -> bool:
    probed = probe_file(ScannedFile(str(path), path.stat().st_size, 0))
    return validate(probed, Constraints()) == ()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_make_ready_copies_of_every_invalid_photo(qtbot, checked, photos, tmp_path):
    window = checked
    before = {p.name: _sha(p) for p in photos.iterdir()}
    out = tmp_path / "ready"
    window.make_copies_action.trigger()
    dialog = window.copies_dialog
    assert not dialog.findChild(type(dialog.scope_group.buttons()[0]), "scope_selection").isEnabled()  # nothing selected
    assert dialog.scope() == "invalid"
    dialog.folder.setText(str(out))
    dialog.upscale.setChecked(True)

    with qtbot.waitSignal(window.copies_finished, timeout=WAIT_MS) as finished:
        dialog.accept()

    made = sorted(p.name for p in out.glob("*.jpg"))
    assert made == ["astronaut_thumbnail.jpg", "flower.jpg", "temple_panorama.jpg"]
    assert all(_passes(out / name) for name in made)
    assert {p.name: _sha(p) for p in photos.iterdir()} == before
    rows = {Path(r["original"]).name: r["action"] for r in read_manifest(out / "manifest.csv")}
    assert rows == {
        "astronaut_thumbnail.jpg": "fixed", "flower.gif": "fixed", "temple_panorama.jpg": "fixed",
        "hopper_truncated.jpg": "not fixed", "notes_not_a_photo.jpg": "not fixed",
    }  # fmt: skip
    assert finished.args[0].startswith(f"3 copies made in {out}. 2 could not be: ")
    assert window.banner.isVisible()


def test_make_ready_copies_of_the_selection_only(qtbot, checked, tmp_path):
    window = checked
    names = [window.results.model.row_at(n)["file"] for n in range(16)]
    select_rows(window.results, names.index("temple_panorama.jpg"))
    out = tmp_path / "ready"
    window.make_copies_action.trigger()
    dialog = window.copies_dialog
    assert dialog.scope() == "selection"
    dialog.folder.setText(str(out))
    dialog.fit.setCurrentIndex(dialog.fit.findData("crop"))

    with qtbot.waitSignal(window.copies_finished, timeout=WAIT_MS) as finished:
        dialog.accept()

    assert sorted(p.name for p in out.glob("*.jpg")) == ["temple_panorama.jpg"]
    assert "cropped 2,048 × 600 to 1,500 × 600" in read_manifest(out / "manifest.csv")[0]["changes"]
    assert finished.args == [f"1 copy made in {out}."]

    # Once the copy is checked, the original's row names it as its ready copy.
    _queue(qtbot, window, out)
    with qtbot.waitSignal(window.run_ended, timeout=WAIT_MS):
        window.run_panel.start_action.trigger()
    model = window.results.model
    qtbot.waitUntil(lambda: model.rowCount() == 17, timeout=WAIT_MS)
    by_path = {model.row_at(n)["path"]: n for n in range(17)}
    original = by_path[str(window.queue.roots()[0]) + "/temple_panorama.jpg"]
    column = COLUMN_INDEX["ready_copy"]
    assert model.data(model.index(original, column)) == str(out / "temple_panorama.jpg")
    assert model.data(model.index(by_path[str(out / "temple_panorama.jpg")], column)) == ""


def test_copy_ready_photos_to_a_folder(qtbot, checked, photos, tmp_path):
    window = checked
    out = tmp_path / "avatars"
    window.collect_action.trigger()
    dialog = window.copies_dialog
    assert dialog.workflow.currentData() == "avatar"
    dialog.folder.setText(str(out))

    with qtbot.waitSignal(window.copies_finished, timeout=WAIT_MS) as finished:
        dialog.accept()

    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(FACES | {"manifest.csv"})
    assert all(_sha(out / name) == _sha(photos / name) for name in FACES)
    assert finished.args == [f"5 photos copied to {out}."]
