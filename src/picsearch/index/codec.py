"""Row-quantized arrays of the index: int8 codes with one float32 scale per row and column segment.

A row's scale in a segment is its largest magnitude there / 127 (symmetric), so decoding a row and encoding
it again gives the same codes: incremental updates re-save reused rows without piling up error. Segments
keep columns of different ranges apart (pooled activations up to ~10, class probabilities below 1); a
``sqrt`` segment stores square roots, which gives probabilities fine steps near 0, where most of them are.

On disk, ``NAME.codes.npy`` (n, d) int8 and ``NAME.scales.npy`` (n, segments) float32, both loaded without
pickle, the codes memory-mapped: indexing decodes only the rows asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from picsearch.storage import load_array, save_array

LEVELS = 127
CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class Segment:
    """Columns ``[start, stop)`` with a scale of their own; ``sqrt``: stored as square roots (values >= 0)."""

    start: int
    stop: int
    sqrt: bool = False


def segments_of(fields: dict[str, tuple[int, int]], dim: int) -> tuple[Segment, ...]:
    """One segment per encoder field (``probs`` stored as square roots) when the fields tile all ``dim``
    columns, else one segment for the whole row."""
    spans = sorted(fields.items(), key=lambda item: item[1][0])
    segments = tuple(Segment(start, stop, name == "probs") for name, (start, stop) in spans)
    edges = [0, *(segment.stop for segment in segments)]
    tiles = all(segment.start == edge for segment, edge in zip(segments, edges)) and edges[-1] == dim
    return segments if segments and tiles else (Segment(0, dim),)


class QuantizedRows:
    """An (n, d) float matrix kept as int8 codes and per-row, per-segment scales.

    Indexing (an int, a slice, a list, an int or bool array) and ``np.asarray`` give float32 rows.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, codes: np.ndarray, scales: np.ndarray, segments: tuple[Segment, ...]) -> None:
        if codes.ndim != 2 or scales.shape != (len(codes), len(segments)):
            raise ValueError(f"codes {codes.shape} and scales {scales.shape} do not match {len(segments)} segments")
        self.codes, self.scales, self.segments = codes, scales, segments

    @classmethod
    def encode(cls, rows: Any, segments: tuple[Segment, ...] | None = None, chunk: int = CHUNK_ROWS) -> QuantizedRows:
        """Quantize ``rows`` ((n, d) floats: an array, a memory map or another :class:`QuantizedRows`),
        ``chunk`` rows at a time (bounds the float32 copy)."""
        n, d = rows.shape
        segments = segments or (Segment(0, d),)
        codes = np.empty((n, d), dtype=np.int8)
        scales = np.empty((n, len(segments)), dtype=np.float32)
        for start in range(0, n, chunk):
            block = np.asarray(rows[start : start + chunk], dtype=np.float32)
            for column, segment in enumerate(segments):
                part = block[:, segment.start : segment.stop]
                part = np.sqrt(np.clip(part, 0.0, None)) if segment.sqrt else part
                scale = np.abs(part).max(axis=1, initial=0.0) / LEVELS
                scale[scale == 0] = 1.0
                codes[start : start + len(block), segment.start : segment.stop] = np.rint(part / scale[:, None])
                scales[start : start + len(block), column] = scale
        return cls(codes, scales, segments)

    def decode(self, codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """float32 rows of ``codes`` (m, d) with their ``scales`` (m, segments)."""
        out = np.empty(codes.shape, dtype=np.float32)
        for column, segment in enumerate(self.segments):
            part = codes[:, segment.start : segment.stop] * scales[:, column : column + 1]
            out[:, segment.start : segment.stop] = np.square(part) if segment.sqrt else part
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.decode(self.codes[key : key + 1], self.scales[key : key + 1])[0]
        return self.decode(np.asarray(self.codes[key]), self.scales[key])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        rows = self.decode(np.asarray(self.codes), self.scales)
        return rows if dtype is None else rows.astype(dtype, copy=False)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.scales.nbytes)

    def save(self, folder: Path, name: str) -> None:
        save_array(folder / f"{name}.codes.npy", np.ascontiguousarray(self.codes))
        save_array(folder / f"{name}.scales.npy", self.scales)

    def segments_json(self) -> list[list[int]]:
        """``[start, stop, sqrt]`` per segment, for the manifest."""
        return [[s.start, s.stop, int(s.sqrt)] for s in self.segments]

    @classmethod
    def load(cls, folder: Path, name: str, segments: list[list[int]] | None, mmap: bool = True) -> QuantizedRows:
        """Read what :meth:`save` wrote; ``segments`` as :meth:`segments_json` gave them (None: one segment)."""
        path = folder / f"{name}.codes.npy"
        codes = load_array(path, mmap=mmap)
        if codes.dtype != np.int8 or codes.ndim != 2:
            raise ValueError(f"{path}: expected an (n, d) int8 array, found {codes.dtype} {codes.shape}")
        try:
            parsed = tuple(Segment(int(start), int(stop), bool(sqrt)) for start, stop, sqrt in segments or [])
        except (TypeError, ValueError):
            raise ValueError(f"{path}: its segments {segments!r} are not [start, stop, sqrt] triples") from None
        try:
            return cls(codes, load_array(folder / f"{name}.scales.npy"), parsed or (Segment(0, codes.shape[1]),))
        except ValueError as exc:
            raise ValueError(f"{folder / f'{name}.scales.npy'}: {exc}") from None
