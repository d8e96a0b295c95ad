"""Targets and yardsticks, on hand-computed examples and on the real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from picsearch import labels, metrics
from picsearch.data import load_dataset


def _expert(rows: list[tuple[str, str, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["image", "query_id", "first_exp", "second_exp", "third_exp"])


EXPERT = _expert(
    [
        ("a.jpg", "x.jpg#0", 1, 1, 1),
        ("b.jpg", "x.jpg#0", 4, 4, 4),
        ("c.jpg", "x.jpg#1", 1, 2, 4),
        ("d.jpg", "x.jpg#1", 2, 2, 3),
        ("e.jpg", "x.jpg#2", 3, 1, 3),  # mean 7/3, like (1, 2, 4) and (2, 2, 3)
    ]
)


def test_exp_mean_score() -> None:
    assert labels.exp_mean_score(EXPERT).tolist() == pytest.approx([0, 1, 4 / 9, 4 / 9, 4 / 9])


def test_majority_vote_drops_three_way_disagreement() -> None:
    vote = labels.majority_vote(EXPERT).tolist()
    assert vote[:2] == [0, 1] and math.isnan(vote[2])
    assert vote[3:] == pytest.approx([1 / 3, 2 / 3])


def test_agreement() -> None:
    stats = labels.agreement(EXPERT)
    assert stats["range"].tolist() == [0, 0, 3, 1, 2]
    assert stats["unanimous"].tolist() == [True, True, False, False, False]
    assert stats["std"].iloc[2] == pytest.approx(math.sqrt(14 / 9))  # (1, 2, 4): mean 7/3


def test_combined_target_blends_where_the_crowd_rated() -> None:
    crowd = pd.DataFrame(
        {
            "image": ["a.jpg", "c.jpg", "z.jpg"],  # z.jpg: a pair the experts did not rate
            "query_id": ["x.jpg#0", "x.jpg#1", "x.jpg#0"],
            "true_frac": [0.5, 1.0, 1.0],
        }
    )
    target = labels.combined_target(EXPERT, crowd, crowd_weight=0.25)
    assert target["image"].tolist() == EXPERT["image"].tolist()
    assert target["has_crowd"].tolist() == [True, False, True, False, False]
    assert target["target"].tolist() == pytest.approx([0.125, 1, 0.75 * 4 / 9 + 0.25, 4 / 9, 4 / 9])
    only_crowd = labels.combined_target(EXPERT, crowd, crowd_weight=1.0)["target"]
    assert only_crowd.tolist() == pytest.approx([0.5, 1, 1.0, 4 / 9, 4 / 9])


PROTOCOL = _expert(
    [
        ("a.jpg", "x.jpg#0", 1, 1, 2),
        ("own.jpg", "own.jpg#3", 4, 4, 4),  # caption written for this image: dropped
        ("b.jpg", "x.jpg#0", 3, 4, 4),
        ("c.jpg", "y.jpg#1", 2, 2, 2),
    ]
)


def test_expert_protocol_rows_drop_own_captions_and_repeat_per_expert() -> None:
    rows = labels.expert_protocol_rows(PROTOCOL)
    assert rows["pair_index"].tolist() == [0, 0, 0, 2, 2, 2, 3, 3, 3]
    assert rows["expert_score"].tolist() == [1, 1, 2, 3, 4, 4, 2, 2, 2]
    assert set(rows["image"]) == {"a.jpg", "b.jpg", "c.jpg"}


def test_kendall_tau_c_expert_by_hand() -> None:
    # Rows (prediction, expert): a: 0.2 x {1,1,2}; b: 0.5 x {3,4,4}; c: 0.8 x {2,2,2}.
    # Concordant: a-b 9, a-c 6 (1<2; 2=2 ties); discordant: b-c 9. n=9, m=min(3, 4)=3.
    # tau_c = 2 (15 - 9) / (81 * 2 / 3) = 2/9. The dropped own-caption pair must not count.
    predicted = np.array([0.2, 0.0, 0.5, 0.8])
    assert metrics.kendall_tau_c_expert(PROTOCOL, predicted) == pytest.approx(2 / 9)


def test_kendall_tau_b_crowd_by_hand() -> None:
    # 6 pairs, one tie in true_frac, all others concordant: 5 / sqrt(6 * 5).
    tau = metrics.kendall_tau_b_crowd(np.array([0, 1 / 3, 1 / 3, 1]), np.array([0.1, 0.2, 0.3, 0.4]))
    assert tau == pytest.approx(5 / math.sqrt(30))


@pytest.mark.data
def test_real_expert_protocol(real_data: Path) -> None:
    expert = load_dataset(real_data).expert
    rows = labels.expert_protocol_rows(expert)
    assert len(expert) == 5822
    assert rows["pair_index"].nunique() == 5664
    assert len(rows) == 16992
    perfect = labels.exp_mean_score(expert).to_numpy()
    assert 0.5 < metrics.kendall_tau_c_expert(expert, perfect) <= 1
