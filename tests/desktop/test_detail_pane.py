import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json  # noqa: E402

import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from PySide6.QtWidgets import QLabel  # noqa: E402

from core.models import CheckResult, Face, Outcome, ProbedImage, Problem, Status  # noqa: E402
from core.store import Store  # noqa: E402
from desktop.detail_pane import EMPTY_MESSAGE, DetailPane, pretty_raw  # noqa: E402
from desktop.face_overlay import FACE_BOX_COLOUR  # noqa: E402
from tests.imagefiles import make_corrupt_jpeg, make_jpeg  # noqa: E402

GREY = (128, 128, 128)
NOTE = Problem("extension_mismatch", "photo.jpg holds a PNG image.", blocking=False)


def image_with_orientation(path, size, orientation, colour=GREY, box=None):
    """A PNG of ``size`` (as stored) carrying an EXIF orientation, optionally with a white box."""
    image = Image.new("RGB", size, colour)
    if box is not None:
        x, y, w, h = box
        ImageDraw.Draw(image).rectangle((x, y, x + w - 1, y + h - 1), fill=(255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, "PNG", exif=exif.tobytes())
    return path


def stored_row(tmp_path, path, *, faces=(), status=Status.CHECKED, problems=(), error=None, raw=None, **flags):
    """The row the store gives for one image checked with ``faces`` (written and read back)."""
    with Image.open(path) as image:
        width, height = image.size
    sha = f"{abs(hash(str(path))):064x}"[:64]
    probe = ProbedImage(str(path), path.stat().st_size, 1, sha, "PNG", width, height)
    result = None
    if status == Status.CHECKED:
        result = CheckResult(faces=tuple(faces), raw=raw, cost="0.2", request_id="req-123", **flags)
    outcome = Outcome(sha, "local", str(path), status, tuple(problems), result, "timeout" if error else None, error, 2, 1500)
    with Store(tmp_path / "results.db") as store:
        store.save_probes([probe])
        store.save_outcomes([outcome])
        return next(row for row in store.query_rows() if row["path"] == str(path))


@pytest.fixture
def pane(qtbot):
    made = DetailPane()
    qtbot.addWidget(made)
    made.resize(520, 1000)
    made.show()
    yield made
    made.shutdown()
    assert made.wait(0)  # no preview job left running


def wait_for_preview(qtbot, pane):
    qtbot.waitUntil(lambda: pane.preview.has_image() or pane.preview.message() not in ("", "Loading the preview…"), timeout=10_000)


# --- the preview ---------------------------------------------------------------------------


def test_face_box_is_drawn_on_the_upright_preview(qtbot, pane, tmp_path):
    # Stored 300 × 200 with orientation 6: shown 200 × 300, turned a quarter clockwise.
    path = image_with_orientation(tmp_path / "turned.png", (300, 200), 6)
    row = stored_row(tmp_path, path, faces=[Face(30, 40, 100, 60, 0.97)], head_seg=True, face_seg=True)
    pane.show_row(row)
    qtbot.waitUntil(lambda: len(pane.preview.marks()) == 1, timeout=10_000)
    # It fits, so once laid out it is shown at full size: 1 image pixel = 1 screen pixel.
    qtbot.waitUntil(lambda: pane.preview.image_rect().size().toSize().toTuple() == (200, 300))
    rect = pane.preview.image_rect()
    shot = pane.preview.grab().toImage()

    def colour_at(x, y):
        return shot.pixelColor(round(rect.x() + x), round(rect.y() + y))

    # By hand: a stored point (x, y) shows at (200 - y, x); the box spans x 100–160, y 30–130.
    assert colour_at(100, 80) == FACE_BOX_COLOUR  # its left edge
    assert colour_at(160, 80) == FACE_BOX_COLOUR  # its right edge
    assert colour_at(130, 130) == FACE_BOX_COLOUR  # its bottom edge
    assert colour_at(130, 80).getRgb()[:3] == GREY  # inside: the photo
    assert colour_at(30, 70) != FACE_BOX_COLOUR  # where the box would be if the EXIF turn were ignored


def test_preview_is_rescaled_when_the_pane_shrinks(qtbot, pane, tmp_path):
    path = image_with_orientation(tmp_path / "big.png", (800, 400), 1)
    pane.show_row(stored_row(tmp_path, path))
    wait_for_preview(qtbot, pane)
    wide = pane.preview.image_rect().width()
    pane.resize(340, 1000)
    qtbot.waitUntil(lambda: pane.preview.image_rect().width() < wide)
    rect = pane.preview.image_rect()
    assert rect.width() / rect.height() == pytest.approx(2.0, rel=0.02)
    assert rect.width() <= pane.preview.width()


def test_a_newer_selection_wins_over_a_slower_older_load(qtbot, pane, tmp_path):
    first = image_with_orientation(tmp_path / "first.png", (900, 300), 1)
    second = image_with_orientation(tmp_path / "second.png", (300, 300), 1)
    pane.show_row(stored_row(tmp_path, first))
    pane.show_row(stored_row(tmp_path, second))
    pane.wait()
    qtbot.waitUntil(pane.preview.has_image)
    rect = pane.preview.image_rect()
    assert rect.width() == rect.height()


def test_an_undecodable_or_missing_file_says_so_in_the_preview(qtbot, pane, tmp_path):
    broken = make_corrupt_jpeg(tmp_path / "broken.jpg")
    row = dict(stored_row(tmp_path, image_with_orientation(tmp_path / "ok.png", (50, 50), 1)), path=str(broken))
    pane.show_row(row)
    wait_for_preview(qtbot, pane)
    assert pane.preview.message().startswith("This image cannot be shown")
    pane.show_row(dict(row, path=str(tmp_path / "gone.jpg"), sha256="f" * 64))
    wait_for_preview(qtbot, pane)
    assert pane.preview.message().startswith("The file is not there any more")


# --- the facts ------------------------------------------------------------------------------


def test_shows_sentences_flags_verdicts_and_facts(qtbot, pane, tmp_path):
    path = image_with_orientation(tmp_path / "p.png", (400, 500), 1)
    raw = json.dumps({"code": 0, "data": {"task_result": {"head_seg": True}}})
    row = stored_row(
        tmp_path, path, faces=[Face(10, 10, 50, 50, None)], problems=[NOTE], raw=raw,
        head_seg=True, face_seg=True, cloth_seg=False, object_seg=None,
    )  # fmt: skip
    pane.show_row(row)
    assert pane.title.text() == "p.png"
    assert "photo.jpg holds a PNG image." in pane.problems.text()
    assert "Checked" in pane.status.text()
    flags = {name: label.text() for name, label in pane.flag_labels.items()}
    assert flags == {
        "head_seg": "✓ found",
        "face_seg": "✓ found",
        "cloth_seg": "✗ not found",
        "object_seg": "? cannot be told",
    }
    verdicts = {name: label.text() for name, label in pane.verdict_labels.items()}
    assert verdicts == {"avatar": "✓ ready", "tryon": "✗ not ready", "asset": "? cannot be told yet"}
    assert pane.facts["cost"].text() == "0.2"
    assert pane.facts["request_id"].text() == "req-123"
    assert pane.facts["attempts"].text() == "2 calls in 1.5 s"
    assert pane.facts["dimensions"].text() == "400 × 500"
    assert not pane.error.isVisible()
    # The raw answer: pretty-printed, collapsed until asked for.
    assert pane.raw.toPlainText() == pretty_raw(raw) and "\n" in pane.raw.toPlainText()
    assert pane.raw.isHidden()
    pane.raw_section.toggle.click()
    assert pane.raw.isVisible()
    assert pane.faces_heading.text() == "Faces (1)"


def test_failed_row_shows_its_error_and_not_checked_flags(qtbot, pane, tmp_path):
    path = image_with_orientation(tmp_path / "f.png", (400, 500), 1)
    row = stored_row(tmp_path, path, status=Status.FAILED, error="The provider did not answer in time.")
    pane.show_row(row)
    assert pane.error.isVisible()
    assert pane.error.text() == "The provider did not answer in time. (timeout)"
    assert all(label.text() == "— not checked" for label in pane.flag_labels.values())
    assert not pane.raw_section.isVisible()


def test_face_crops_local_ones_shown_remote_ones_as_text(qtbot, pane, tmp_path):
    crop = make_jpeg(tmp_path / "crop.jpg", 120, 150)
    path = image_with_orientation(tmp_path / "two.png", (400, 300), 1)
    url = "https://example.invalid/crops/face-2.jpg"
    faces = [Face(10, 10, 40, 40, 0.9, (str(crop),)), Face(100, 10, 40, 40, 0.8, (url,))]
    pane.show_row(stored_row(tmp_path, path, faces=faces, face_seg=True))
    wait_for_preview(qtbot, pane)

    def tiles_with_pictures():
        return [label for label in pane.crops.findChildren(QLabel) if label.pixmap() is not None and not label.pixmap().isNull()]

    qtbot.waitUntil(lambda: len(tiles_with_pictures()) == 1, timeout=10_000)
    assert tiles_with_pictures()[0].toolTip() == f"Face 1: {crop}"
    texts = [label.text() for label in pane.crops.findChildren(QLabel)]
    assert f"Face 2: {url}" in texts


def test_empty_state_until_a_row_is_selected(qtbot, pane, tmp_path):
    assert pane.empty_label.isVisible() and pane.empty_label.text() == EMPTY_MESSAGE
    pane.show_row(stored_row(tmp_path, image_with_orientation(tmp_path / "e.png", (50, 50), 1)))
    assert not pane.empty_label.isVisible() and pane.title.isVisible()
    pane.show_row(None)
    assert pane.empty_label.isVisible()


def test_pretty_raw_keeps_text_that_is_not_json():
    assert pretty_raw("<html>busy</html>") == "<html>busy</html>"
    assert pretty_raw(None) == ""
