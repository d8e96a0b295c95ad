"""Vector stores: exact, FAISS (ann) and Milvus Lite behind one interface, the child filter inside them,
migration between them, and an update cut short between the store and the manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from picsearch.index import GalleryIndex, StoreSpecError, build_index, image_id, parse_store, read_manifest
from picsearch.index import gallery as gallery_module
from picsearch.index.review import ReviewLog, make_review
from picsearch.index.stores import FaissStore, MilvusStore, NumpyStore, StoreSpec
from picsearch.index.stores import exact as store_module
from picsearch.index.stores.milvus import LITE_FILE, MilvusStoreError
from picsearch.search import Searcher
from synthetic_bundle import CHILD_COLOUR, child_paths, register_stub_encoders

QUERIES = ["a red circle", "a big blue square", "a small green circle", "a yellow shape", "an orange square"]


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _ids(n: int) -> list[str]:
    return [image_id(f"photo{i}.jpg") for i in range(n)]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_numpy_store_matches_brute_force_across_blocks(monkeypatch, dtype):
    monkeypatch.setattr(store_module, "BLOCK_ROWS", 7)  # several blocks, the last one partial
    rng = np.random.default_rng(0)
    vectors, queries = _unit(rng, 50, 16), _unit(rng, 4, 16)
    store = NumpyStore(np.array([f"id{i}" for i in range(50)]), vectors.astype(dtype))
    ids, sims = store.search(queries, 5)
    exact = queries @ vectors.astype(dtype).astype(np.float32).T
    for q in range(4):
        best = np.argsort(-exact[q])[:5]
        assert ids[q].tolist() == [f"id{i}" for i in best]
        np.testing.assert_allclose(sims[q], exact[q, best], rtol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 0)


def test_numpy_store_upsert_replaces_and_remove_ignores_unknown_ids():
    rng = np.random.default_rng(1)
    store = NumpyStore.empty(8)
    store.upsert(["a", "b", "c"], _unit(rng, 3, 8))
    replacement = _unit(rng, 1, 8)
    store.upsert(["b"], replacement)
    assert sorted(store.held_ids().tolist()) == ["a", "b", "c"] and len(store) == 3
    store.remove(["c", "unknown"])
    ids, sims = store.search(replacement, 10)  # k larger than the store
    assert ids[0].tolist()[0] == "b" and sims[0, 0] == pytest.approx(1.0) and sorted(ids[0].tolist()) == ["a", "b"]
    with pytest.raises(ValueError, match="expected"):
        store.upsert(["d"], _unit(rng, 2, 8))
def test_store_choice_is_parsed_with_errors_naming_the_option():
    assert parse_store("ann") == StoreSpec("ann")
    assert parse_store("milvus://db.example:19530") == StoreSpec("milvus", "http://db.example:19530")
    assert parse_store("milvus", "https://cloud.example") == StoreSpec("milvus", "https://cloud.example")
    with pytest.raises(StoreSpecError, match="--store: expected exact, ann, milvus"):
        parse_store("hnsw")
    with pytest.raises(StoreSpecError, match="--milvus-uri: only for --store milvus"):
        parse_store("ann", "http://x:1")
    with pytest.raises(StoreSpecError, match="manifest.json: field store"):
        StoreSpec.from_json({"kind": "lucene"}, "INDEX/manifest.json")
    assert StoreSpec.from_json("numpy-exact", "m") == StoreSpec()  # indexes written before the choice
    assert parse_store(None) is None  # no choice: the index keeps its store
    with pytest.raises(StoreSpecError, match="--milvus-uri: needs --store milvus"):
        parse_store(None, "http://x:1")


@pytest.mark.parametrize("dim,pca_dim", [(16, None), (48, 16)])
def test_ann_store_agrees_with_exact_where_it_visits_every_cell(dim, pca_dim):
    rng = np.random.default_rng(2)
    ids, vectors, queries = _ids(400), _unit(rng, 400, dim), _unit(rng, 6, dim)
    held = ids[::2]
    ann = FaissStore(ids, vectors, pca_dim=pca_dim).fit(held)
    assert ann.nlist_ == 5 and ann.nprobe_ == 5  # 200 photos: 5 cells, all of them visited
    exact = NumpyStore(np.asarray(held), vectors[::2])
    (ann_ids, ann_sims), (exact_ids, exact_sims) = ann.search(queries, 10), exact.search(queries, 10)
    assert ann_ids.tolist() == exact_ids.tolist()
    np.testing.assert_allclose(ann_sims, exact_sims, rtol=1e-5)


def test_ann_store_upsert_remove_save_load(tmp_path):
    rng = np.random.default_rng(3)
    ids, vectors = _ids(120), _unit(rng, 120, 16)
    store = FaissStore(ids, vectors).fit(ids[:100])
    store.remove(ids[:10] + ["ffffffffffffffff"])
    store.upsert(ids[100:], None)
    assert sorted(store.held_ids().tolist()) == sorted(ids[10:]) and len(store) == 110
    found, _ = store.search(vectors[:10], 5)
    assert not set(found.ravel()) & set(ids[:10])  # removed photos are never returned
    store.save(tmp_path)
    again = FaissStore.load(tmp_path, ids[5:], vectors[5:])  # rows 0-4 no longer in the index
    assert sorted(again.held_ids().tolist()) == sorted(ids[10:])
    np.testing.assert_array_equal(again.search(vectors[50:53], 5)[0], store.search(vectors[50:53], 5)[0])
    empty = FaissStore(ids, vectors).fit([])
    assert empty.search(vectors[:2], 3)[0].shape == (2, 0)
    empty.upsert(ids[:50], None)  # the first insert trains
    assert len(empty) == 50 and empty.search(vectors[:1], 1)[0].tolist() == [[ids[0]]]


def test_milvus_lite_insert_upsert_delete_and_search(tmp_path):
    rng = np.random.default_rng(4)
    ids, vectors = _ids(60), _unit(rng, 60, 8)
    store = MilvusStore(str(tmp_path / LITE_FILE), "picsearch_test", 8)
    store.upsert(ids, vectors)
    assert len(store) == 60 and sorted(store.held_ids().tolist()) == sorted(ids)
    found, sims = store.search(vectors[:3], 4)
    exact = NumpyStore(np.asarray(ids), vectors).search(vectors[:3], 4)
    assert found.tolist() == exact[0].tolist()
    np.testing.assert_allclose(sims, exact[1], atol=1e-5)
    store.upsert(ids[:1], -vectors[:1])  # replaced: now the farthest from its old self
    store.remove(ids[1:3])
    found, _ = store.search(vectors[:3], 60)
    assert len(store) == 58 and found[0, 0] != ids[0] and found[0, -1] == ids[0]
    assert not set(found.ravel()) & set(ids[1:3])
    store.drop()
    with pytest.raises(MilvusStoreError, match="picsearch_test"):
        MilvusStore(str(tmp_path / LITE_FILE), "picsearch_test", 8, create=False).search(vectors[:1], 1)


@pytest.fixture
def index_copy(synthetic_index: Path, tmp_path: Path) -> Path:
    """A writable copy of the synthetic index and its gallery (same relative layout)."""
    shutil.copytree(synthetic_index.parent / "gallery", tmp_path / "gallery")
    shutil.copytree(synthetic_index, tmp_path / "index")
    register_stub_encoders()
    return tmp_path / "index"


def reindex(index_dir: Path, synthetic_bundle: Path, store: str | None = None):
    return build_index(index_dir.parent / "gallery", synthetic_bundle, index_dir, index_dir.parent / "cache",
                       progress=False, store=parse_store(store))


def hits(searcher: Searcher) -> list[list[str]]:
    return [[hit.id for hit in result.hits] for result in searcher.search_many(QUERIES, k=4)]


@pytest.mark.parametrize("kind", ["ann", "milvus"])
def test_every_store_gives_the_exact_hits_and_never_holds_a_flagged_photo(index_copy, synthetic_bundle, kind):
    exact_hits = hits(Searcher.open(index_copy))
    report = reindex(index_copy, synthetic_bundle, kind)
    assert report.added == report.changed == [] and report.unchanged == 14  # nothing embedded again
    assert read_manifest(index_copy)["store"]["kind"] == kind
    searcher = Searcher.open(index_copy)
    assert hits(searcher) == exact_hits
    index = searcher.index
    flagged = [index.ids[row] for row in np.flatnonzero(index.child)]
    assert flagged and len(child_paths(index)) == len(flagged)
    assert set(searcher._store.held_ids().tolist()) == set(index.ids) - set(flagged)
    found, _ = searcher._store.search(np.asarray(index.joint[np.flatnonzero(index.child)], dtype=np.float32), 12)
    assert not set(found.ravel()) & set(flagged)  # not even a raw store query with their own vectors


@pytest.mark.parametrize("kind", ["exact", "ann", "milvus"])
def test_review_decisions_update_the_store(index_copy, synthetic_bundle, kind):
    reindex(index_copy, synthetic_bundle, kind)
    index = GalleryIndex.load(index_copy)
    child_row = int(np.flatnonzero(index.child)[0])
    harmless_row = int(np.flatnonzero(~index.child)[0])
    log = ReviewLog.of_index(index_copy)
    log.append(make_review(index.ids[child_row], index.hashes[child_row], "clear", "ann", "a grown woman"))
    log.append(make_review(index.ids[harmless_row], index.hashes[harmless_row], "flag", "bob", "a child after all"))
    searcher = Searcher.open(index_copy)
    held = set(searcher._store.held_ids().tolist())
    assert index.ids[child_row] in held and index.ids[harmless_row] not in held
    reindex(index_copy, synthetic_bundle)  # a rebuild of the store applies the log too
    fresh = Searcher.open(index_copy)
    assert set(fresh._store.held_ids().tolist()) == held


def test_migration_moves_vectors_between_stores_and_drops_the_old_collection(index_copy, synthetic_bundle,
                                                                              monkeypatch):
    import picsearch.index.ingest as ingest

    real_embed = ingest.embed_images

    def embed(paths, *args, **kwargs):
        assert not paths, f"migration embedded {len(paths)} photos"
        return real_embed(paths, *args, **kwargs)

    monkeypatch.setattr(ingest, "embed_images", embed)
    reindex(index_copy, synthetic_bundle, "milvus")
    collection = read_manifest(index_copy)["store"]["collection"]
    reference = hits(Searcher.open(index_copy))
    reindex(index_copy, synthetic_bundle, "ann")
    assert hits(Searcher.open(index_copy)) == reference
    with pytest.raises(MilvusStoreError):  # the Lite file no longer holds the old collection
        MilvusStore(str(index_copy / LITE_FILE), collection, 1, create=False).search(np.ones((1, 1)), 1)
    reindex(index_copy, synthetic_bundle, "exact")
    assert hits(Searcher.open(index_copy)) == reference and read_manifest(index_copy)["store"] == {"kind": "exact"}


def test_an_update_cut_before_the_manifest_is_repaired_and_never_serves_a_gone_row(index_copy, synthetic_bundle,
                                                                                    monkeypatch):
    reindex(index_copy, synthetic_bundle, "milvus")
    gallery = index_copy.parent / "gallery"
    removed = next(path for path in sorted(gallery.glob("*.png")) if not path.name.startswith(CHILD_COLOUR))
    removed_id = image_id(removed.name)
    shutil.copy(removed, gallery / "copy.png")
    removed.unlink()
    real_save_json = gallery_module.save_json

    def killed_at_the_manifest(path, data):
        if path.name == "manifest.json":
            raise KeyboardInterrupt("killed")
        real_save_json(path, data)

    monkeypatch.setattr(gallery_module, "save_json", killed_at_the_manifest)
    with pytest.raises(KeyboardInterrupt):
        reindex(index_copy, synthetic_bundle)
    monkeypatch.setattr(gallery_module, "save_json", real_save_json)
    stale = Searcher.open(index_copy)  # the old manifest, with a store already holding the new rows
    assert image_id("copy.png") in set(stale._store.held_ids().tolist())
    assert image_id("copy.png") not in {hit for row in hits(stale) for hit in row}
    report = reindex(index_copy, synthetic_bundle)
    assert report.added == ["copy.png"] and report.removed == [removed.name]
    repaired = Searcher.open(index_copy)
    held = set(repaired._store.held_ids().tolist())
    visible = {i for i, child in zip(repaired.index.ids, repaired.index.child) if not child}
    assert held == visible and removed_id not in held and len(list(index_copy.glob("data-*"))) == 1


def test_index_command_chooses_the_store_and_names_a_bad_choice(index_copy, synthetic_bundle):
    from typer.testing import CliRunner

    from picsearch.interfaces.cli import app

    args = ["index", str(index_copy.parent / "gallery"), "--model", str(synthetic_bundle), "--out", str(index_copy),
            "--cache", str(index_copy.parent / "cache")]
    for extra, message in ((["--store", "hnsw"], "--store: expected exact, ann, milvus"),
                           (["--milvus-uri", "http://x:1"], "--milvus-uri: needs --store milvus")):
        result = CliRunner().invoke(app, args + extra)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    unreachable = CliRunner().invoke(app, args + ["--store", "milvus://127.0.0.1:9"])
    errors = [line for line in unreachable.output.splitlines() if line.startswith("error:")]
    assert unreachable.exit_code == 2 and len(errors) == 1 and "http://127.0.0.1:9" in errors[0]
    assert read_manifest(index_copy)["store"] == {"kind": "exact"}  # the index is left as it was
    moved = CliRunner().invoke(app, args + ["--store", "ann"])
    assert moved.exit_code == 0, moved.output
    assert read_manifest(index_copy)["store"] == {"kind": "ann"}
    assert CliRunner().invoke(app, args).exit_code == 0 and read_manifest(index_copy)["store"]["kind"] == "ann"


def test_ann_store_of_a_tiny_gallery_is_flat_and_exact(tmp_path):
    rng = np.random.default_rng(5)
    ids, vectors = _ids(20), _unit(rng, 20, 8)
    store = FaissStore(ids, vectors).fit(ids[:12])
    store.save(tmp_path)
    again = FaissStore.load(tmp_path, ids, vectors)
    again.remove(ids[:2])
    truth = NumpyStore(np.asarray(ids[2:12]), vectors[2:12]).search(vectors[:4], 3)[0]
    assert again.search(vectors[:4], 3)[0].tolist() == truth.tolist()
