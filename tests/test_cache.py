"""The embedding cache: hits, misses, invalidation by content, resume, corruption, no pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsearch.data.images import read_image
from picsearch.features import EmbeddingStore, embed_images, embed_texts


class CountingImageEncoder:
    """A cheap deterministic encoder that counts the images it is asked to encode (and can fail)."""

    id = "counting-v1"
    dim = 4
    fields = {"pooled": (0, 4)}

    def __init__(self, fail_after: int | None = None) -> None:
        self.encoded = 0
        self.fail_after = fail_after

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.resize((8, 8)), dtype=np.float32).transpose(2, 0, 1) / 255

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        if self.fail_after is not None and self.encoded + len(batch) > self.fail_after:
            raise KeyboardInterrupt  # what Ctrl-C looks like mid-run
        self.encoded += len(batch)
        means = batch.mean(axis=(2, 3))
        return np.concatenate([means, batch.std(axis=(1, 2, 3))[:, None]], axis=1).astype(np.float32)

    def encode(self, images):
        return self.encode_arrays(np.stack([self.preprocess(image) for image in images]))


class CountingTextEncoder:
    id = "counting-text-v1"
    dim = 2

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts):
        self.encoded.extend(texts)
        return np.array([[len(text), text.count(" ")] for text in texts], dtype=np.float32)


def _write_images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _chunk_files(cache: Path, suffix: str) -> list[Path]:
    return sorted(cache.rglob(f"chunk-*{suffix}"))


def test_second_run_computes_nothing_and_returns_the_same(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "img", 7)
    first_encoder, second_encoder = CountingImageEncoder(), CountingImageEncoder()
    first = embed_images(paths, first_encoder, tmp_path / "cache", batch_size=3, progress=False)
    second = embed_images(paths, second_encoder, tmp_path / "cache", batch_size=3, progress=False)
    assert (first.computed, first.reused, first_encoder.encoded) == (7, 0, 7)
    assert (second.computed, second.reused, second_encoder.encoded) == (0, 7, 0)
    assert first.paths == second.paths == paths
    np.testing.assert_array_equal(first.vectors, second.vectors)
    np.testing.assert_array_equal(first.vectors, CountingImageEncoder().encode([Image.open(p).convert("RGB") for p in paths]))
    assert len(_chunk_files(tmp_path / "cache", ".npy")) == 1  # chunks compacted at the end


def test_changed_file_is_reembedded_alone(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "img", 5)
    before = embed_images(paths, CountingImageEncoder(), tmp_path / "cache", progress=False)
    Image.new("RGB", (9, 9), (255, 0, 0)).save(paths[2])
    encoder = CountingImageEncoder()
    after = embed_images(paths, encoder, tmp_path / "cache", progress=False)
    assert (after.computed, after.reused, encoder.encoded) == (1, 4, 1)
    np.testing.assert_array_equal(after.vectors[[0, 1, 3, 4]], before.vectors[[0, 1, 3, 4]])
    assert not np.allclose(after.vectors[2], before.vectors[2])
    np.testing.assert_allclose(after.vectors[2][:3], [1.0, 0.0, 0.0])


def test_interrupted_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "img", 10)
    with pytest.raises(KeyboardInterrupt):
        embed_images(paths, CountingImageEncoder(fail_after=6), tmp_path / "cache", batch_size=2, progress=False)
    assert len(_chunk_files(tmp_path / "cache", ".json")) == 1  # the three finished batches, saved on the way out
    encoder = CountingImageEncoder()
    resumed = embed_images(paths, encoder, tmp_path / "cache", batch_size=2, progress=False)
    assert (resumed.computed, resumed.reused, encoder.encoded) == (4, 6, 4)
    fresh = embed_images(paths, CountingImageEncoder(), tmp_path / "fresh", progress=False)
    np.testing.assert_array_equal(resumed.vectors, fresh.vectors)


def test_chunks_reach_the_disk_while_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill (no chance to clean up) loses at most the batches since the last flush and those in flight: while
    batch i runs on the one model worker, batch i - 1 may still be on its way to the disk."""
    monkeypatch.setattr("picsearch.features.embed.FLUSH_SECONDS", 0.0)  # flush after every batch
    cache = tmp_path / "cache"
    encoder = CountingImageEncoder()
    on_disk = []
    encode_arrays = encoder.encode_arrays
    encoder.encode_arrays = lambda batch: on_disk.append(len(_chunk_files(cache, ".json"))) or encode_arrays(batch)
    embed_images(_write_images(tmp_path / "img", 10), encoder, cache, batch_size=2, progress=False, forward_workers=1)
    assert len(on_disk) == 5 and all(count >= i - 1 for i, count in enumerate(on_disk)), on_disk


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_npy", "bad_manifest"])
def test_corrupt_chunk_is_detected_and_recomputed(tmp_path: Path, damage: str) -> None:
    paths = _write_images(tmp_path / "img", 4)
    good = embed_images(paths, CountingImageEncoder(), tmp_path / "cache", progress=False)
    (npy,) = _chunk_files(tmp_path / "cache", ".npy")
    data = npy.read_bytes()
    if damage == "truncate":
        npy.write_bytes(data[: len(data) - 9])
    elif damage == "flip":
        npy.write_bytes(data[:-1] + bytes([data[-1] ^ 0x40]))  # same size, one float changed
    elif damage == "delete_npy":
        npy.unlink()
    else:
        npy.with_suffix(".json").write_text("{not json")

    store = EmbeddingStore(tmp_path / "cache", CountingImageEncoder.id, CountingImageEncoder.dim)
    assert len(store) == 0 and len(store.problems) == 1 and "corrupt cache chunk" in store.problems[0]
    encoder = CountingImageEncoder()
    again = embed_images(paths, encoder, tmp_path / "cache", progress=False)
    assert (again.computed, encoder.encoded) == (4, 4)
    np.testing.assert_array_equal(again.vectors, good.vectors)


def test_corrupt_image_is_skipped_and_reported(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "img", 4)
    broken = tmp_path / "img" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    missing = tmp_path / "img" / "missing.png"
    result = embed_images([paths[0], broken, paths[1], missing, *paths[2:]], CountingImageEncoder(),
                          tmp_path / "cache", batch_size=2, progress=False)
    assert result.paths == paths
    assert result.vectors.shape == (4, 4)
    assert [path for path, _ in result.skipped] == [missing, broken]
    assert all(str(path) in reason for path, reason in result.skipped)


def test_same_content_under_two_names_is_embedded_once(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "img", 2)
    copy = tmp_path / "img" / "copy.png"
    copy.write_bytes(paths[0].read_bytes())
    encoder = CountingImageEncoder()
    result = embed_images([*paths, copy], encoder, tmp_path / "cache", progress=False)
    assert encoder.encoded == 2 and result.computed == 2 and result.reused == 1
    np.testing.assert_array_equal(result.vectors[0], result.vectors[2])


def test_texts_are_cached_by_content(tmp_path: Path) -> None:
    encoder = CountingTextEncoder()
    first = embed_texts(["a dog", "two cats play", "a dog"], encoder, tmp_path, progress=False)
    assert encoder.encoded == ["a dog", "two cats play"]
    second = embed_texts(["two cats play", "a new text here"], encoder, tmp_path, progress=False)
    assert encoder.encoded[2:] == ["a new text here"]
    np.testing.assert_array_equal(first, [[5, 1], [13, 2], [5, 1]])
    np.testing.assert_array_equal(second, [[13, 2], [15, 3]])


def test_joined_encoders_are_cached_part_by_part(tmp_path: Path) -> None:
    from picsearch.encoders import ConcatTextEncoder

    first, second = CountingTextEncoder(), CountingTextEncoder()
    second.id = "counting-text-v2"
    embed_texts(["a dog"], first, tmp_path, progress=False)
    joined = embed_texts(["a dog", "two cats"], ConcatTextEncoder([first, second]), tmp_path, progress=False)
    assert first.encoded == ["a dog", "two cats"] and second.encoded == ["a dog", "two cats"]
    np.testing.assert_array_equal(joined, [[5, 1, 5, 1], [8, 1, 8, 1]])
    alone = embed_texts(["two cats"], second, tmp_path, progress=False)
    assert second.encoded == ["a dog", "two cats"]
    np.testing.assert_array_equal(alone, [[8, 1]])


def test_nothing_in_the_cache_needs_pickle(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "img", 3)
    embed_images(paths, CountingImageEncoder(), tmp_path, progress=False)
    embed_texts(["x", "y"], CountingTextEncoder(), tmp_path, progress=False)
    files = _chunk_files(tmp_path, ".npy")
    assert len(files) == 2
    for path in files:
        array = np.load(path, allow_pickle=False)
        assert array.dtype == np.float32 and array.ndim == 2
    assert {p.suffix for p in tmp_path.rglob("*") if p.is_file() and p.parent != tmp_path / "img"} == {".npy", ".json"}


def test_dataset_features_maps_names_and_query_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from picsearch.data import load_dataset
    from picsearch.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
    from picsearch.features import dataset_features
    from tiny_dataset import CAPTIONS, TEST_CAPTIONS, TEST_IMAGES, TRAIN_IMAGES, write_tiny_dataset

    image_encoder, text_encoder = CountingImageEncoder(), CountingTextEncoder()
    monkeypatch.setitem(IMAGE_ENCODERS, "counting", lambda source=None: image_encoder)
    monkeypatch.setitem(TEXT_ENCODERS, "counting", lambda source=None: text_encoder)
    dataset = load_dataset(write_tiny_dataset(tmp_path / "data"))

    features = dataset_features(dataset, "counting", "counting", tmp_path / "cache")
    again = dataset_features(dataset.root, "counting", "counting", tmp_path / "cache")

    assert set(features.image_row) == set(TRAIN_IMAGES + TEST_IMAGES)
    assert set(features.text_row) == set(CAPTIONS) | set(TEST_CAPTIONS)
    assert (features.image_encoder_id, features.text_encoder_id) == ("counting-v1", "counting-text-v1")
    assert features.fields == {"pooled": (0, 4)} and features.skipped == []
    image = read_image(dataset.image_path("t2.jpg"))
    np.testing.assert_allclose(features.images(["t2.jpg"])[0], image_encoder.encode([image])[0], atol=1e-6)
    np.testing.assert_array_equal(features.texts(["t1.jpg#1"]), [[len(TEST_CAPTIONS["t1.jpg#1"]), TEST_CAPTIONS["t1.jpg#1"].count(" ")]])
    # t1.jpg and t2.jpg repeat a.jpg and b.jpg byte for byte: 4 images embedded (+1 above); second call: none
    assert image_encoder.encoded == 4 + 1 and len(text_encoder.encoded) == 7
    np.testing.assert_array_equal(again.image_vectors, features.image_vectors)


def test_embed_command_fills_the_cache_once_and_names_skipped_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from picsearch.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
    from picsearch.interfaces.cli import app
    from tiny_dataset import write_tiny_dataset

    image_encoder, text_encoder = CountingImageEncoder(), CountingTextEncoder()
    monkeypatch.setitem(IMAGE_ENCODERS, "counting", lambda source=None: image_encoder)
    monkeypatch.setitem(TEXT_ENCODERS, "counting", lambda source=None: text_encoder)
    root = write_tiny_dataset(tmp_path / "data")
    (root / "test_images" / "broken.jpg").write_bytes(b"not a jpeg")
    args = ["embed", "--data", str(root), "--cache", str(tmp_path / "cache")]
    args += ["--image-encoder", "counting", "--text-encoder", "counting"]

    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "broken.jpg" in first.output and "broken.jpg" in second.output
    assert "images (counting-v1): 4 computed, 2 reused, 1 skipped" in first.output  # t1, t2 repeat a, b
    assert "texts (counting-text-v1): 7 computed, 0 reused" in first.output
    assert "images (counting-v1): 0 computed, 6 reused, 1 skipped" in second.output
    assert "texts (counting-text-v1): 0 computed, 7 reused" in second.output
    assert image_encoder.encoded == 4 and len(text_encoder.encoded) == 7

    unknown = CliRunner().invoke(app, [*args[:5], "--image-encoder", "nope"])
    assert unknown.exit_code != 0 and "nope" in unknown.output


class HandOverEncoder(CountingImageEncoder):
    """Its first batch waits until a later one has finished: batches run at once and finish out of order."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.later_done, self.calls, self.lock = threading.Event(), 0, threading.Lock()

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            assert self.later_done.wait(5), "the second batch never ran beside the first"
        vectors = super().encode_arrays(batch)
        if not first:
            self.later_done.set()
        return vectors


def test_batches_run_at_once_and_each_file_keeps_its_own_vector(tmp_path: Path) -> None:
    paths = _write_images(tmp_path / "img", 9)
    encoder = HandOverEncoder()
    out = embed_images(paths, encoder, tmp_path / "cache", batch_size=2, progress=False, forward_workers=3)
    assert out.paths == paths and out.computed == 9
    np.testing.assert_array_equal(out.vectors, CountingImageEncoder().encode([Image.open(p).convert("RGB") for p in paths]))


def test_text_chunks_run_at_once_and_each_text_keeps_its_own_vector(tmp_path: Path) -> None:
    import threading

    started, both = [], threading.Barrier(2, timeout=5)

    class Meeting(CountingTextEncoder):
        def encode(self, texts):
            started.append(texts[0])
            both.wait()  # breaks (and fails the run) unless two chunks are encoded at once
            return super().encode(texts)

    texts = [f"text {'x ' * i}" for i in range(7)]
    vectors = embed_texts(texts, Meeting(), tmp_path / "cache", progress=False, forward_workers=2)
    np.testing.assert_array_equal(vectors, CountingTextEncoder().encode(texts))
    assert len(started) == 2


def test_a_batch_that_finished_beside_a_failed_one_is_kept(tmp_path: Path) -> None:
    import threading

    class FailsFirst(CountingImageEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.second_done, self.calls, self.lock = threading.Event(), 0, threading.Lock()

        def encode_arrays(self, batch):
            with self.lock:
                self.calls += 1
                first = self.calls == 1
            if first:
                self.second_done.wait(5)
                raise KeyboardInterrupt
            vectors = super().encode_arrays(batch)
            self.second_done.set()
            return vectors

    paths = _write_images(tmp_path / "img", 4)
    with pytest.raises(KeyboardInterrupt):
        embed_images(paths, FailsFirst(), tmp_path / "cache", batch_size=2, progress=False, forward_workers=2)
    encoder = CountingImageEncoder()
    resumed = embed_images(paths, encoder, tmp_path / "cache", batch_size=2, progress=False)
    assert (resumed.computed, resumed.reused, encoder.encoded) == (2, 2, 2)
