"""Synthetic training data for model tests: texts are a noisy linear image of the pictures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from picsearch.models.layout import ImageLayout
from picsearch.models.trainset import TrainingSet

POOLED, CLASSES, TEXT_DIM = 16, 10, 8
LAYOUT = ImageLayout((0, POOLED), (POOLED, POOLED + CLASSES))


def image_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    pooled = rng.normal(size=(n, POOLED))
    logits = pooled[:, :CLASSES] * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.hstack([pooled, probs]).astype(np.float32)


def synthetic_training_set(n_images: int = 60, captions_per_image: int = 6, seed: int = 0) -> TrainingSet:
    """Each image has one own caption (a positive) and is paired with others; target = how alike they are."""
    rng = np.random.default_rng(seed)
    images = image_vectors(n_images, rng)
    mixing = rng.normal(size=(POOLED, TEXT_DIM))
    texts = images[:, :POOLED] @ mixing + 0.3 * rng.normal(size=(n_images, TEXT_DIM))
    texts = (texts / np.linalg.norm(texts, axis=1, keepdims=True)).astype(np.float32)
    names = [f"img{i}.jpg" for i in range(n_images)]
    qids = [f"img{i}.jpg#0" for i in range(n_images)]
    rows = []
    for i in range(n_images):
        for j in [i, *rng.choice(n_images, captions_per_image - 1, replace=False)]:
            agreement = float(np.dot(texts[i], texts[j]))
            rows.append((names[i], qids[j], float(np.clip((agreement + 1) / 2, 0, 1) ** 2)))
    pairs = pd.DataFrame(rows, columns=["image", "query_id", "exp_mean_score"]).drop_duplicates(["image", "query_id"])
    pairs["true_frac"] = np.where(np.arange(len(pairs)) % 2 == 0, pairs["exp_mean_score"].round(1), np.nan)
    pairs["target"], pairs["weight"], pairs["expert"] = pairs["exp_mean_score"], 1.0, True
    pairs = pairs.reset_index(drop=True)
    positives = pd.DataFrame({"image": names, "query_id": qids})
    return TrainingSet(
        images, {n: i for i, n in enumerate(names)}, texts, {q: i for i, q in enumerate(qids)}, LAYOUT,
        pairs, positives, pairs,
    )


def expert_table(data: TrainingSet) -> pd.DataFrame:
    """An ExpertAnnotations-shaped table whose mean score equals the synthetic ``exp_mean_score``."""
    score = 1 + 3 * data.evaluation["exp_mean_score"].to_numpy()
    low, high = np.floor(score).astype(int), np.ceil(score).astype(int)
    return pd.DataFrame(
        {"image": data.evaluation["image"], "query_id": data.evaluation["query_id"],
         "first_exp": low, "second_exp": high, "third_exp": np.round(score).astype(int)},
        index=data.evaluation.index,
    )
