from pathlib import Path

import numpy as np

from picsearch.data import load_dataset
from picsearch.features import DatasetFeatures
from picsearch.models.layout import ImageLayout
from picsearch.models.trainset import build_training_set
from tiny_dataset import write_tiny_dataset


def test_positives_add_high_expert_pairs_but_never_child_content(tmp_path: Path) -> None:
    dataset = load_dataset(write_tiny_dataset(tmp_path / "data"))
    expert = dataset.expert
    for image, query_id, scores in [
        ("a.jpg", "c.jpg#0", (3, 3, 2)),  # mean 0.56 of the 0-1 scale: a positive
        ("c.jpg", "a.jpg#0", (2, 2, 3)),  # 0.44: not one
        # experts confirm a caption about a child for d.jpg: d.jpg is then a child photo, never trained on
        ("d.jpg", "b.jpg#0", (4, 4, 4)),
    ]:
        row = (expert["image"] == image) & (expert["query_id"] == query_id)
        expert.loc[row, ["first_exp", "second_exp", "third_exp"]] = scores
    images, texts = sorted(set(expert["image"])), sorted(set(expert["query_id"]))
    rng = np.random.default_rng(0)
    feats = DatasetFeatures(
        "random-image", "random-text", {}, rng.normal(size=(len(images), 6)).astype(np.float32),
        {n: i for i, n in enumerate(images)}, rng.normal(size=(len(texts), 4)).astype(np.float32),
        {q: i for i, q in enumerate(texts)},
    )
    data = build_training_set(dataset, feats, ImageLayout((0, 6)))
    positives = set(zip(data.positives["image"], data.positives["query_id"]))
    assert ("a.jpg", "c.jpg#0") in positives and ("c.jpg", "a.jpg#0") not in positives
    assert not {pair for pair in positives if {"b.jpg", "b.jpg#0", "d.jpg"} & set(pair)}
    assert not {pair for pair in zip(data.pairs["image"], data.pairs["query_id"]) if "d.jpg" in pair}
