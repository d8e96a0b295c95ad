"""Baselines on the concatenated [image | text] vectors: ridge (the original study's), PyTorch MLP, LightGBM.

Hyperparameters are ``__init__`` arguments (scikit-learn's ``get_params``), fitted attributes end in ``_``.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator

from picsearch.models.export import Exported
from picsearch.models.layout import ImageLayout, params_from_json, params_to_json
from picsearch.models.lgbm import fit_lgbm
from picsearch.models.linear import fit_ridge, fit_scaler, restore_scaler, scale, scaler_arrays
from picsearch.models.nn import SeededDropout, adamw, seeded_linear
from picsearch.models.trainset import TrainingSet


def _concat(layout: ImageLayout, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
    """The baselines' input: the image's model inputs beside the text vector."""
    return np.hstack([layout.inputs(image_feats), np.asarray(text_feats, np.float32)])


def _train_rows(data: TrainingSet) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Image vectors, text vectors, targets and weights of the training pairs."""
    images, texts = data.pair_feats(data.pairs)
    return images, texts, data.pairs["target"].to_numpy(np.float32), data.pairs["weight"].to_numpy(np.float32)


class ConcatRidge(BaseEstimator):
    """The original study's baseline: ridge regression on standardized [image | text], clipped to [0, 1]."""

    kind = "concat_ridge"

    def __init__(self, layout: ImageLayout, alpha: float = 3000.0) -> None:
        self.layout, self.alpha = layout, alpha

    def fit(self, data: TrainingSet) -> ConcatRidge:
        images, texts, y, w = _train_rows(data)
        x = _concat(self.layout, images, texts)
        self.scaler_ = fit_scaler(x)
        ridge = fit_ridge(scale(self.scaler_, x), y, self.alpha, sample_weight=w / w.mean())
        self.coef_, self.intercept_ = ridge.coef_.astype(np.float32), float(ridge.intercept_)
        return self

    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        x = scale(self.scaler_, _concat(self.layout, image_feats, text_feats))
        return np.clip(x @ self.coef_ + self.intercept_, 0.0, 1.0)

    def export(self) -> Exported:
        params = {"kind": self.kind, **params_to_json(self.get_params()), "bias": self.intercept_}
        return Exported(params, {"weights": self.coef_[:, None], **scaler_arrays(self.scaler_, "x_")})

    @classmethod
    def restore(cls, exported: Exported) -> ConcatRidge:
        model = cls(**params_from_json(exported.params, "bias"))
        model.intercept_, model.coef_ = exported.params["bias"], exported.arrays["weights"][:, 0]
        model.scaler_ = restore_scaler(exported.arrays, "x_")
        return model


class ConcatMLP(BaseEstimator):
    """PyTorch MLP on standardized [image | text]: one hidden ReLU layer, sigmoid output, weighted MSE."""

    kind = "concat_mlp"

    def __init__(
        self, layout: ImageLayout, hidden: int = 128, epochs: int = 30, lr: float = 1e-3,
        weight_decay: float = 1e-2, dropout: float = 0.5, seed: int = 0,
    ) -> None:
        self.layout, self.hidden, self.epochs, self.lr = layout, hidden, epochs, lr
        self.weight_decay, self.dropout, self.seed = weight_decay, dropout, seed

    def fit(self, data: TrainingSet) -> ConcatMLP:
        images, texts, y, w = _train_rows(data)
        x = _concat(self.layout, images, texts)
        self.scaler_ = fit_scaler(x)
        generator = torch.Generator().manual_seed(self.seed)
        net = torch.nn.Sequential(
            SeededDropout(self.dropout, self.seed), seeded_linear(x.shape[1], self.hidden, generator), torch.nn.ReLU(),
            seeded_linear(self.hidden, 1, generator),
        )
        inputs, targets = torch.from_numpy(scale(self.scaler_, x)), torch.from_numpy(y)
        weights = torch.from_numpy(w / w.mean())
        optimizer = adamw(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        for _ in range(self.epochs):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(inputs), 128):
                batch = order[start : start + 128]
                out = torch.sigmoid(net(inputs[batch])[:, 0])
                loss = (weights[batch] * (out - targets[batch]) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self.layers_ = {name: p.detach().numpy().copy() for name, p in net.state_dict().items()}
        return self

    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        x = scale(self.scaler_, _concat(self.layout, image_feats, text_feats))
        hidden = np.maximum(x @ self.layers_["1.weight"].T + self.layers_["1.bias"], 0.0)
        logits = hidden @ self.layers_["3.weight"][0] + self.layers_["3.bias"][0]
        return expit(logits)

    def export(self) -> Exported:
        arrays = {**self.layers_, **scaler_arrays(self.scaler_, "x_")}
        return Exported({"kind": self.kind, **params_to_json(self.get_params())}, arrays)

    @classmethod
    def restore(cls, exported: Exported) -> ConcatMLP:
        model = cls(**params_from_json(exported.params))
        model.layers_ = {k: v for k, v in exported.arrays.items() if not k.startswith("x_")}
        model.scaler_ = restore_scaler(exported.arrays, "x_")
        return model


class ConcatLGBM(BaseEstimator):
    """LightGBM on [image | text]."""

    kind = "concat_lgbm"

    def __init__(self, layout: ImageLayout, n_estimators: int = 300, colsample_bytree: float = 0.2) -> None:
        self.layout, self.n_estimators, self.colsample_bytree = layout, n_estimators, colsample_bytree

    def fit(self, data: TrainingSet) -> ConcatLGBM:
        images, texts, y, w = _train_rows(data)
        x = _concat(self.layout, images, texts)
        self.booster_ = fit_lgbm(x, y, w, self.n_estimators, colsample_bytree=self.colsample_bytree, max_bin=63)
        return self

    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        return self.booster_.predict(_concat(self.layout, image_feats, text_feats), num_threads=1)

    def export(self) -> Exported:
        params = {"kind": self.kind, **params_to_json(self.get_params())}
        return Exported(params, texts={"booster": self.booster_.model_to_string()})

    @classmethod
    def restore(cls, exported: Exported) -> ConcatLGBM:
        model = cls(**params_from_json(exported.params))
        model.booster_ = lgb.Booster(model_str=exported.texts["booster"])
        return model
