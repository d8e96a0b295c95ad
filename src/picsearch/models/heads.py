"""Relevance models: (image vectors, text vectors) -> score in [0, 1], fitted on a :class:`TrainingSet`.

Baselines see the concatenated vectors (Ridge, PyTorch MLP, LightGBM); :class:`MatchingHead` sees only
interaction features — the similarities of matching models — so its score always depends on the picture.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import lightgbm as lgb
import numpy as np
import torch

from picsearch.models.base import Exported, Standardizer, nest, ridge_solve, rowwise_cosine, unnest
from picsearch.models.matching import ImageLayout, Matcher, restore_matcher
from picsearch.models.splits import grouped_folds
from picsearch.models.trainset import TrainingSet


class RelevanceModel(Protocol):
    """Scores aligned rows of image and text vectors."""

    kind: str

    def fit(self, data: TrainingSet) -> RelevanceModel: ...
    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray: ...
    def export(self) -> Exported: ...


def _concat(layout: ImageLayout, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
    return np.hstack([layout.inputs(image_feats), np.asarray(text_feats, np.float32)])


def _train_rows(data: TrainingSet) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    images, texts = data.pair_feats(data.pairs)
    return images, texts, data.pairs["target"].to_numpy(np.float32), data.pairs["weight"].to_numpy(np.float32)


class ConcatRidge:
    """The original study's baseline: ridge regression on standardized [image | text], clipped to [0, 1]."""

    kind = "concat_ridge"

    def __init__(self, layout: ImageLayout, alpha: float = 3000.0) -> None:
        self.layout, self.alpha = layout, alpha

    def fit(self, data: TrainingSet) -> ConcatRidge:
        images, texts, y, w = _train_rows(data)
        x = _concat(self.layout, images, texts)
        self.scaler = Standardizer().fit(x)
        root_w = np.sqrt(w / w.mean())[:, None]
        self.bias = float(np.average(y, weights=w))
        self.weights = ridge_solve(self.scaler.transform(x) * root_w, (y - self.bias)[:, None] * root_w, self.alpha)
        return self

    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        x = self.scaler.transform(_concat(self.layout, image_feats, text_feats))
        return np.clip(x @ self.weights[:, 0] + self.bias, 0.0, 1.0)

    def export(self) -> Exported:
        params = {"kind": self.kind, "layout": self.layout.to_json(), "alpha": self.alpha, "bias": self.bias}
        return Exported(params, {"weights": self.weights, **self.scaler.export("x_")})

    @classmethod
    def restore(cls, exported: Exported) -> ConcatRidge:
        model = cls(ImageLayout.from_json(exported.params["layout"]), exported.params["alpha"])
        model.bias, model.weights = exported.params["bias"], exported.arrays["weights"]
        model.scaler = Standardizer.restore(exported.arrays, "x_")
        return model


class ConcatMLP:
    """PyTorch MLP on standardized [image | text]: one hidden ReLU layer, sigmoid output, weighted MSE."""

    kind = "concat_mlp"

    def __init__(
        self, layout: ImageLayout, hidden: int = 128, epochs: int = 30, lr: float = 1e-3,
        weight_decay: float = 1e-2, dropout: float = 0.5, seed: int = 0,
    ) -> None:
        self.layout = layout
        self.hparams = dict(hidden=hidden, epochs=epochs, lr=lr, weight_decay=weight_decay, dropout=dropout, seed=seed)

    def fit(self, data: TrainingSet) -> ConcatMLP:
        hp = self.hparams
        images, texts, y, w = _train_rows(data)
        x = _concat(self.layout, images, texts)
        self.scaler = Standardizer().fit(x)
        torch.manual_seed(hp["seed"])
        generator = torch.Generator().manual_seed(hp["seed"])
        net = torch.nn.Sequential(
            torch.nn.Dropout(hp["dropout"]), torch.nn.Linear(x.shape[1], hp["hidden"]), torch.nn.ReLU(),
            torch.nn.Linear(hp["hidden"], 1),
        )
        inputs, targets = torch.from_numpy(self.scaler.transform(x)), torch.from_numpy(y)
        weights = torch.from_numpy(w / w.mean())
        optimizer = torch.optim.AdamW(net.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        for _ in range(hp["epochs"]):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(inputs), 128):
                batch = order[start : start + 128]
                out = torch.sigmoid(net(inputs[batch])[:, 0])
                loss = (weights[batch] * (out - targets[batch]) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self.layers = {name: p.detach().numpy().copy() for name, p in net.state_dict().items()}
        return self

    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        x = self.scaler.transform(_concat(self.layout, image_feats, text_feats))
        hidden = np.maximum(x @ self.layers["1.weight"].T + self.layers["1.bias"], 0.0)
        logits = hidden @ self.layers["3.weight"][0] + self.layers["3.bias"][0]
        return 1.0 / (1.0 + np.exp(-logits))

    def export(self) -> Exported:
        arrays = {**self.layers, **self.scaler.export("x_")}
        return Exported({"kind": self.kind, "layout": self.layout.to_json(), **self.hparams}, arrays)

    @classmethod
    def restore(cls, exported: Exported) -> ConcatMLP:
        params = {k: v for k, v in exported.params.items() if k not in ("kind", "layout")}
        model = cls(ImageLayout.from_json(exported.params["layout"]), **params)
        model.layers = {k: v for k, v in exported.arrays.items() if not k.startswith("x_")}
        model.scaler = Standardizer.restore(exported.arrays, "x_")
        return model


LGBM_PARAMS: dict[str, Any] = {
    "objective": "cross_entropy",  # targets in [0, 1], predictions through a sigmoid
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "n_jobs": 1,  # OpenMP threads spin on a busy shared machine: one is many times faster than two here
    "verbose": -1,
    "random_state": 0,
}


def fit_lgbm(x: np.ndarray, y: np.ndarray, w: np.ndarray, n_estimators: int, **overrides: Any) -> lgb.Booster:
    """A LightGBM booster with :data:`LGBM_PARAMS` (cross-entropy on [0, 1] targets)."""
    model = lgb.LGBMRegressor(n_estimators=n_estimators, **{**LGBM_PARAMS, **overrides})
    return model.fit(x, y, sample_weight=w).booster_


class ConcatLGBM:
    """LightGBM on [image | text]."""

    kind = "concat_lgbm"

    def __init__(self, layout: ImageLayout, n_estimators: int = 300, colsample_bytree: float = 0.2) -> None:
        self.layout, self.n_estimators, self.colsample_bytree = layout, n_estimators, colsample_bytree

    def fit(self, data: TrainingSet) -> ConcatLGBM:
        images, texts, y, w = _train_rows(data)
        x = _concat(self.layout, images, texts)
        self.booster = fit_lgbm(x, y, w, self.n_estimators, colsample_bytree=self.colsample_bytree, max_bin=63)
        return self

    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        return self.booster.predict(_concat(self.layout, image_feats, text_feats), num_threads=1)

    def export(self) -> Exported:
        params = {
            "kind": self.kind, "layout": self.layout.to_json(), "n_estimators": self.n_estimators,
            "colsample_bytree": self.colsample_bytree,
        }
        return Exported(params, texts={"booster": self.booster.model_to_string()})

    @classmethod
    def restore(cls, exported: Exported) -> ConcatLGBM:
        p = exported.params
        model = cls(ImageLayout.from_json(p["layout"]), p["n_estimators"], p["colsample_bytree"])
        model.booster = lgb.Booster(model_str=exported.texts["booster"])
        return model


MatcherFactory = Callable[[], Matcher]


QUERY_REFERENCE_KS: tuple[int | None, ...] = (1, 10, None)
"""Yardsticks of a query's relative similarity: its mean similarity to its closest training image, to its 10
closest, and to all of them (``None``). Together they tell a query with one good match from a generic one."""


def top_k_mean(similarities: np.ndarray, k: int | None) -> np.ndarray:
    """Row-wise mean of the ``k`` largest values (all of them when ``k`` is None or a row has fewer)."""
    k = similarities.shape[1] if k is None else min(k, similarities.shape[1])
    return np.mean(-np.partition(-similarities, k - 1, axis=1)[:, :k], axis=1)


class MatchingHead:
    """LightGBM on features of each matching model: the similarity of image and text, and the same minus each
    yardstick of :data:`QUERY_REFERENCE_KS` (the mean similarity of the text to its k closest training images).

    Raw cosines are not comparable across queries (a generic caption is close to every picture); the relative
    similarities say how this image stands against the best the training set offers for this caption, and
    against its average.

    The head's training features are out-of-fold: each inner fold's matchers are fitted on the positive pairs of
    the other images only, so the head learns how similarities of *unseen* images relate to the scores. Then the
    matchers are refitted on all positives of the training images.
    """

    kind = "matching_head"

    def __init__(
        self, matchers: dict[str, MatcherFactory], inner_folds: int = 3, n_estimators: int = 300, seed: int = 0,
        reference_ks: tuple[int | None, ...] = QUERY_REFERENCE_KS,
    ) -> None:
        self.factories, self.inner_folds, self.n_estimators, self.seed = matchers, inner_folds, n_estimators, seed
        self.reference_ks = tuple(reference_ks)

    def fit(self, data: TrainingSet) -> MatchingHead:
        pairs = data.pairs
        features = np.zeros((len(pairs), (1 + len(self.reference_ks)) * len(self.factories)), dtype=np.float32)
        for train_rows, test_rows in grouped_folds(pairs["image"], self.inner_folds, self.seed):
            inner = data.restrict(set(pairs["image"].iloc[train_rows]))
            matchers, references = self._fit_matchers(inner)
            features[test_rows] = self._features(matchers, references, *data.pair_feats(pairs.iloc[test_rows]))
        y, w = pairs["target"].to_numpy(np.float32), pairs["weight"].to_numpy(np.float32)
        # Every feature grows with the similarity: monotone increasing keeps the score's order within a query sane.
        monotone = [1] * features.shape[1]
        self.booster = fit_lgbm(features, y, w, self.n_estimators, colsample_bytree=1.0, monotone_constraints=monotone)
        self.matchers, self.references = self._fit_matchers(data)
        return self

    def _fit_matchers(self, data: TrainingSet) -> tuple[dict[str, Matcher], dict[str, np.ndarray]]:
        """Matchers fitted on the positives, and the positives' images in each matcher's space."""
        images, texts = data.positive_feats()
        matchers = {name: make().fit(images, texts) for name, make in self.factories.items()}
        reference = data.images(data.positives["image"].unique())
        return matchers, {name: matcher.embed_image(reference) for name, matcher in matchers.items()}

    def _features(
        self, matchers: dict[str, Matcher], references: dict[str, np.ndarray], image_feats: np.ndarray,
        text_feats: np.ndarray,
    ) -> np.ndarray:
        # Rows repeat queries (a search scores one query against many images): embed each distinct one once.
        queries, query_of_row = np.unique(text_feats, axis=0, return_inverse=True)
        query_of_row = query_of_row.ravel()
        columns = []
        for name, matcher in matchers.items():
            texts = matcher.embed_text(queries)
            sims = rowwise_cosine(matcher.embed_image(image_feats), texts[query_of_row])
            to_references = texts @ references[name].T
            columns.append(sims)
            columns += [sims - top_k_mean(to_references, k)[query_of_row] for k in self.reference_ks]
        return np.column_stack(columns)

    def features(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        """The head's input: per matcher, the similarity, then the similarity relative to each yardstick."""
        return self._features(self.matchers, self.references, image_feats, text_feats)

    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        return self.booster.predict(self.features(image_feats, text_feats), num_threads=1)

    def export(self) -> Exported:
        parts = {name: matcher.export() for name, matcher in self.matchers.items()}
        params = {
            "kind": self.kind, "inner_folds": self.inner_folds, "n_estimators": self.n_estimators, "seed": self.seed,
            "reference_ks": list(self.reference_ks),
        }
        exported = nest(parts, params)
        exported.texts["booster"] = self.booster.model_to_string()
        exported.arrays.update({f"references/{name}": value for name, value in self.references.items()})
        return exported

    @classmethod
    def restore(cls, exported: Exported) -> MatchingHead:
        p = exported.params
        matchers = {name: restore_matcher(part) for name, part in unnest(exported).items()}
        model = cls({}, p["inner_folds"], p["n_estimators"], p["seed"], tuple(p["reference_ks"]))
        model.matchers, model.booster = matchers, lgb.Booster(model_str=exported.texts["booster"])
        model.references = {name: exported.arrays[f"references/{name}"] for name in matchers}
        return model


MODEL_KINDS = {cls.kind: cls for cls in (ConcatRidge, ConcatMLP, ConcatLGBM, MatchingHead)}


def restore_model(exported: Exported) -> RelevanceModel:
    """Rebuild a relevance model from :meth:`export` output."""
    return MODEL_KINDS[exported.params["kind"]].restore(exported)
