"""Encoders run by ONNX Runtime: each network exported once from the shipped weights, cached on disk.

An exported file lives under the models folder (:func:`picsearch.config.models_dir`), named by a hash of the
weights and of the exporter (torch, onnx, opset, :data:`EXPORT_VERSION`): new weights or a new exporter give a
new file, never a stale one. It is written to a unique temporary name and renamed into place, so a half-written
file is never loaded and concurrent exporters each rename a complete file (the last rename wins; both are equal).

For sentence-transformers models the graph is the whole sentence encoder (transformer, mean pooling over the
attention mask, L2 normalization), so ONNX Runtime returns the vectors PyTorch would.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from functools import cached_property, partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from picsearch.config import models_dir
from picsearch.runtime import compute_threads
from picsearch.storage import file_sha256

OPSET = 17
EXPORT_VERSION = 1  # bump when the exported graph changes (inputs, pooling, normalization)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


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


def onnx_session(path: Path):
    """An ONNX Runtime CPU session on ``path`` with the threads the entry point set."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = compute_threads()
    options.inter_op_num_threads = 1
    # On a shared CPU, spinning worker threads steal the cores other requests need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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


class OnnxSentenceModel:
    """Encodes texts with the exported graph: the model's own tokenizer, batches sorted by length."""

    def __init__(self, model_dir: Path, onnx_path: Path, batch_size: int = 64) -> None:
        self.transformer_dir, self.max_length = sentence_layout(model_dir)
        self.onnx_path = onnx_path
        self.batch_size = batch_size

    @cached_property
    def tokenizer(self):
        import transformers

        return transformers.AutoTokenizer.from_pretrained(self.transformer_dir, local_files_only=True)

    @cached_property
    def session(self):
        return onnx_session(self.onnx_path)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (N, dim) float32 unit vectors, in input order."""
        texts = [str(text).strip() for text in texts]
        order = np.argsort([-len(text) for text in texts], kind="stable")
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        for start in range(0, len(texts), self.batch_size):
            chunk = order[start : start + self.batch_size]
            tokens = self.tokenizer(
                [texts[i] for i in chunk], padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
            )
            feed = {name: tokens[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
            for i, vector in zip(chunk, self.session.run(None, feed)[0]):
                out[i] = vector
        return np.stack(out).astype(np.float32)
