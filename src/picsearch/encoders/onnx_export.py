"""Encoders run by ONNX Runtime: each network exported once from the shipped weights, cached on disk.

An exported file lives under the models folder (:func:`picsearch.config.models_dir`), named by a hash of the
weights and of the exporter (torch, onnx, opset, :data:`EXPORT_VERSION`): new weights or a new exporter give a
new file, never a stale one. It is written to a unique temporary name and renamed into place, so a half-written
file is never loaded and concurrent exporters each rename a complete file (the last rename wins; both are equal).

For sentence-transformers models the graph is the whole sentence encoder (transformer, mean pooling over the
attention mask, L2 normalization), so ONNX Runtime returns the vectors PyTorch would.

An int8 graph (:func:`cached_int8`) is derived from a float graph by ONNX Runtime's quantizers and cached the
same way, beside it, named by a hash of the float file's name, size and mtime and of :func:`quantize_config`
(which names the weights' int8 type this CPU gets, see :func:`exact_signed_int8`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from contextlib import contextmanager
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
import torch

from picsearch.config import models_dir
from picsearch.encoders.base import SortedSentenceModel
from picsearch.runtime import compute_threads, cpu_flags
from picsearch.storage import file_sha256

if TYPE_CHECKING:
    import onnx

OPSET = 17
EXPORT_VERSION = 1  # bump when the exported graph changes (inputs, pooling, normalization)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
QUANTIZE_VERSION = 2  # bump when the int8 recipe below changes
# The feed-forward output projections, whose inputs (GELU outputs, 4x wider than the hidden state, with a few
# huge channels) lose too much with one int8 scale per tensor, even after smoothing (min cosine 0.93 on
# all-mpnet-base-v2): they get weight-only int8 instead (MatMulNBits), which quantizes its input per block of
# BLOCKWISE_K channels of each row. Not BERT's attention/output/dense.
BLOCKWISE_MATMULS = re.compile(r"layer\.\d+/output/dense/MatMul$")
BLOCKWISE_K = 128  # 32 measured slower on all-mpnet-base-v2 (16.7 against 14.2 ms a query), same cosines
# x86 flags of the int8 dot products that accumulate in 32 bits (VNNI, AMX)
EXACT_INT8_DOT = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
# SmoothQuant's migration strength: the share of each input channel's range moved from the activation into
# the weights before quantizing (0.7 and 0.9 measured worse on all-mpnet-base-v2).
SMOOTHING = 0.8
# Caption-like sentences whose activations set the smoothing scales (written for this purpose).
CALIBRATION = (
    "A dog runs across a grassy field .", "Two children play with a red ball on the beach .",
    "A man in a blue jacket climbs a steep rock face .", "A woman rides a bicycle down a city street .",
    "A group of people stand outside a building at night .", "A black and white cat sleeps on a sofa .",
    "Three boys jump into a swimming pool .", "A brown horse gallops through the snow .",
    "A skier speeds down a snowy mountain slope .", "An old man sits on a bench reading a newspaper .",
    "A girl in a pink dress dances on a stage .", "Two dogs fight over a stick in the water .",
    "A crowd watches a parade pass by .", "A surfer rides a large wave .",
    "people", "a bird", "A motorcyclist leans into a sharp turn on a race track .",
    "A little boy eats an ice cream cone in the park while his mother watches .",
    "Several men in orange vests work on the railroad tracks .", "A football player catches the ball .",
)


def sentence_layout(model_dir: Path) -> tuple[Path, int]:
    """The transformer folder of a sentence-transformers model and its maximum sequence length.

    Raises ValueError unless the model is a transformer followed by mean pooling (what the exported graph does)."""
    modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    kinds = {module["type"].rsplit(".", 1)[-1]: model_dir / module["path"] for module in modules}
    if "Transformer" not in kinds or "Pooling" not in kinds:
        raise ValueError(f"{model_dir}/modules.json: expected a Transformer and a Pooling module, got {sorted(kinds)}")
    pooling = json.loads((kinds["Pooling"] / "config.json").read_text(encoding="utf-8"))
    if _pooling_modes(pooling) != ["mean"]:
        raise ValueError(f"{kinds['Pooling']}/config.json: only mean pooling is exported to ONNX")
    config = kinds["Transformer"] / "sentence_bert_config.json"
    max_length = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length", 512) if config.is_file() else 512
    return kinds["Transformer"], int(max_length)


def _pooling_modes(config: dict) -> list[str]:
    """The pooling modes a Pooling config turns on (``pooling_mode`` now, ``pooling_mode_*_tokens`` flags before)."""
    if isinstance(config.get("pooling_mode"), str):
        return [config["pooling_mode"]]
    flags = {key.removeprefix("pooling_mode_"): on for key, on in config.items() if key.startswith("pooling_mode_")}
    return ["mean" if name == "mean_tokens" else name for name, on in flags.items() if on]


def weights_digest(transformer_dir: Path) -> str:
    """SHA-256 of the transformer's weight file and config."""
    weights = next((transformer_dir / name for name in WEIGHT_FILES if (transformer_dir / name).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{transformer_dir}: no weight file ({', '.join(WEIGHT_FILES)})")
    return hashlib.sha256(f"{file_sha256(weights)}|{file_sha256(transformer_dir / 'config.json')}".encode()).hexdigest()


def exporter_version() -> str:
    """What produced the graph: torch and onnx versions, opset and this module's export version."""
    import onnx

    return f"torch {torch.__version__}, onnx {onnx.__version__}, opset {OPSET}, picsearch export {EXPORT_VERSION}"


def cached_graph(name: str, weights: str, export: Callable[[Path], None], cache: Path | None = None) -> Path:
    """The ONNX file of network ``name`` whose weights have digest ``weights``; ``export(path)`` writes it on
    first use (to a temporary path, renamed into place). ``cache`` defaults to ``models_dir()/onnx``."""
    key = hashlib.sha256(f"{weights}|{exporter_version()}".encode()).hexdigest()
    target = (cache or models_dir() / "onnx") / f"{name}-{key[:16]}.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name_tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        export(Path(name_tmp))
        os.chmod(name_tmp, 0o644)
        os.replace(name_tmp, target)
    finally:
        Path(name_tmp).unlink(missing_ok=True)
    return target


def exact_signed_int8() -> bool:
    """Whether ONNX Runtime's u8s8 int8 kernel sums exactly on this CPU: x86 with VNNI or AMX. Without them (plain
    AVX2) it adds pairs of products in saturating int16; a CPU whose flags cannot be read counts as without."""
    return not EXACT_INT8_DOT.isdisjoint(cpu_flags())


def quantize_config() -> str:
    """What the int8 graph depends on besides the float graph: the quantizer's version and the recipe."""
    import onnxruntime

    calibration = hashlib.sha256("\n".join(CALIBRATION).encode()).hexdigest()[:16]
    pair = "u8s8" if exact_signed_int8() else "u8u8"
    return (f"onnxruntime {onnxruntime.__version__}, dynamic int8 per-channel {pair}, MatMul with constant weights, "
            f"weight-only int8 blocks of {BLOCKWISE_K} for {BLOCKWISE_MATMULS.pattern}, "
            f"smoothing {SMOOTHING} on {calibration}, picsearch quantize {QUANTIZE_VERSION}")


def cached_int8(float_graph: Path, model_dir: Path) -> Path:
    """The int8 graph derived from ``float_graph`` (the sentence model in ``model_dir``), written on first use
    beside it (atomically, see :func:`cached_graph`); a changed float file or recipe gives a new file.

    The float file is known by name, size and mtime, not by its bytes: hashing 400 MB would cost each start a
    second or two, and :func:`cached_graph` never rewrites a file in place, so a new graph has a new stat."""
    stat = float_graph.stat()
    digest = f"{float_graph.name}|{stat.st_size}|{stat.st_mtime_ns}|{quantize_config()}"
    quantize = partial(quantize_sentence_graph, float_graph, model_dir)
    return cached_graph(f"{float_graph.stem}-int8", digest, quantize, float_graph.parent)


def quantize_sentence_graph(float_graph: Path, model_dir: Path, path: Path) -> None:
    """Write ``float_graph`` with its weight MatMuls quantized to int8 to ``path``.

    The :data:`BLOCKWISE_MATMULS` get weight-only int8 (MatMulNBits, int8 compute on inputs quantized per
    block). Before the others are quantized dynamically, each one's input is smoothed (SmoothQuant): divided
    per channel by a scale measured on :data:`CALIBRATION`, the weights' rows multiplied by it, so the few wide
    channels of the hidden state no longer set the one int8 scale of the whole tensor. Their weights are signed
    where :func:`exact_signed_int8` (1.75x faster than unsigned on all-mpnet-base-v2), else unsigned (u8u8).
    Their activations are quantized per run, one scale per tensor, so a text's vector would depend on the
    padding of its batch-mates: :class:`OnnxSentenceModel` runs an int8 graph one text at a time."""
    import onnx

    model = onnx.load(str(float_graph))
    weights = {tensor.name for tensor in model.graph.initializer}
    matmuls = [node for node in model.graph.node if node.op_type == "MatMul" and node.input[1] in weights]
    blockwise = [node.name for node in matmuls if BLOCKWISE_MATMULS.search(node.name)]
    targets = [node for node in matmuls if node.name not in blockwise]
    maxima = activation_maxima(model, sorted({node.input[0] for node in targets}), model_dir)
    smooth(model, targets, maxima)
    with quiet_root_logger():
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

        config = DefaultWeightOnlyQuantConfig(block_size=BLOCKWISE_K, is_symmetric=True, accuracy_level=4, bits=8)
        # nodes_to_include only adds to the op types it quantizes, so every other MatMul is excluded
        others = [node.name for node in model.graph.node if node.op_type == "MatMul" and node.name not in blockwise]
        weight_only = MatMulNBitsQuantizer(
            model, nodes_to_include=blockwise, nodes_to_exclude=others, algo_config=config
        )
        weight_only.process()
        quantize_dynamic(
            weight_only.model.model, path, weight_type=QuantType.QInt8 if exact_signed_int8() else QuantType.QUInt8,
            per_channel=True, op_types_to_quantize=["MatMul"], nodes_to_quantize=[node.name for node in targets],
            extra_options={"MatMulConstBOnly": True},
        )


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    """Only errors reach the root logger inside, and its handlers and level are put back after: ONNX Runtime's
    quantizers log their progress and advice there, and the weight-only one's module calls
    ``logging.basicConfig(level=INFO)`` when imported, which is why it is imported here first."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        import onnxruntime.quantization.matmul_nbits_quantizer  # noqa: F401

        root.setLevel(logging.ERROR)
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def activation_maxima(model: "onnx.ModelProto", names: Sequence[str], model_dir: Path) -> dict[str, np.ndarray]:
    """Per channel, the largest magnitude each tensor in ``names`` takes over :data:`CALIBRATION` (one text a run)."""
    import onnx
    import transformers

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names)
    session = onnx_session(probe.SerializeToString())
    tokenizer = transformers.AutoTokenizer.from_pretrained(sentence_layout(model_dir)[0], local_files_only=True)
    maxima = {name: np.zeros(0, np.float32) for name in names}
    for text in CALIBRATION:
        tokens = tokenizer([text], return_tensors="np")
        feed = {name: tokens[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
        for name, value in zip(names, session.run(list(names), feed)):
            channels = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            maxima[name] = np.maximum(maxima[name], channels) if maxima[name].size else channels
    return maxima


def smooth(model: "onnx.ModelProto", targets: Sequence["onnx.NodeProto"], maxima: dict[str, np.ndarray]) -> None:
    """Insert ``x / s`` before the MatMuls ``targets`` (in place) and scale their weights' rows by ``s``, where
    ``s = max|x|^a / max|w|^(1-a)`` per input channel, ``a`` = :data:`SMOOTHING`: the same products, flatter
    activations."""
    from onnx import helper, numpy_helper

    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    smoothed: dict[str, "onnx.NodeProto"] = {}
    for name, peak in maxima.items():
        users = [node for node in targets if node.input[0] == name]
        rows = [numpy_helper.to_array(weights[node.input[1]]) for node in users]
        width = np.max([np.abs(w).max(axis=1) for w in rows], axis=0)
        scale = (np.maximum(peak, 1e-5) ** SMOOTHING / np.maximum(width, 1e-5) ** (1 - SMOOTHING)).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(1 / scale, f"{name}/smooth_scale"))
        smoothed[name] = helper.make_node("Mul", [name, f"{name}/smooth_scale"], [f"{name}/smoothed"], f"{name}/smooth")
        for node, w in zip(users, rows):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array(w * scale[:, None], node.input[1]))
            node.input[0] = f"{name}/smoothed"
    nodes, placed = [], set()
    for node in model.graph.node:  # each Mul right before its first user keeps the graph in topological order
        for source in node.input:
            if source.endswith("/smoothed") and source not in placed:
                nodes.append(smoothed[source.removesuffix("/smoothed")])
                placed.add(source)
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def export_module(
    module: torch.nn.Module, sample: tuple[torch.Tensor, ...], path: Path, inputs: Sequence[str], output: str
) -> None:
    """Write ``module`` as ONNX to ``path``; the first axis of every input and of the output is dynamic, and so
    is the second of 2-d inputs (token sequences)."""
    dynamic = {name: {0: "batch", 1: "tokens"} if x.dim() == 2 else {0: "batch"} for name, x in zip(inputs, sample)}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            module.eval(), sample, str(path), input_names=list(inputs), output_names=[output],
            dynamic_axes={**dynamic, output: {0: "batch"}}, opset_version=OPSET, dynamo=False,
        )


def onnx_session(graph: Path | bytes):
    """An ONNX Runtime CPU session on the file (or serialized graph) ``graph``, with the threads the entry point set."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = compute_threads()
    options.inter_op_num_threads = 1
    # On a shared CPU, spinning worker threads steal the cores other requests need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = graph if isinstance(graph, bytes) else str(graph)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def cached_onnx(model_dir: Path, name: str, weights: str | None = None, cache: Path | None = None) -> Path:
    """The ONNX file of the sentence-transformers model in ``model_dir``, exported on first use.

    ``weights`` is the weights' digest when the caller knows it (e.g. a pinned hash), else it is computed."""
    transformer_dir, _ = sentence_layout(model_dir)
    export = partial(export_sentence_model, transformer_dir)
    return cached_graph(name, weights or weights_digest(transformer_dir), export, cache)


def export_sentence_model(transformer_dir: Path, path: Path) -> None:
    """Write transformer + mean pooling + L2 normalization to ``path`` as ONNX."""
    import transformers

    model = PooledNormalized(transformers.AutoModel.from_pretrained(transformer_dir, local_files_only=True))
    tokenizer = transformers.AutoTokenizer.from_pretrained(transformer_dir, local_files_only=True)
    sample = tokenizer(["a dog runs", "two people on a bench by the sea"], padding=True, return_tensors="pt")
    inputs = ("input_ids", "attention_mask")
    export_module(model, tuple(sample[name] for name in inputs), path, inputs, "embedding")


class PooledNormalized(torch.nn.Module):
    """A transformer's token vectors averaged over the attention mask, L2-normalized (sentence-transformers' recipe)."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        super().__init__()
        self.transformer = transformer.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2.0, dim=1)


class OnnxSentenceModel(SortedSentenceModel):
    """Encodes texts with the exported graph (see :class:`~picsearch.encoders.base.SortedSentenceModel`).

    ``concurrent`` is for an int8 graph, which must take one text a run: the queries a server batches then use
    every CPU."""

    def __init__(self, model_dir: Path, onnx_path: Path, batch_size: int = 64, concurrent: bool = False) -> None:
        super().__init__(*sentence_layout(model_dir), batch_size, concurrent)
        self.onnx_path = onnx_path

    @cached_property
    def session(self):
        return onnx_session(self.onnx_path)

    def run(self, texts: list[str]) -> np.ndarray:
        feed = {name: array.astype(np.int64) for name, array in self.tokens(texts, "np").items()}
        return self.session.run(None, feed)[0]
