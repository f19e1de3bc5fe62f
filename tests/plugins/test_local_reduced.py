"""The offline provider decodes a big JPEG at reduced scale for the detector (libjpeg's
DCT scaling), and in full only to cut face crops: boxes and crops stay in full-size pixels."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

from PIL import Image

from core.models import ProbedImage
from core.providers import CheckContext, DictMemo, ProviderConfig
from plugins.local import CROP_MARGIN, LocalProvider, _decode_upright

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
BIDEN_FACE = (416, 175, 292, 396)  # x, y, w, h in fr_biden.jpg (970 × 2204), ATTRIBUTION.md


def enlarged_biden(factor: int, **save_kw) -> bytes:
    with Image.open(SAMPLES / "fr_biden.jpg") as im:
        big = im.resize((im.width * factor, im.height * factor), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90, **save_kw)
    return out.getvalue()


def check(provider: LocalProvider, data: bytes):
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    image = ProbedImage("big.jpg", len(data), 0, hashlib.sha256(data).hexdigest(), "JPEG", width, height)
    return provider.check(image, data, CheckContext(cancel=threading.Event(), memo=DictMemo()))


def test_a_big_jpeg_is_decoded_reduced_but_no_smaller_than_asked():
    data = enlarged_biden(3)  # 2910 × 6612

    reduced, orientation, full_size = _decode_upright(data, longest_at_least=640)

    assert full_size == (2910, 6612) and orientation == 1
    assert reduced.size == (364, 827)  # 1/8 scale: the largest reduction still ≥ 640
    assert _decode_upright(data)[0].size == full_size


def test_boxes_and_crops_of_a_reduced_decode_are_in_full_size_pixels(tmp_path):
    provider = LocalProvider(ProviderConfig(data_dir=tmp_path))
    data = enlarged_biden(2)  # 1940 × 4408: decoded at 1/4 for the detector

    result = check(provider, data)

    (face,) = result.faces
    x, y, w, h = (2 * v for v in BIDEN_FACE)
    overlap_w = max(0, min(face.x + face.width, x + w) - max(face.x, x))
    overlap_h = max(0, min(face.y + face.height, y + h) - max(face.y, y))
    assert overlap_w * overlap_h >= 0.5 * w * h
    with Image.open(face.crops[0]) as crop:
        margin_w, margin_h = round(face.width * CROP_MARGIN), round(face.height * CROP_MARGIN)
        assert crop.size == (face.width + 2 * margin_w, face.height + 2 * margin_h)
