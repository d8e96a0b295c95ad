"""Gallery index: the exact numpy store, build, load, incremental update, safe atomic files."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from picsearch.index import GalleryIndex, IndexFormatError, build_index, image_id, read_manifest
from picsearch.data.images import read_image
from picsearch.encoders import get_image_encoder
from picsearch.index.codec import QuantizedRows, RowCodec, Segment, segments_of
from picsearch.index.gallery import FORMAT
from picsearch.models import RelevanceBundle
from picsearch.search import Searcher


def write_gallery(folder: Path, n: int = 6) -> list[Path]:
    """Small distinct pictures: coloured backgrounds with a shape whose size and place vary."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image = Image.new("RGB", (96, 72), (40 * i % 256, 255 - 30 * i, 90 + 25 * i))
        ImageDraw.Draw(image).ellipse((5 + 6 * i, 8, 40 + 8 * i, 60), fill=(250 - 40 * i, 20 * i, 200))
        path = folder / ("sub" if i == n - 1 else "") / f"img{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        image.save(path, "JPEG")
        paths.append(path)
    return paths


@pytest.fixture()
def gallery(tmp_path) -> Path:
    write_gallery(tmp_path / "gallery")
    return tmp_path / "gallery"


def test_build_writes_safe_consistent_index(gallery, tmp_path, synthetic_bundle):
    out = tmp_path / "index"
    report = build_index(gallery, synthetic_bundle, out, tmp_path / "cache", progress=False)
    assert (len(report.added), report.unchanged, report.total) == (6, 0, 6)
    manifest = read_manifest(out)
    assert manifest["count"] == 6 and manifest["image_encoder"] and manifest["model_fingerprint"]
    assert (manifest["format"], manifest["rerank_dtype"], manifest["vector_dtype"]) == (FORMAT, "int8", "int4")
    assert not list((out / manifest["data"]).glob("features*"))  # format 3 keeps no raw features
    for array in (out / manifest["data"]).rglob("*.npy"):
        np.load(array, allow_pickle=False)  # no object arrays anywhere
    index = GalleryIndex.load(out)
    assert index.paths == sorted(index.paths) and "sub/img5.jpg" in index.paths
    assert index.ids == [image_id(path) for path in index.paths]
    assert isinstance(index.rerank, QuantizedRows) and isinstance(index.rerank.codes, np.memmap)
    bundle = RelevanceBundle.load(synthetic_bundle)
    assert index.rerank.shape == (6, bundle.rerank_vectors(np.zeros((1, 19), np.float32)).shape[1])
    joint = index.joint  # int4: two codes a byte, a scale per matcher block of the joint space
    assert isinstance(joint, QuantizedRows) and joint.codes.shape == (6, (joint.shape[1] + 1) // 2)
    assert [(seg.start, seg.stop) for seg in joint.codec.segments] == [(a, b) for a, b, _ in bundle.joint.blocks.values()]
    norms = np.linalg.norm(np.asarray(index.joint, dtype=np.float32), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=0.1)  # int4 codes of 19 columns: half a step of 1/7 each
    assert index.child.dtype == bool and np.all((0 <= index.child_prob) & (index.child_prob <= 1))


def test_incremental_update_embeds_only_what_changed(gallery, tmp_path, synthetic_bundle):
    out, cache = tmp_path / "index", tmp_path / "cache"
    build_index(gallery, synthetic_bundle, out, cache, progress=False)
    before = GalleryIndex.load(out, mmap=False)

    again = build_index(gallery, synthetic_bundle, out, cache, progress=False)
    assert (again.added, again.changed, again.removed, again.unchanged) == ([], [], [], 6)
    assert not again.wrote

    (gallery / "img0.jpg").unlink()
    shutil.copy(gallery / "img2.jpg", gallery / "img1.jpg")  # changed content, same name
    write_gallery(tmp_path / "more", 8)
    shutil.copy(tmp_path / "more" / "img6.jpg", gallery / "new.jpg")
    (gallery / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    report = build_index(gallery, synthetic_bundle, out, cache, progress=False)
    assert report.added == ["new.jpg"] and report.changed == ["img1.jpg"] and report.removed == ["img0.jpg"]
    assert report.unchanged == 4 and [path for path, _ in report.skipped] == ["broken.jpg"]
    assert "broken.jpg" in report.skipped[0][1]

    after = GalleryIndex.load(out, mmap=False)
    assert after.paths == ["img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg", "new.jpg", "sub/img5.jpg"]
    rows_before, rows_after = before.rows(), after.rows()
    changed = image_id("img1.jpg")
    same = after.rerank[rows_after[changed]], before.rerank[rows_before[image_id("img2.jpg")]]
    np.testing.assert_allclose(*same, rtol=1e-5, atol=1e-7)  # projected in another batch: equal up to rounding
    kept = image_id("img3.jpg")
    np.testing.assert_array_equal(after.joint[rows_after[kept]], before.joint[rows_before[kept]])
    assert len(list(out.glob("data-*"))) == 1  # the previous data folder was swapped out and removed


def _codecs(out: Path) -> list[tuple[int, list[list[int]], np.ndarray, np.ndarray]]:
    """Bits, segments, column weights and codes of the rerank rows and the joint vectors stored at ``out``."""
    index = GalleryIndex.load(out, mmap=False)
    return [(p.codec.bits, p.codec.to_json(), p.codec.columns, p.codes) for p in (index.rerank, index.joint)]


@pytest.mark.parametrize("vectors", ["int4", "int8"])
def test_an_update_and_a_plain_save_store_the_rows_they_keep_with_the_same_codecs(gallery, tmp_path, synthetic_bundle, vectors):
    """`picsearch index` over unchanged photos (ingest) and a re-save of the loaded index (what a review does)
    choose the codecs alike, also when the joint vectors change bits: kept, or refitted over the stored segments."""
    built = tmp_path / "index"
    build_index(gallery, synthetic_bundle, built, tmp_path / "cache", progress=False)
    index = GalleryIndex.load(built, mmap=False)
    index.vector_codec = RowCodec.fit(index.joint, (Segment(0, 7), Segment(7, index.joint.shape[1])), bits=4)
    index.save(built)  # stored segments unlike the model's one block
    shutil.copytree(built, tmp_path / "saved")
    saved = GalleryIndex.load(tmp_path / "saved", mmap=False)
    saved.vector_dtype = vectors
    saved.save(tmp_path / "saved")
    for path in gallery.rglob("*.jpg"):  # new times, same bytes: every row is reused
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    report = build_index(gallery, synthetic_bundle, built, tmp_path / "cache", vector_dtype=vectors, progress=False)
    assert report.unchanged == 6 and not report.added + report.changed
    for ingested, resaved in zip(_codecs(built), _codecs(tmp_path / "saved")):
        assert ingested[:2] == resaved[:2]
        for a, b in zip(ingested[2:], resaved[2:]):
            np.testing.assert_array_equal(a, b)
    assert _codecs(built)[1][:2] == ({"int4": 4, "int8": 8}[vectors], [[0, 7, 0], [7, 19, 0]])


def test_load_errors_name_the_file(gallery, tmp_path, synthetic_bundle):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        GalleryIndex.load(tmp_path / "nowhere")
    out = tmp_path / "index"
    build_index(gallery, synthetic_bundle, out, tmp_path / "cache", progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    data = out / manifest["data"]
    np.save(data / "child.npy", np.zeros(2, dtype=bool))
    with pytest.raises(IndexFormatError, match="child.npy: 2 rows for 6 ids"):
        GalleryIndex.load(out)
    (out / "manifest.json").write_text(json.dumps({**manifest, "format": "other/9"}))
    with pytest.raises(IndexFormatError, match="field format"):
        GalleryIndex.load(out)


def test_missing_gallery_is_a_clear_error(tmp_path, synthetic_bundle):
    with pytest.raises(FileNotFoundError, match="gallery folder not found"):
        build_index(tmp_path / "absent", synthetic_bundle, tmp_path / "index", progress=False)


def test_build_flags_what_the_child_detector_flags(synthetic_index):
    from synthetic_bundle import GALLERY, child_paths

    index = GalleryIndex.load(synthetic_index)
    assert len(index) == len(GALLERY) and read_manifest(synthetic_index)["child_flagged"] == 2
    flagged = [path for path, child in zip(index.paths, index.child) if child]
    assert flagged == child_paths(index) == ["pink-circle.png", "pink-square.png"]


def test_update_flags_a_photo_that_became_a_child_photo_and_unflags_it_after(tmp_path, synthetic_bundle):
    from picsearch.search import Searcher
    from synthetic_bundle import draw, write_gallery as draw_gallery

    gallery, out, cache = tmp_path / "gallery", tmp_path / "index", tmp_path / "cache"
    draw_gallery(gallery)
    assert build_index(gallery, synthetic_bundle, out, cache, progress=False).child_flagged == 2
    draw("pink", "circle", 1).save(gallery / "red-circle.png")
    report = build_index(gallery, synthetic_bundle, out, cache, progress=False)
    assert report.changed == ["red-circle.png"] and report.child_flagged == 3
    searcher = Searcher.open(out)
    assert "red-circle.png" not in {hit.path.name for hit in searcher.search("red", k=50).hits}
    with pytest.raises(KeyError):
        searcher.path_of(image_id("red-circle.png"))
    draw("red", "circle", 1).save(gallery / "red-circle.png")
    assert build_index(gallery, synthetic_bundle, out, cache, progress=False).child_flagged == 2
    assert "red-circle.png" in {hit.path.name for hit in Searcher.open(out).search("red", k=2).hits}


@pytest.mark.data
@pytest.mark.slow
def test_index_command_on_the_real_models(gallery, tmp_path, real_artifacts):
    from typer.testing import CliRunner

    from picsearch.interfaces.cli import app

    args = ["index", str(gallery), "--model", str(real_artifacts), "--out", str(tmp_path / "index"),
            "--cache", str(tmp_path / "cache")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "added 6" in first.output and "6 images indexed" in first.output
    index = GalleryIndex.load(tmp_path / "index")
    assert index.meta["model"] == str(real_artifacts.resolve()) and index.rerank.shape[0] == 6
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "unchanged 6" in again.output


RANKING_QUERIES = ["a red circle", "a big blue square", "a small green circle", "a yellow shape", "grey", "orange"]


def _assert_within_steps(stored: np.ndarray, exact: np.ndarray, levels: int, steps: float = 2.0) -> None:
    """Each value within ``steps`` steps of a code (``levels`` each side of 0) of its row's largest value
    (column weights move the steps of single columns; the embedding cache rounds to float16)."""
    step = np.abs(exact).max(axis=1, keepdims=True) / levels
    assert np.all(np.abs(np.asarray(stored, dtype=np.float32) - exact) <= steps * step)


def _raw_features(index: GalleryIndex, bundle: RelevanceBundle) -> np.ndarray:
    """``index``'s photos embedded again, float32."""
    encoder = get_image_encoder(bundle.image_encoder)
    return encoder.encode([read_image(index.absolute_path(row)) for row in range(len(index))])


def _full_precision(index: GalleryIndex, bundle: RelevanceBundle) -> GalleryIndex:
    """``index``'s rows with float32 rerank and joint vectors computed from features embedded again."""
    features = _raw_features(index, bundle)
    return dataclasses.replace(index, rerank=bundle.rerank_vectors(features), joint=bundle.joint_image(features))


def test_quantized_index_keeps_values_and_joint_order(synthetic_index):
    index = GalleryIndex.load(synthetic_index)
    bundle = RelevanceBundle.load(index.meta["model"])
    full = _full_precision(index, bundle)
    _assert_within_steps(index.rerank, full.rerank, levels=127)
    _assert_within_steps(index.joint, full.joint, levels=index.joint.codec.levels)
    encoder = bundle.query_encoder()
    searcher = Searcher(index, bundle, encoder)
    for query in RANKING_QUERIES:
        text = encoder.encode([query])
        order = searcher._retrieve(text, searcher._store, len(index))[0]
        exact = (full.joint @ bundle.joint_text(text)[0])[order]
        # codes of a 19-column space: the exact best first, and few pairs out of the exact order (near-ties)
        discordant = np.triu(exact[:, None] < exact[None, :], 1).sum() / (len(exact) * (len(exact) - 1) / 2)
        assert exact[0] == exact.max() and discordant <= 0.1, query


def _as_old_format(out: Path, format: int, legacy: bool = False) -> np.ndarray:
    """Rewrite the index at ``out`` as format 1 (float16 ``features.npy``, float32 ``joint.npy``; ``legacy``:
    ``store/vectors.npy``, as before stores were chosen) or format 2 (int8 codes of the raw features) wrote it,
    with the photos' raw features embedded again; returns those features (float32)."""
    manifest = read_manifest(out)
    data, index = out / manifest["data"], GalleryIndex.load(out, mmap=False)
    bundle = RelevanceBundle.load(index.meta["model"])
    features = _raw_features(index, bundle)
    for path in data.glob("rerank.*"):
        path.unlink()
    del manifest["rerank_dtype"], manifest["rerank_segments"]
    if format == 2:
        encoder = get_image_encoder(bundle.image_encoder)
        codes = QuantizedRows.encode(features, RowCodec.fit(features, segments_of(encoder.fields, encoder.dim)))
        codes.save(data, "features")
        manifest.update(format="picsearch-index/2", feature_dtype="int8", feature_segments=codes.codec.to_json())
    else:
        vectors = data / ("store/vectors.npy" if legacy else "joint.npy")
        vectors.parent.mkdir(exist_ok=True)
        np.save(data / "features.npy", features.astype(np.float16))
        np.save(vectors, np.asarray(index.joint, dtype=np.float32))
        for path in data.glob("joint.*s.npy"):
            path.unlink()
        del manifest["vector_segments"]
        manifest.update(format="picsearch-index/1", feature_dtype="float16", vector_dtype="float32")
    (out / "manifest.json").write_text(json.dumps(manifest))
    return features


def _joint_order(out: Path, query: str) -> list[str]:
    """Ids of every visible row of the index at ``out`` in joint-space order for ``query`` (before reranking)."""
    searcher = Searcher.open(out)
    rows = searcher._retrieve(searcher.text_encoder.encode([query]), searcher._store, len(searcher.index))[0]
    return [searcher.index.ids[row] for row in rows]


@pytest.mark.parametrize(("format", "legacy"), [(1, False), (1, True), (2, False)])
def test_older_formats_load_search_and_update_into_format_3(synthetic_bundle, tmp_path, format, legacy):
    from synthetic_bundle import write_gallery as draw_gallery

    gallery, out, cache = tmp_path / "gallery", tmp_path / "index", tmp_path / "cache"
    draw_gallery(gallery)
    build_index(gallery, synthetic_bundle, out, cache, progress=False)
    before = _joint_order(out, "a red circle")
    features = _as_old_format(out, format, legacy)
    old = GalleryIndex.load(out)
    assert old.raw_features and old.rerank.shape == features.shape
    _assert_within_steps(old.rerank, features, levels=127 if format == 2 else 2**10)
    assert _joint_order(out, "a red circle") == before
    assert len(Searcher.open(out).search("a red circle", k=5).hits) == 5
    shutil.copy(gallery / "red-circle.png", gallery / "copy.png")
    report = build_index(gallery, synthetic_bundle, out, cache, vector_dtype="int8", progress=False)
    assert report.added == ["copy.png"] and report.unchanged == len(old)
    manifest = read_manifest(out)
    assert (manifest["format"], manifest["rerank_dtype"], manifest["vector_dtype"]) == (FORMAT, "int8", "int8")
    new, bundle = GalleryIndex.load(out), RelevanceBundle.load(synthetic_bundle)
    rows, stored = [new.rows()[i] for i in old.ids], np.asarray(old.rerank, dtype=np.float32)
    _assert_within_steps(new.rerank[rows], bundle.rerank_vectors(stored), levels=127)  # converted, not embedded
    _assert_within_steps(new.joint[rows], bundle.joint_image(stored), levels=127)
    order = [rows.index(new.rows()[i]) for i in _joint_order(out, "a red circle") if i != image_id("copy.png")]
    exact = (bundle.joint_text(bundle.query_encoder().encode(["a red circle"])) @ bundle.joint_image(features).T)[0]
    assert np.all(np.diff(exact[order]) <= 2e-2)  # a fresh build's order up to near-ties (format 2: int8 raw features)


def test_a_new_model_embeds_every_photo_again(synthetic_bundle, tmp_path, monkeypatch):
    """Format 3 keeps no raw features: after a model change every photo is embedded again (through the cache)."""
    from picsearch.index import ingest
    from synthetic_bundle import write_gallery as draw_gallery

    gallery, out, cache = tmp_path / "gallery", tmp_path / "index", tmp_path / "cache"
    draw_gallery(gallery)
    build_index(gallery, synthetic_bundle, out, cache, progress=False)
    before = GalleryIndex.load(out, mmap=False)
    embedded, real = [], ingest.embed_images
    monkeypatch.setattr(ingest, "embed_images", lambda paths, *a, **k: embedded.extend(paths) or real(paths, *a, **k))
    assert build_index(gallery, synthetic_bundle, out, cache, progress=False).unchanged == len(before)
    assert embedded == []
    monkeypatch.setattr(ingest, "model_fingerprint", lambda model_dir: "another model")
    report = build_index(gallery, synthetic_bundle, out, cache, progress=False)
    assert report.rescored and len(embedded) == len(before) and report.total == len(before)
    after = GalleryIndex.load(out)
    assert after.ids == before.ids and np.array_equal(after.child, before.child)
    np.testing.assert_allclose(np.asarray(after.rerank), np.asarray(before.rerank), atol=1e-6)


def test_a_newer_format_is_a_one_line_error_asking_to_rebuild(synthetic_index, tmp_path):
    out = tmp_path / "index"
    shutil.copytree(synthetic_index, out)
    manifest = read_manifest(out)
    (out / "manifest.json").write_text(json.dumps({**manifest, "format": "picsearch-index/4"}))
    with pytest.raises(IndexFormatError, match=r"found 'picsearch-index/4'; rebuild the index") as error:
        GalleryIndex.load(out)
    assert "\n" not in str(error.value)
