"""models.vectors: the row-wise arithmetic the matchers and heads share."""

from __future__ import annotations

import numpy as np

from picsearch.models.vectors import rowwise_cosine, unique_rows


def test_unique_rows_finds_np_unique_rows_in_order_of_first_appearance() -> None:
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(7, 5)).astype(np.float32)
    picks = rng.integers(0, 7, 40)
    vectors = distinct[picks]
    unique, inverse = unique_rows(vectors)
    np.testing.assert_array_equal(unique[inverse], vectors)
    np.testing.assert_array_equal(np.unique(unique, axis=0), np.unique(vectors, axis=0))
    first_seen = list(dict.fromkeys(picks.tolist()))
    np.testing.assert_array_equal(unique, distinct[first_seen])
    assert inverse.dtype == np.int64 and inverse.shape == (40,)


def test_unique_rows_tells_apart_rows_that_differ_in_one_bit() -> None:
    row = np.ones((1, 300), dtype=np.float32)
    nudged = row.copy()
    nudged[0, 299] = np.nextafter(np.float32(1), np.float32(2))
    unique, inverse = unique_rows(np.concatenate([row, nudged, row]))
    assert len(unique) == 2 and inverse.tolist() == [0, 1, 0]


def test_unique_rows_reads_non_contiguous_input() -> None:
    vectors = np.arange(24, dtype=np.float64).reshape(6, 4)[:, ::2]
    vectors[3] = vectors[0]
    unique, inverse = unique_rows(vectors)
    np.testing.assert_array_equal(unique[inverse], vectors)
    assert len(unique) == 5


def test_rowwise_cosine_with_indices_equals_the_cosine_of_the_repeated_rows() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 6)) * 3, rng.normal(size=(3, 6))
    a_rows, b_rows = np.array([0, 3, 3, 1, 2]), np.array([2, 2, 0, 1, 1])
    expected = rowwise_cosine(a[a_rows], b[b_rows])
    np.testing.assert_allclose(rowwise_cosine(a, b, a_rows, b_rows), expected, rtol=1e-6)
    np.testing.assert_allclose(
        expected, [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a[a_rows], b[b_rows])], rtol=1e-5
    )
