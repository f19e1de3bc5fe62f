"""The review verdict and disagreeing providers in the desktop app."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PIL import Image  # noqa: E402

from core.models import CheckResult, Face, Outcome, ProbedImage, Status  # noqa: E402
from core.quality import QualityWarning  # noqa: E402
from core.store import Store  # noqa: E402
from tests.desktop.test_results_view import context, make_panel, paths_shown, select_rows  # noqa: E402,F401

CUT = QualityWarning("face_cut_off", "A face touches the edge of the photo and may be cut off.")


def two_providers_db(tmp_path):
    """a.png: local finds a face cut off (review), useapi finds none: they disagree.
    b.png: both find a face."""
    paths = {}
    for name in ("a", "b"):
        paths[name] = tmp_path / f"{name}.png"
        Image.new("RGB", (400, 400), (90, 90, 90) if name == "a" else (30, 60, 90)).save(paths[name])
    face = CheckResult(head_seg=True, face_seg=True, faces=(Face(0, 100, 80, 100, 0.9),))
    none = CheckResult(head_seg=None, face_seg=False, faces=())
    db = tmp_path / "results.db"
    with Store(db) as store:
        store.save_probes([ProbedImage(str(p), 10, 1, f"{n}" * 64, "PNG", 400, 400) for n, p in paths.items()])
        store.save_outcomes([
            Outcome("a" * 64, "local", str(paths["a"]), Status.CHECKED, result=face, warnings=(CUT,)),
            Outcome("a" * 64, "useapi", str(paths["a"]), Status.CHECKED, result=none),
            Outcome("b" * 64, "local", str(paths["b"]), Status.CHECKED, result=face),
            Outcome("b" * 64, "useapi", str(paths["b"]), Status.CHECKED, result=face),
        ])
    return db, paths


def test_review_and_disagreement_filters_and_the_detail_pane(qtbot, make_panel, tmp_path):
    db, paths = two_providers_db(tmp_path)
    panel = make_panel()
    panel.show()
    panel.set_database(db)
    # Offered once the database holds answers from several providers.
    qtbot.waitUntil(lambda: panel.filter_bar.quick_actions["disagree"].isVisible())
    panel.filter_bar.quick_actions["review"].trigger()
    assert paths_shown(panel) == {str(paths["a"])}
    assert panel.model.rowCount() == 1  # only local's answer needs review
    panel.filter_bar.quick_actions["disagree"].trigger()
    assert paths_shown(panel) == {str(paths["a"])}
    assert panel.model.rowCount() == 2  # both answers of the photo they disagree on

    panel.filter_bar.quick_actions["review"].trigger()
    select_rows(panel, 0)
    detail = panel.detail
    qtbot.waitUntil(lambda: detail.row() is not None)
    assert detail.verdict_labels["avatar"].text() == "! needs review"
    assert not detail.warnings.isHidden() and CUT.message in detail.warnings.text()
    # Both providers' answers side by side.
    assert not detail.answers.isHidden()
    text = detail.answers.text()
    assert "local" in text and "useapi" in text and "face_cut_off" in text and "not found" in text

    panel.filter_bar.quick_actions["all"].trigger()
    b_row = next(n for n in range(panel.model.rowCount()) if panel.model.row_at(n)["path"] == str(paths["b"]))
    select_rows(panel, b_row)
    qtbot.waitUntil(lambda: detail.row()["path"] == str(paths["b"]))
    assert detail.warnings.isHidden()
    assert detail.verdict_labels["avatar"].text() == "✓ ready"


def test_the_disagreement_filter_is_offered_only_with_several_providers(qtbot, make_panel, tmp_path):
    panel = make_panel()
    panel.show()
    assert not panel.filter_bar.quick_actions["disagree"].isVisible()
    panel.filter_bar.set_providers([("local", "Offline face detection")])
    assert not panel.filter_bar.quick_actions["disagree"].isVisible()
    panel.filter_bar.set_providers([("local", "Offline face detection"), ("useapi", "useapi")])
    assert panel.filter_bar.quick_actions["disagree"].isVisible()
