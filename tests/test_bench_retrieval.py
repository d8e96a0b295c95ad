"""bench.retrieval: re-encoding only the queries' texts for the second ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd

from picsearch.bench.retrieval import requeried
from picsearch.models.trainset import TrainingSet
from synthetic_bundle import WordEncoder


def test_requeried_re_encodes_only_the_queries_texts_one_at_a_time() -> None:
    texts = {"q1": "a dog", "q2": "a red car", "q3": "snow"}
    old = np.full((3, WordEncoder.dim), 7.0, dtype=np.float32)
    data = TrainingSet(np.zeros((1, 2)), {"i": 0}, old, {"q1": 0, "q2": 1, "q3": 2}, None, *[pd.DataFrame()] * 3)
    calls: list[list[str]] = []

    class Counting(WordEncoder):
        def encode(self, batch):
            calls.append(list(batch))
            return super().encode(batch)

    new = requeried(data, texts, pd.DataFrame({"query_id": ["q3", "q1", "q3"]}), Counting())
    np.testing.assert_array_equal(new.text_feats[[0, 2]], WordEncoder().encode(["a dog", "snow"]))
    np.testing.assert_array_equal(new.text_feats[1], old[1])
    assert sorted(calls) == [["a dog"], ["snow"]] and np.all(data.text_feats == 7.0)  # the original is untouched
