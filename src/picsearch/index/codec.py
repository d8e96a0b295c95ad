"""Row-quantized arrays of the index: int8 or int4 codes with one float32 scale per row and column segment.

A value is stored as ``code * row_scale * column_weight``: the row's scale in a segment is its largest
weighted magnitude there / 127 (symmetric), so nothing is ever clipped, and decoding a row then encoding it
again with the same codec gives the same codes (incremental updates re-save reused rows without piling up
error). Column weights (the columns' RMS when the codec was fitted, kept for the index's life) give a column
that is small in every photo steps as fine as its own spread: the reranker's matchers standardize their
inputs, so such a column counts as much as a large one. Segments keep columns of different kinds apart
(pooled activations, class probabilities); a ``sqrt`` segment stores square roots, which gives
probabilities fine steps near 0, where most of them are.

On disk, ``NAME.codes.npy`` ((n, d) int8, or (n, ceil(d / 2)) uint8 holding two 4-bit codes a byte),
``NAME.scales.npy`` (n, segments) float32 and, when weighted,
``NAME.columns.npy`` (d,) float32, all loaded without pickle, the codes memory-mapped: indexing decodes only
the rows asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from picsearch.storage import load_array, save_array

BITS = (8, 4)
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


@dataclass(frozen=True, eq=False)
class RowCodec:
    """How rows are quantized: the segments, the column weights (None: every column weighs 1) and the bits
    of a code (8: -127..127, 4: -7..7)."""

    segments: tuple[Segment, ...]
    columns: np.ndarray | None = None
    bits: int = 8

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise ValueError(f"codes of {self.bits} bits: expected one of {BITS}")

    @property
    def levels(self) -> int:
        return 2 ** (self.bits - 1) - 1

    @property
    def dim(self) -> int:
        return self.segments[-1].stop

    @classmethod
    def fit(cls, rows: Any, segments: tuple[Segment, ...], bits: int = 8, chunk: int = CHUNK_ROWS) -> RowCodec:
        """Column weights = each column's RMS over ``rows`` in the stored domain (1 where it is 0)."""
        squares = np.zeros(rows.shape[1], dtype=np.float64)
        for start in range(0, len(rows), chunk):
            squares += np.square(cls(segments)._stored(np.asarray(rows[start : start + chunk], np.float32))).sum(0)
        rms = np.sqrt(squares / max(len(rows), 1)).astype(np.float32)
        return cls(segments, np.where(rms > 0, rms, np.float32(1.0)), bits)

    def _stored(self, block: np.ndarray) -> np.ndarray:
        """``block`` with the square root taken in ``sqrt`` segments."""
        out = block.copy()
        for segment in self.segments:
            if segment.sqrt:
                out[:, segment.start : segment.stop] = np.sqrt(np.clip(block[:, segment.start : segment.stop], 0, None))
        return out

    def encode_block(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes (int8, unpacked) and (m, segments) scales of float32 rows."""
        weighted = self._stored(block) / (1.0 if self.columns is None else self.columns)
        codes = np.empty(block.shape, dtype=np.int8)
        scales = np.empty((len(block), len(self.segments)), dtype=np.float32)
        for column, segment in enumerate(self.segments):
            part = weighted[:, segment.start : segment.stop]
            scale = np.abs(part).max(axis=1, initial=0.0) / self.levels
            scale[scale == 0] = 1.0
            codes[:, segment.start : segment.stop] = np.rint(part / scale[:, None])
            scales[:, column] = scale
        return codes, scales

    def decode(self, codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """float32 rows of ``codes`` (m, d) with their ``scales`` (m, segments)."""
        out = np.empty(codes.shape, dtype=np.float32)
        for column, segment in enumerate(self.segments):
            out[:, segment.start : segment.stop] = codes[:, segment.start : segment.stop] * scales[:, column : column + 1]
        if self.columns is not None:
            out *= self.columns
        for segment in self.segments:
            if segment.sqrt:
                np.square(out[:, segment.start : segment.stop], out=out[:, segment.start : segment.stop])
        return out

    def pack(self, codes: np.ndarray) -> np.ndarray:
        """Codes as stored: int8 as they are; 4-bit ones two a byte (column 2k low nibble, 2k + 1 high)."""
        if self.bits == 8:
            return codes
        nibbles = (codes + 8).astype(np.uint8)
        if nibbles.shape[1] % 2:
            nibbles = np.hstack([nibbles, np.full((len(nibbles), 1), 8, dtype=np.uint8)])
        return nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)

    def unpack(self, stored: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`pack`: (m, d) codes."""
        if self.bits == 8:
            return stored
        codes = np.empty((len(stored), 2 * stored.shape[1]), dtype=np.int8)
        codes[:, 0::2], codes[:, 1::2] = stored & 15, stored >> 4
        return codes[:, : self.dim] - 8

    def to_json(self) -> list[list[int]]:
        """``[start, stop, sqrt]`` per segment, for the manifest (the column weights go in their own file)."""
        return [[s.start, s.stop, int(s.sqrt)] for s in self.segments]


def storage_codec(
    rows: Any, bits: int | None, kept: RowCodec | None = None, segments: tuple[Segment, ...] | None = None
) -> RowCodec | None:
    """The codec that stores ``rows`` as ``bits``-bit codes (None when ``bits`` is: stored as floats).

    ``kept`` is the codec of the stored rows that ``rows`` reuse: kept while its bits match (re-encoding decoded
    rows gives their codes back), else refitted on ``rows`` over its segments. Rows reusing nothing get one
    fitted over ``segments`` (default: one segment).
    """
    if bits is None:
        return None
    if kept is not None and kept.bits == bits:
        return kept
    layout = kept.segments if kept is not None else segments or (Segment(0, rows.shape[1]),)
    return RowCodec.fit(rows, layout, bits)


def codec_of(rows: Any) -> RowCodec | None:
    """The codec of :class:`QuantizedRows`, None for float rows."""
    return rows.codec if isinstance(rows, QuantizedRows) else None


class QuantizedRows:
    """An (n, d) float matrix kept as int8 or packed int4 codes, per-row scales and a :class:`RowCodec`.

    Indexing (an int, a slice, a list, an int or bool array) and ``np.asarray`` give float32 rows.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, codes: np.ndarray, scales: np.ndarray, codec: RowCodec) -> None:
        if codes.ndim != 2 or codes.shape[1] != codec.pack(np.zeros((0, codec.dim), np.int8)).shape[1] or (
            scales.shape != (len(codes), len(codec.segments))
        ):
            raise ValueError(f"codes {codes.shape} and scales {scales.shape} do not match {len(codec.segments)} segments")
        if codec.columns is not None and codec.columns.shape != (codec.dim,):
            raise ValueError(f"column weights {codec.columns.shape} do not match codes {codes.shape}")
        self.codes, self.scales, self.codec = codes, scales, codec

    @classmethod
    def encode(cls, rows: Any, codec: RowCodec | None = None, chunk: int = CHUNK_ROWS) -> QuantizedRows:
        """Quantize ``rows`` ((n, d) floats: an array, a memory map or another :class:`QuantizedRows`),
        ``chunk`` rows at a time (bounds the float32 copy); default codec: one segment, unweighted."""
        n, d = rows.shape
        codec = codec or RowCodec((Segment(0, d),))
        codes = codec.pack(np.zeros((n, d), dtype=np.int8))
        scales = np.empty((n, len(codec.segments)), dtype=np.float32)
        for start in range(0, n, chunk):
            block, scales[start : start + chunk] = codec.encode_block(
                np.asarray(rows[start : start + chunk], dtype=np.float32)
            )
            codes[start : start + chunk] = codec.pack(block)
        return cls(codes, scales, codec)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        return self.codec.decode(self.codec.unpack(np.asarray(self.codes[key])), self.scales[key])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype, copy=False)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.codes), self.codec.dim

    @property
    def nbytes(self) -> int:
        weights = 0 if self.codec.columns is None else self.codec.columns.nbytes
        return int(self.codes.nbytes + self.scales.nbytes + weights)

    def save(self, folder: Path, name: str) -> None:
        save_array(folder / f"{name}.codes.npy", np.ascontiguousarray(self.codes))
        save_array(folder / f"{name}.scales.npy", self.scales)
        if self.codec.columns is not None:
            save_array(folder / f"{name}.columns.npy", self.codec.columns)

    @classmethod
    def load(
        cls, folder: Path, name: str, segments: list[list[int]] | None, bits: int = 8, mmap: bool = True
    ) -> QuantizedRows:
        """Read what :meth:`save` wrote; ``segments`` as :meth:`RowCodec.to_json` gave them (None: one segment
        over every column of 8-bit codes)."""
        path = folder / f"{name}.codes.npy"
        codes = load_array(path, mmap=mmap)
        expected = np.int8 if bits == 8 else np.uint8
        if codes.dtype != expected or codes.ndim != 2:
            raise ValueError(f"{path}: expected a 2-d {np.dtype(expected)} array, found {codes.dtype} {codes.shape}")
        try:
            parsed = tuple(Segment(int(start), int(stop), bool(sqrt)) for start, stop, sqrt in segments or [])
        except (TypeError, ValueError):
            raise ValueError(f"{path}: its segments {segments!r} are not [start, stop, sqrt] triples") from None
        weights = folder / f"{name}.columns.npy"
        codec = RowCodec(
            parsed or (Segment(0, codes.shape[1]),), load_array(weights) if weights.is_file() else None, bits
        )
        try:
            return cls(codes, load_array(folder / f"{name}.scales.npy"), codec)
        except ValueError as exc:
            raise ValueError(f"{folder / f'{name}.scales.npy'}: {exc}") from None
