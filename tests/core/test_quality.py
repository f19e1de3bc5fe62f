"""The local quality measurement, every warning, the ``review`` verdict, and the labelled set."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageDraw, ImageFilter

from core import quality
from core.models import CheckResult, Face, Outcome, Status, Verdict, verdicts
from core.providers import Provider, ProviderConfig
from core.quality import Thresholds, measure, review_workflows, warnings_for
from core.runner import BatchRunner, RunOptions
from core.store import RowFilter, Store
from tests.core.records import probe, sha


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def textured(size=(600, 400), seed=1, level=(60, 200)) -> Image.Image:
    """Random blocks of grey: sharp edges everywhere, mean brightness in the middle of ``level``."""
    rng = random.Random(seed)
    image = Image.new("L", size)
    draw = ImageDraw.Draw(image)
    for x in range(0, size[0], 8):
        for y in range(0, size[1], 8):
            draw.rectangle((x, y, x + 7, y + 7), fill=rng.randint(*level))
    return image.convert("RGB")


def box(x, y, w, h, confidence=0.95):
    return {"x": x, "y": y, "width": w, "height": h, "confidence": confidence}


# A well-framed face in a 600 × 400 photo: 160 px, 40 % of the shorter side, far from the edges.
CENTRED = box(220, 120, 130, 160)


def codes(found) -> list[str]:
    return [w.code for w in found]


# --- measurement -----------------------------------------------------------------------------


def test_blur_lowers_sharpness_and_darkening_lowers_brightness():
    sharp = textured()
    plain = measure(encoded(sharp))
    blurred = measure(encoded(sharp.filter(ImageFilter.GaussianBlur(4))))
    dark = measure(encoded(sharp.point(lambda v: v // 5)))
    assert blurred.sharpness < plain.sharpness / 20
    assert dark.brightness < plain.brightness / 4
    assert (plain.width, plain.height) == (600, 400)
    assert len(plain.cell_sharpness) == len(plain.cell_brightness) == quality.GRID**2


def test_clipped_shares_count_black_and_white_pixels():
    image = Image.new("RGB", (400, 400), "black")
    image.paste((255, 255, 255), (0, 0, 400, 100))  # a quarter white, the rest black
    measured = measure(encoded(image))
    assert measured.highlights == pytest.approx(0.25, abs=0.02)
    assert measured.shadows == pytest.approx(0.75, abs=0.02)


def test_a_region_is_measured_from_the_grid():
    # Left half sharp texture, right half flat grey.
    image = textured((600, 600))
    image.paste((128, 128, 128), (300, 0, 600, 600))
    measured = measure(encoded(image, "JPEG"))
    left_sharpness, _ = measured.region(0, 0, 300, 600)
    right_sharpness, right_brightness = measured.region(300, 0, 300, 600)
    assert right_sharpness < left_sharpness / 50
    assert right_brightness == pytest.approx(128, abs=3)


def test_bytes_that_do_not_decode_are_not_measured():
    assert measure(b"not an image") is None


def test_the_measurement_survives_its_json():
    measured = measure(encoded(textured()))
    again = quality.PhotoQuality.from_json(measured.to_json())
    assert again.width == measured.width
    assert again.sharpness == pytest.approx(measured.sharpness, rel=1e-3)
    assert again.region(10, 10, 100, 100)[1] == pytest.approx(measured.region(10, 10, 100, 100)[1], abs=1)


# --- every warning -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good():
    return measure(encoded(textured()))


def test_a_well_framed_sharp_face_has_no_warning(good):
    assert warnings_for(good, [CENTRED]) == ()


@pytest.mark.parametrize(
    "faces, code",
    [
        ([box(280, 180, 30, 40)], "face_small"),  # 40 px: 10 % of 400 and under 64 px
        ([box(0, 120, 80, 160)], "face_cut_off"),  # at the left edge
        ([box(220, 300, 130, 160)], "face_cut_off"),  # beyond the bottom edge
        ([box(220, 120, 130, 160, confidence=0.76)], "low_confidence"),  # the squirrel's 76 %
        ([CENTRED, box(20, 120, 100, 140)], "several_faces"),
    ],
)
def test_each_face_rule(good, faces, code):
    found = warnings_for(good, faces)
    assert codes(found) == [code]
    assert all(w.message.endswith(".") for w in found)


def test_a_small_face_beside_the_main_one_is_not_several(good):
    assert warnings_for(good, [CENTRED, box(20, 20, 40, 50)]) == ()


def test_blurry_on_the_face_even_in_a_sharp_photo():
    image = textured()
    image.paste(image.crop((220, 120, 350, 280)).filter(ImageFilter.GaussianBlur(5)), (220, 120))
    measured = measure(encoded(image))
    assert codes(warnings_for(measured, [CENTRED])) == ["blurry"]
    # Without a face the whole photo is judged, and most of it is sharp.
    assert warnings_for(measured, None) == ()


def test_a_sharp_face_in_a_blurred_background_is_not_blurry():
    image = textured().filter(ImageFilter.GaussianBlur(6))
    image.paste(textured().crop((220, 120, 350, 280)), (220, 120))
    measured = measure(encoded(image))
    assert warnings_for(measured, [CENTRED]) == ()
    # The same background with a blurred face is blurry.
    image.paste(textured().crop((220, 120, 350, 280)).filter(ImageFilter.GaussianBlur(6)), (220, 120))
    assert codes(warnings_for(measure(encoded(image)), [CENTRED])) == ["blurry"]


def test_too_dark_and_too_bright():
    dark = measure(encoded(textured(level=(5, 60))))
    bright = measure(encoded(textured(level=(210, 250))))
    assert "too_dark" in codes(warnings_for(dark, [CENTRED]))
    assert codes(warnings_for(bright, [CENTRED])) == ["too_bright"]
    assert codes(warnings_for(bright, None)) == ["too_bright"]


def test_thresholds_are_settings():
    measured = measure(encoded(textured()))
    small = [box(280, 180, 30, 40)]
    assert codes(warnings_for(measured, small)) == ["face_small"]
    lenient = quality.thresholds_from({"face_min_share": 0.05, "face_min_px": 20})
    assert warnings_for(measured, small, lenient) == ()
    with pytest.raises(ValueError, match="no quality setting"):
        quality.thresholds_from({"sharpness": 3})
    with pytest.raises(ValueError, match="must be a number"):
        quality.thresholds_from({"min_sharpness": "soft"})


def test_without_a_measurement_the_face_rules_use_the_stored_size():
    assert codes(warnings_for(None, [box(0, 10, 40, 40)], size=(600, 400))) == ["face_small", "face_cut_off"]
    assert warnings_for(None, [CENTRED], size=(600, 400)) == ()


# --- the verdict -----------------------------------------------------------------------------


def test_a_warning_turns_yes_into_review_only_where_it_matters():
    flags = {"head_seg": True, "face_seg": True, "cloth_seg": True, "object_seg": True}
    face = review_workflows([quality.QualityWarning("face_small", "Small.")])
    photo = review_workflows([quality.QualityWarning("blurry", "Blurred.")])
    assert verdicts(True, flags, face) == {"avatar": Verdict.REVIEW, "tryon": Verdict.REVIEW, "asset": Verdict.YES}
    assert set(verdicts(True, flags, photo).values()) == {Verdict.REVIEW}
    assert set(verdicts(True, flags).values()) == {Verdict.YES}
    # A "no" stays "no", an "unknown" stays "unknown".
    assert verdicts(True, {"head_seg": False, "face_seg": True}, photo)["avatar"] is Verdict.NO
    assert verdicts(True, {"head_seg": None, "face_seg": True}, photo)["avatar"] is Verdict.UNKNOWN
    assert verdicts(False, flags, photo)["avatar"] is Verdict.NO


# --- stored, filtered, recomputed ---------------------------------------------------------------


def outcome(digest, faces, measured, provider="local", thresholds=Thresholds()):
    result = CheckResult(head_seg=bool(faces) if faces is not None else True, face_seg=bool(faces) if faces is not None else True,
                         faces=None if faces is None else tuple(Face(f["x"], f["y"], f["width"], f["height"], f["confidence"]) for f in faces))
    return Outcome(digest, provider, f"/p/{digest[-1]}.png", Status.CHECKED, result=result, attempts=1, quality=measured,
                   warnings=quality.warnings_for_answer(measured, result.faces, thresholds))


def test_warnings_and_the_measurement_are_stored_and_recomputed_without_a_provider(store, good):
    store.save_probes([probe("/p/1.png", sha(1), width=600, height=400), probe("/p/2.png", sha(2), width=600, height=400)])
    store.save_outcomes([outcome(sha(1), [CENTRED], good), outcome(sha(2), [box(280, 180, 30, 40)], good)])
    rows = {r["sha256"]: r for r in store.query_rows()}
    assert rows[sha(1)]["verdict_avatar"] == "yes" and rows[sha(1)]["warnings"] == []
    assert rows[sha(2)]["verdict_avatar"] == "review"
    assert [w["code"] for w in rows[sha(2)]["warnings"]] == ["face_small"]
    assert set(rows[sha(2)]["warnings"][0]) == {"code", "message"}
    assert store.measured(sha(1)).sharpness == pytest.approx(good.sharpness, rel=1e-3)
    assert [r["sha256"] for r in store.query_rows(RowFilter(review=True))] == [sha(2)]
    assert [r["sha256"] for r in store.query_rows(RowFilter(review=False))] == [sha(1)]
    # Stricter thresholds: worked out again from what is stored (both change: one verdict,
    # and the sentence of the other, which names the threshold).
    assert store.recompute_warnings(quality.thresholds_from({"face_min_share": 0.5})) == 2
    rows = {r["sha256"]: r for r in store.query_rows()}
    assert rows[sha(1)]["verdict_avatar"] == "review"
    assert store.recompute_warnings(quality.thresholds_from({"face_min_share": 0.5})) == 0
    assert store.recompute_warnings() == 2
    assert {r["sha256"]: r["verdict_avatar"] for r in store.query_rows()} == {sha(1): "yes", sha(2): "review"}


def test_providers_that_disagree_about_a_face(store, good):
    store.save_probes([probe(f"/p/{n}.png", sha(n), width=600, height=400) for n in (1, 2, 3)])
    store.save_outcomes([
        outcome(sha(1), [CENTRED], good), outcome(sha(1), [], good, provider="useapi"),  # disagree
        outcome(sha(2), [CENTRED], good), outcome(sha(2), None, good, provider="cometapi"),  # agree (flag)
        outcome(sha(3), [], good),  # one provider only
    ])
    assert {r["sha256"] for r in store.query_rows(RowFilter(disagree=True))} == {sha(1)}
    assert {r["sha256"] for r in store.query_rows(RowFilter(disagree=False))} == {sha(2), sha(3)}


# --- the labelled set (bench/face_cases.py) -----------------------------------------------------


@pytest.fixture(scope="module")
def labelled():
    from bench.face_cases import cases
    from bench.faces import detect_all

    items = [c for c in cases() if c.kind in ("portrait", "animal", "cut_off", "tiny", "blurred", "dark", "several")]
    found, _ = detect_all(items)
    return [(c, found[c.name]) for c in items]


def avatar_verdict(case, faces):
    faces = [f for f in faces if f["confidence"] > 0.6]  # the local provider's default threshold
    if not faces:
        return "no", []
    found = codes(warnings_for(measure(case.data), faces))
    return ("review" if found else "yes"), found


def test_the_portraits_stay_yes(labelled):
    portraits = [(c, f) for c, f in labelled if c.kind == "portrait"]
    assert len(portraits) == 5
    for case, faces in portraits:
        assert avatar_verdict(case, faces) == ("yes", []), case.name


@pytest.mark.parametrize("kind", ["animal", "cut_off", "tiny", "blurred", "dark", "several"])
def test_derived_cases_come_out_review_or_no_with_their_code(labelled, kind):
    group = [(c, f) for c, f in labelled if c.kind == kind]
    assert group
    for case, faces in group:
        verdict, found = avatar_verdict(case, faces)
        assert verdict in ("review", "no"), case.name
        if verdict == "review" and case.code is not None:
            assert case.code in found, (case.name, found)


# --- the thresholds as settings ------------------------------------------------------------------


def test_quality_settings_are_saved_and_a_bad_hand_edited_value_is_left_out(tmp_path):
    import json as _json

    from core.paths import app_paths
    from core.settings import AppSettings, load_settings, save_settings

    paths = app_paths({"KLING_PREFLIGHT_HOME": str(tmp_path)}).ensure()
    settings = AppSettings().with_quality_values({"min_confidence": "0.8"})
    assert settings.quality_thresholds().min_confidence == 0.8
    with pytest.raises(ValueError):
        settings.with_quality_values({"min_confidence": "sure"})
    save_settings(paths, settings)
    assert load_settings(paths).quality_thresholds() == Thresholds(min_confidence=0.8)
    data = _json.loads(paths.settings.read_text())
    data["quality"]["face_min_px"] = "big"
    paths.settings.write_text(_json.dumps(data))
    loaded = load_settings(paths)
    assert loaded.quality_thresholds() == Thresholds(min_confidence=0.8)


# --- whatever the provider: measured by the runner after its answer ------------------------------


class Answering(Provider):
    """Answers every image with ``result`` (like CometAPI: flags only; like useapi: boxes
    without a confidence)."""

    label = "Answering"
    remote = True
    default_concurrency = 1

    def __init__(self, provider_id, result):
        super().__init__(ProviderConfig())
        self.id = provider_id
        self.result = result

    def check(self, image, data, ctx):
        return self.result


def test_flags_only_answers_get_the_photo_warnings_and_boxes_the_face_rules(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    textured(level=(2, 40)).save(photos / "dark.jpg", quality=95)
    textured(seed=2).save(photos / "sharp.jpg", quality=95)
    flags = CheckResult(head_seg=True, face_seg=True, cloth_seg=True, object_seg=True)
    edge = CheckResult(head_seg=True, face_seg=True, faces=(Face(0, 120, 130, 160),))
    db = tmp_path / "results.db"
    for provider in (Answering("flags", flags), Answering("boxes", edge)):
        list(BatchRunner(db, provider, RunOptions()).run([photos]))
    with Store(db) as store:
        rows = {(r["file"], r["provider"]): r for r in store.query_rows()}
        assert store.measured(rows[("dark.jpg", "flags")]["sha256"]).brightness < 40
    dark = rows[("dark.jpg", "flags")]
    assert [w["code"] for w in dark["warnings"]] == ["too_dark"]
    assert {dark[f"verdict_{w}"] for w in ("avatar", "tryon", "asset")} == {"review"}
    assert rows[("sharp.jpg", "flags")]["warnings"] == []
    assert rows[("sharp.jpg", "flags")]["verdict_avatar"] == "yes"
    cut = rows[("sharp.jpg", "boxes")]
    assert [w["code"] for w in cut["warnings"]] == ["face_cut_off"]  # no confidence: no low_confidence
    assert (cut["verdict_avatar"], cut["verdict_asset"]) == ("review", "unknown")
