"""Row-quantized arrays: round trip within half a step, stable under re-encoding, every way rows are read."""

from __future__ import annotations

import numpy as np
import pytest

from picsearch.index.codec import QuantizedRows, RowCodec, Segment, codec_of, segments_of, storage_codec

SEGMENTS = (Segment(0, 6), Segment(6, 10, sqrt=True))
CODEC = RowCodec(SEGMENTS)


def _rows(n: int = 40, seed: int = 0) -> np.ndarray:
    """Pooled-like activations (0..8) beside probability rows (mostly tiny, one large)."""
    rng = np.random.default_rng(seed)
    pooled = rng.gamma(1.0, 1.5, size=(n, 6))
    probs = rng.dirichlet(np.full(4, 0.2), size=n)
    return np.hstack([pooled, probs]).astype(np.float32)


def test_round_trip_is_within_half_a_step_of_each_rows_scale():
    rows = _rows()
    decoded = np.asarray(QuantizedRows.encode(rows, CODEC))
    pooled_step = np.abs(rows[:, :6]).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(decoded[:, :6] - rows[:, :6]) <= pooled_step / 2 + 1e-6)
    roots = np.sqrt(rows[:, 6:])
    root_step = roots.max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(np.sqrt(decoded[:, 6:]) - roots) <= root_step / 2 + 1e-6)
    assert np.all(decoded[:, 6:] >= 0)  # probabilities stay probabilities
    # the square-root segment keeps small probabilities a linear int8 would round to 0
    linear = np.asarray(QuantizedRows.encode(rows, RowCodec((Segment(0, 6), Segment(6, 10)))))
    small = (rows[:, 6:] > 0) & (rows[:, 6:] < 1e-3)
    assert small.any() and (decoded[:, 6:][small] > 0).mean() > (linear[:, 6:][small] > 0).mean()


def test_column_weights_step_a_small_column_by_its_own_spread():
    rows = _rows()
    rows[:, 5] *= 1e-3  # a column small in every photo
    plain = np.asarray(QuantizedRows.encode(rows, CODEC))
    weighted = QuantizedRows.encode(rows, RowCodec.fit(rows, SEGMENTS))
    error = lambda decoded: np.abs(decoded[:, 5] - rows[:, 5]).mean() / rows[:, 5].std()
    assert error(np.asarray(weighted)) < error(plain) / 10 and error(np.asarray(weighted)) < 0.02


@pytest.mark.parametrize("fitted", [False, True])
def test_re_encoding_decoded_rows_gives_the_same_codes(fitted):
    rows = _rows()
    quantized = QuantizedRows.encode(rows, RowCodec.fit(rows, SEGMENTS) if fitted else CODEC)
    again = QuantizedRows.encode(quantized, quantized.codec)  # what an incremental update does with reused rows
    np.testing.assert_array_equal(again.codes, quantized.codes)
    np.testing.assert_allclose(again.scales, quantized.scales, rtol=1e-6)


def test_chunked_encoding_equals_one_pass():
    rows = _rows(25)
    whole, chunked = QuantizedRows.encode(rows, CODEC), QuantizedRows.encode(rows, CODEC, chunk=4)
    np.testing.assert_array_equal(whole.codes, chunked.codes)
    np.testing.assert_array_equal(whole.scales, chunked.scales)


def test_zero_rows_decode_to_zero():
    rows = np.zeros((3, 10), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(QuantizedRows.encode(rows, CODEC)), rows)


@pytest.mark.parametrize("key", [3, slice(2, 9), [5, 0, 5], np.array([7, 1]), np.arange(40) % 3 == 0])
def test_every_index_form_decodes_the_same_rows(key):
    quantized = QuantizedRows.encode(_rows(), CODEC)
    whole = np.asarray(quantized)
    np.testing.assert_array_equal(quantized[key], whole[key])
    assert quantized[key].dtype == np.float32


def test_save_and_load_map_the_codes_without_pickle(tmp_path):
    quantized = QuantizedRows.encode(_rows(), RowCodec.fit(_rows(), SEGMENTS))
    quantized.save(tmp_path, "features")
    for name in ("features.codes.npy", "features.scales.npy", "features.columns.npy"):
        np.load(tmp_path / name, allow_pickle=False)
    loaded = QuantizedRows.load(tmp_path, "features", quantized.codec.to_json())
    assert isinstance(loaded.codes, np.memmap) and loaded.codec.segments == SEGMENTS
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(quantized))
    np.testing.assert_array_equal(loaded.codec.columns, quantized.codec.columns)
    assert loaded.nbytes == 40 * 10 + 40 * 2 * 4 + 10 * 4


def test_load_errors_name_the_file(tmp_path):
    QuantizedRows.encode(_rows(), CODEC).save(tmp_path, "joint")
    np.save(tmp_path / "joint.codes.npy", np.zeros((40, 10), dtype=np.float32))
    with pytest.raises(ValueError, match=r"joint\.codes\.npy: expected a 2-d int8 array"):
        QuantizedRows.load(tmp_path, "joint", None)
    np.save(tmp_path / "joint.codes.npy", np.zeros((40, 10), dtype=np.int8))
    with pytest.raises(ValueError, match=r"joint\.scales\.npy"):
        QuantizedRows.load(tmp_path, "joint", None)  # two scales per row, one segment
    with pytest.raises(ValueError, match="not \\[start, stop, sqrt\\] triples"):
        QuantizedRows.load(tmp_path, "joint", [["a"]])


def test_segments_follow_the_encoder_fields_when_they_tile_the_row():
    assert segments_of({"pooled": (0, 6), "probs": (6, 10)}, 10) == SEGMENTS
    assert segments_of({"pooled": (0, 19)}, 19) == (Segment(0, 19),)
    assert segments_of({"pooled": (0, 6)}, 10) == (Segment(0, 10),)  # a gap: one scale for the row
    assert segments_of({"a": (0, 6), "b": (4, 10)}, 10) == (Segment(0, 10),)  # an overlap


@pytest.mark.parametrize("d", [10, 9])
def test_4_bit_codes_pack_two_a_byte_and_round_trip_within_half_a_step(tmp_path, d):
    rows = _rows()[:, :d]
    segments = (Segment(0, 6), Segment(6, d, sqrt=True))
    quantized = QuantizedRows.encode(rows, RowCodec(segments, bits=4))
    assert quantized.codes.dtype == np.uint8 and quantized.codes.shape == (40, (d + 1) // 2)
    assert quantized.shape == (40, d) and quantized.nbytes == 40 * ((d + 1) // 2) + 40 * 2 * 4
    decoded = np.asarray(quantized)
    step = np.abs(rows[:, :6]).max(axis=1, keepdims=True) / 7
    assert np.all(np.abs(decoded[:, :6] - rows[:, :6]) <= step / 2 + 1e-6)
    again = QuantizedRows.encode(quantized, quantized.codec)
    np.testing.assert_array_equal(again.codes, quantized.codes)
    quantized.save(tmp_path, "joint")
    loaded = QuantizedRows.load(tmp_path, "joint", quantized.codec.to_json(), bits=4)
    np.testing.assert_array_equal(loaded[[3, 1]], decoded[[3, 1]])
    with pytest.raises(ValueError, match="expected a 2-d int8 array, found uint8"):
        QuantizedRows.load(tmp_path, "joint", quantized.codec.to_json(), bits=8)


def test_only_8_or_4_bit_codes():
    with pytest.raises(ValueError, match="codes of 3 bits"):
        RowCodec(SEGMENTS, bits=3)


def test_storage_codec_keeps_the_codec_of_reused_rows_or_refits_over_its_segments():
    rows = _rows()
    kept = RowCodec.fit(rows, SEGMENTS, bits=4)
    assert storage_codec(rows, None, kept) is None  # stored as floats
    assert storage_codec(rows, 4, kept, (Segment(0, 10),)) is kept  # reused rows keep their codes
    refit = storage_codec(rows, 8, kept)
    assert (refit.bits, refit.segments) == (8, SEGMENTS)  # new bits over the kept codec's segments
    np.testing.assert_array_equal(refit.columns, RowCodec.fit(rows, SEGMENTS).columns)
    assert storage_codec(rows, 8, kept, (Segment(0, 10),)).segments == SEGMENTS  # the stored layout wins
    assert storage_codec(rows, 8, None, SEGMENTS).segments == SEGMENTS
    assert storage_codec(rows, 8).segments == (Segment(0, 10),)
    assert codec_of(QuantizedRows.encode(rows, kept)) is kept and codec_of(rows) is None
