"""The queue: items, the recursive toggle, and counts made in the background."""

from __future__ import annotations

import hashlib
import shutil
import threading

import pytest
from PIL import Image
from PySide6.QtGui import QAction

from core.models import Outcome, Status
from core.runner import BatchRunner, RunOptions
from core.store import Store
from desktop.queue_panel import CHUNK, CountJob, ProbeCache, QueueCounts, QueuePanel, count_images

from .conftest import WAIT_MS


@pytest.fixture
def panel(qtbot, app_context, no_leaks) -> QueuePanel:
    add_folder, add_files = QAction("Add folder…"), QAction("Add files…")  # alive until teardown
    panel = QueuePanel(app_context, add_folder, add_files)
    qtbot.addWidget(panel)
    panel.show()
    no_leaks.append(panel)
    yield panel
    panel.shutdown()


def _wait_complete(qtbot, panel: QueuePanel, path) -> QueueCounts:
    qtbot.waitUntil(lambda: (panel.counts_for(str(path)) or QueueCounts()).complete, timeout=WAIT_MS)
    return panel.counts_for(str(path))


def test_an_empty_queue_says_where_to_drop_photos(panel):
    assert panel.empty_state.isVisible()
    assert not panel.view.isVisible()
    labels = [w.text() for w in panel.empty_state.findChildren(type(panel.totals_label))]
    assert "Drop a folder of photos here" in labels
    assert panel.empty_state.add_button.text() == "Add folder…"
    assert not panel.clear_button.isEnabled()


def test_a_queued_folder_shows_its_counts(qtbot, panel, photos):
    assert panel.add_paths([photos]) == [str(photos)]
    assert panel.view.isVisible() and not panel.empty_state.isVisible()
    counts = _wait_complete(qtbot, panel, photos)
    # 16 files are images or claim to be (the text file named .jpg); 5 break Kling's rules.
    assert (counts.images, counts.invalid, counts.checked, counts.failed) == (16, 5, 0, 0)
    assert counts.describe() == "16 images · 5 invalid"


def test_already_checked_and_failed_images_are_counted_for_the_selected_provider(qtbot, panel, photos, app_context):
    db = app_context.paths.database
    for _ in BatchRunner(db, app_context.create_provider("local"), RunOptions()).run([photos]):
        pass
    failed_sha = hashlib.sha256((photos / "china.jpg").read_bytes()).hexdigest()
    with Store(db) as store:
        store.save_outcomes([Outcome(failed_sha, "local", str(photos / "china.jpg"), Status.FAILED, error="it broke")])

    panel.add_paths([photos])
    counts = _wait_complete(qtbot, panel, photos)
    assert (counts.images, counts.invalid, counts.checked, counts.failed) == (16, 5, 10, 1)

    panel.set_provider("cometapi")  # nothing checked with that one
    qtbot.waitUntil(lambda: panel.counts_for(str(photos)) is None or panel.counts_for(str(photos)).checked == 0,
                    timeout=WAIT_MS)
    counts = _wait_complete(qtbot, panel, photos)
    assert (counts.images, counts.invalid, counts.checked, counts.failed) == (16, 5, 0, 0)


def test_the_recursive_toggle_counts_subfolders_or_not(qtbot, panel, photos, tmp_path):
    top = tmp_path / "top"
    (top / "inner").mkdir(parents=True)
    shutil.copy(photos / "fr_obama.jpg", top / "obama.jpg")
    shutil.copy(photos / "china.jpg", top / "inner" / "china.jpg")
    changes = []
    panel.changed.connect(lambda: changes.append(panel.recursive()))
    panel.add_paths([top])
    assert _wait_complete(qtbot, panel, top).images == 2

    panel.set_recursive(False)
    qtbot.waitUntil(lambda: (panel.counts_for(str(top)) or QueueCounts()).images == 1, timeout=WAIT_MS)
    assert _wait_complete(qtbot, panel, top).images == 1
    assert changes == [True, False]


def test_a_big_folder_fills_in_progressively(qtbot, panel, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    for n in range(CHUNK * 2 + 5):
        Image.new("RGB", (320, 320), (n, 0, 0)).save(big / f"{n:03}.png")
    seen: list[QueueCounts] = []
    panel.counts_changed.connect(lambda: seen.append(panel.counts_for(str(big))))
    panel.add_paths([big])
    final = _wait_complete(qtbot, panel, big)
    assert final.images == CHUNK * 2 + 5
    partial = [c for c in seen if c is not None and not c.complete]
    assert [c.images for c in partial] == [CHUNK, CHUNK * 2]
    assert partial[0].describe().startswith("Counting…")


def test_remove_and_clear(qtbot, panel, photos, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    panel.add_paths([photos, other, photos, tmp_path / "gone"])
    assert panel.roots() == [str(photos), str(other)]
    panel.view.setCurrentIndex(panel.model.index(0, 0))
    assert panel.remove_button.isEnabled()
    panel.remove_selected()
    assert panel.roots() == [str(other)]
    panel.clear()
    assert panel.roots() == []
    assert panel.empty_state.isVisible()


def test_a_cancelled_count_gives_up_and_reports_nothing_more(photos, app_context):
    cancel = threading.Event()
    reports = []

    def report(counts):
        reports.append(counts)
        cancel.set()

    job = CountJob(str(photos), True, app_context.paths.database, "local", app_context.registry.get("local").constraints)
    cache = ProbeCache()
    assert count_images(job, cache, threading.Event(), reports.append).images == 16
    reports.clear()
    many = photos / "many"
    many.mkdir()
    for n in range(CHUNK + 1):
        shutil.copy(photos / "china.jpg", many / f"{n}.jpg")
    assert count_images(job, cache, cancel, report) is None
    assert len(reports) == 1


def test_a_named_file_that_is_not_an_image_says_so_and_the_run_gives_it_a_row(qtbot, panel, app_context, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list\n")
    assert panel.add_paths([notes]) == [str(notes)]
    counts = _wait_complete(qtbot, panel, notes)
    assert counts.describe() == "This is not an image."
    db = app_context.paths.database
    for _ in BatchRunner(db, app_context.create_provider("local"), RunOptions()).run([notes]):
        pass
    with Store(db) as store:
        [row] = store.query_rows()
    assert (row["path"], row["status"]) == (str(notes), "invalid")
    assert [p["message"] for p in row["problems"]] == ["This is not an image."]
