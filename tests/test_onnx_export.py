"""Sentence encoders exported to ONNX: agreement with PyTorch, and the export cache on disk."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from hub_models import build_bert
from picsearch.encoders import base, onnx_export
from picsearch.encoders.onnx_export import OnnxSentenceModel, cached_int8, cached_onnx, sentence_layout
from picsearch.encoders.sentence import SentenceEncoder

TEXTS = ["a dog on a sofa", "cats", "a cat on a sofa on a dog", "dogs", "a"]


def _sentence_folder(folder: Path, seed: int = 2) -> Path:
    """A tiny BERT saved as a sentence-transformers model: transformer, mean pooling, normalization."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models

    bert = build_bert(folder / "bert")
    if seed != 2:  # other weights, same architecture
        torch.manual_seed(seed)
        import transformers

        transformers.BertModel(transformers.BertConfig.from_pretrained(bert)).save_pretrained(bert)
    modules = [models.Transformer(str(bert), max_seq_length=16), models.Pooling(16, "mean"), models.Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder / "st"))
    return folder / "st"


class TinyEncoder(SentenceEncoder):
    id, dim, name = "tiny-v1", 16, "tiny"

    def __init__(self, folder: Path, backend: str) -> None:
        super().__init__(batch_size=2, backend=backend)
        self.folder = folder

    def model_path(self) -> Path:
        return self.folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sentence_folder(tmp_path_factory.mktemp("tiny"))


def test_onnx_vectors_agree_with_pytorch_in_input_order(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PICSEARCH_MODELS", str(tmp_path))
    reference = TinyEncoder(tiny, "torch").encode(TEXTS)
    vectors = TinyEncoder(tiny, "onnx").encode(TEXTS)  # batches of 2, sorted by length inside
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    assert np.min(np.sum(reference * vectors, axis=1)) >= 0.999
    assert len(list((tmp_path / "onnx").glob("tiny-*.onnx"))) == 1


def test_the_export_is_reused_and_redone_when_the_weights_or_exporter_change(tmp_path: Path, monkeypatch) -> None:
    folder = _sentence_folder(tmp_path / "a")
    calls: list[Path] = []
    export = onnx_export.export_sentence_model
    monkeypatch.setattr(onnx_export, "export_sentence_model", lambda src, dst: calls.append(src) or export(src, dst))
    first = cached_onnx(folder, "tiny", cache=tmp_path / "cache")
    assert cached_onnx(folder, "tiny", cache=tmp_path / "cache") == first and len(calls) == 1
    other = cached_onnx(_sentence_folder(tmp_path / "b", seed=3), "tiny", cache=tmp_path / "cache")
    assert other != first
    monkeypatch.setattr(onnx_export, "EXPORT_VERSION", onnx_export.EXPORT_VERSION + 1)
    assert cached_onnx(folder, "tiny", cache=tmp_path / "cache") not in (first, other)
    assert len(calls) == 3


def test_an_interrupted_export_leaves_no_file(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    def crash(model, args, path, **kwargs) -> None:
        Path(path).write_bytes(b"half a graph")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", crash)
    with pytest.raises(KeyboardInterrupt):
        cached_onnx(tiny, "tiny", cache=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # two fresh interpreters import torch: about a minute on a busy 2-core box
def test_concurrent_exporters_both_end_with_one_complete_file(tiny: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from picsearch.encoders.onnx_export import cached_onnx; "
        "print(cached_onnx(Path(sys.argv[1]), 'tiny', cache=Path(sys.argv[2])))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    runs = [
        subprocess.Popen([sys.executable, "-c", code, str(tiny), str(tmp_path)], stdout=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    paths = {run.communicate(timeout=300)[0].decode().strip() for run in runs}
    assert all(run.returncode == 0 for run in runs) and len(paths) == 1
    assert [p.name for p in tmp_path.iterdir()] == [Path(paths.pop()).name]  # no temporary file left
    reference = TinyEncoder(tiny, "torch").encode(TEXTS)
    vectors = OnnxSentenceModel(tiny, next(tmp_path.iterdir())).encode(TEXTS)
    assert np.min(np.sum(reference * vectors, axis=1)) >= 0.999


def test_only_mean_pooling_is_exported(tiny: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cls"
    folder.mkdir()
    (folder / "modules.json").write_text((tiny / "modules.json").read_text())
    for module in json.loads((tiny / "modules.json").read_text()):
        if "Pooling" in module["type"]:
            (folder / module["path"]).mkdir(parents=True)
            config = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
            (folder / module["path"] / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="only mean pooling"):
        sentence_layout(folder)


def test_int8_vectors_agree_with_float_and_do_not_depend_on_batch_mates(tiny: Path, tmp_path: Path) -> None:
    graph = cached_onnx(tiny, "tiny", cache=tmp_path)
    int8 = cached_int8(graph, tiny)
    assert int8.parent == tmp_path and int8.name.startswith(f"{graph.stem}-int8-")
    reference = OnnxSentenceModel(tiny, graph).encode(TEXTS)
    model = OnnxSentenceModel(tiny, int8, batch_size=1)
    vectors = model.encode(TEXTS)
    assert np.min(np.sum(reference * vectors, axis=1)) >= 0.99
    np.testing.assert_array_equal(np.concatenate([model.encode([text]) for text in TEXTS]), vectors)
    nodes = onnx.load(str(int8)).graph.node
    blockwise = [node.name for node in nodes if node.op_type == "MatMulNBits"]
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= {node.op_type for node in nodes}
    assert len(blockwise) == 2 and all("/output/dense/" in name for name in blockwise)  # the tiny BERT's 2 FFNs


@pytest.mark.parametrize(("flags", "exact"), [
    ("fpu sse2 avx2 fma", False), ("avx2 avx512f avx512_vnni", True), ("avx2 avx_vnni", True),
    ("amx_int8 avx2", True), ("", False),
])
def test_signed_int8_weights_only_where_the_cpu_sums_them_exactly(monkeypatch, flags: str, exact: bool) -> None:
    monkeypatch.setattr(onnx_export, "cpu_flags", lambda: frozenset(flags.split()))
    assert onnx_export.exact_signed_int8() is exact


def test_the_int8_recipe_names_the_weights_type_the_cpu_gets(monkeypatch) -> None:
    configs = {}
    for exact in (True, False):
        monkeypatch.setattr(onnx_export, "exact_signed_int8", lambda: exact)
        configs[exact] = onnx_export.quantize_config()
    # so a graph made for one CPU is not reused on the other
    assert "u8s8" in configs[True] and "u8u8" in configs[False]


def test_quantizing_prints_nothing_and_leaves_the_root_logger_as_it_was(tiny: Path, tmp_path: Path) -> None:
    # a fresh process: under pytest the root logger already has a handler, so basicConfig would do nothing
    code = (
        "import logging, sys; from pathlib import Path; from picsearch.encoders import onnx_export as ox; "
        "root = logging.getLogger(); tiny = Path(sys.argv[1]); "
        "ox.cached_int8(ox.cached_onnx(tiny, 'tiny', cache=Path(sys.argv[2])), tiny); "
        "print(len(root.handlers), root.level); logging.info('not shown')"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", code, str(tiny), str(tmp_path)]
    run = subprocess.run(command, capture_output=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert run.stdout.decode().split() == ["0", str(logging.WARNING)]
    assert "INFO" not in run.stderr.decode() and "not shown" not in run.stderr.decode()


def test_a_concurrent_model_runs_texts_at_once_each_its_own_vector(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    graph = cached_onnx(tiny, "tiny", cache=tmp_path)
    texts = TEXTS[:4]
    serial = OnnxSentenceModel(tiny, graph, batch_size=1).encode(texts)
    model = OnnxSentenceModel(tiny, graph, batch_size=1, concurrent=True)
    monkeypatch.setattr(base, "model_workers", lambda: 2)
    meet, run = threading.Barrier(2, timeout=20), model.session.run

    def together(*args):
        meet.wait()  # a run that no other joins fails here (BrokenBarrierError after the timeout)
        return run(*args)

    model.session.run = together
    np.testing.assert_array_equal(model.encode(texts), serial)


def test_the_int8_graph_is_reused_and_redone_when_the_float_graph_changes(tmp_path: Path, monkeypatch) -> None:
    a, b = _sentence_folder(tmp_path / "a"), _sentence_folder(tmp_path / "b", seed=3)
    graph = cached_onnx(a, "tiny", cache=tmp_path / "cache")
    calls: list[Path] = []
    quantize = onnx_export.quantize_sentence_graph
    monkeypatch.setattr(onnx_export, "quantize_sentence_graph", lambda *args: calls.append(args[0]) or quantize(*args))
    first = cached_int8(graph, a)
    assert cached_int8(graph, a) == first and len(calls) == 1
    graph.write_bytes(cached_onnx(b, "tiny", cache=tmp_path / "other").read_bytes())  # same name, other weights
    second = cached_int8(graph, a)
    assert second != first and len(calls) == 2
    monkeypatch.setattr(onnx_export, "QUANTIZE_VERSION", onnx_export.QUANTIZE_VERSION + 1)
    assert cached_int8(graph, a) not in (first, second) and len(calls) == 3


def test_an_interrupted_quantization_leaves_no_file(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    from onnxruntime import quantization

    def crash(model, path, **kwargs) -> None:
        Path(path).write_bytes(b"half a graph")
        raise KeyboardInterrupt

    graph = cached_onnx(tiny, "tiny", cache=tmp_path)
    monkeypatch.setattr(quantization, "quantize_dynamic", crash)
    with pytest.raises(KeyboardInterrupt):
        cached_int8(graph, tiny)
    assert list(tmp_path.iterdir()) == [graph]


def test_an_unknown_backend_is_refused(tiny: Path) -> None:
    with pytest.raises(ValueError, match="unknown text encoder backend 'tf'"):
        TinyEncoder(tiny, "tf")
