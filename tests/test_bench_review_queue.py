"""The review-queue benchmark's cost: photos looked at until a share of the harmless ones is restored."""

from __future__ import annotations

import numpy as np

from picsearch.bench.review_queue import order_costs, restore_cost


def test_restore_cost_walks_until_enough_harmless_photos_are_restored():
    # harmless at positions 0, 2, 3, 5, 6 (5 of them): 90% -> 5 restored, the last at position 6
    queue = np.array([False, True, False, False, True, False, False, True])
    cost = restore_cost(queue, 0.9)
    assert cost == {"flagged": 8, "harmless": 5, "restored": 5, "looked": 7, "child_seen": 2, "per_restored": 1.4}
    assert restore_cost(queue, 0.6)["looked"] == 4  # 3 restored at position 3


def test_grouping_moves_a_duplicate_forward():
    probability = np.array([0.1, 0.5, 0.9])
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01]])  # the last duplicates the first
    child = np.array([False, True, False])
    costs = order_costs(probability, features, child, 1.0)
    assert costs["probability"]["looked"] == 3 and costs["grouped at 0.95"]["looked"] == 2
    assert costs["grouped at 0.95"]["groups"] == 2


def test_a_second_stage_that_sees_what_the_probability_missed_shortens_the_queue():
    """The first stage's probability is noise among these flagged photos; the features tell child from harmless,
    so a detector learnt on the flagged photos alone, out of fold, puts the harmless ones first."""
    from picsearch.bench.review_queue import SEEDS, second_stage_costs
    from picsearch.models.child import C_GRID
    from picsearch.models.layout import ImageLayout

    rng = np.random.default_rng(0)
    child = np.arange(120) % 2 == 0
    features = rng.normal(size=(120, 8)) + 1.5 * child[:, None]
    probability = rng.uniform(size=120)
    baseline = order_costs(probability, features, child, 0.9)["probability"]["per_restored"]
    costs = second_stage_costs(ImageLayout((0, 8)), probability, features, child, 0.9)
    assert set(costs) == {f"C {c:g}{suffix}" for c in C_GRID for suffix in ("", ", rank mean")}
    assert all(len(values) == len(SEEDS) for values in costs.values())
    assert baseline > 1.5 and max(np.mean(costs[f"C {c:g}"]) for c in C_GRID) < 1.15
