"""The matching head: LightGBM on the similarities of matching models, so its score always depends on the picture."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Iterator

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from picsearch.models.export import Exported, nest, unnest
from picsearch.models.lgbm import fit_lgbm
from picsearch.models.matching import (
    Matcher, MatcherFactory, MatcherMemo, embed_images, fit_matchers, restore_matcher,
)
from picsearch.models.splits import grouped_folds
from picsearch.models.trainset import TrainingSet
from picsearch.models.vectors import rowwise_cosine, top_k_mean, unique_rows

QUERY_REFERENCE_KS: tuple[int | None, ...] = (1, 10, None)
"""Yardsticks of a query's relative similarity: its mean similarity to its closest training image, to its 10
closest, and to all of them (``None``). Together they tell a query with one good match from a generic one."""


class MatchingHead(BaseEstimator):
    """LightGBM on features of each matching model: the similarity of image and text, and the same minus each
    yardstick of :data:`QUERY_REFERENCE_KS` (the mean similarity of the text to its k closest training images).

    Raw cosines are not comparable across queries (a generic caption is close to every picture); the relative
    similarities say how this image stands against the best the training set offers for this caption, and
    against its average.

    The head's training features are out-of-fold: each inner fold's matchers are fitted on the positive pairs of
    the other images only, so the head learns how similarities of *unseen* images relate to the scores. Then the
    matchers are refitted on all positives of the training images. ``matchers`` are factories; the fitted ones are
    ``matchers_``. Heads given one ``memo`` fit each distinct set of positives once (see :class:`MatcherMemo`).
    """

    kind = "matching_head"

    def __init__(
        self, matchers: dict[str, MatcherFactory], inner_folds: int = 3, n_estimators: int = 300, seed: int = 0,
        reference_ks: tuple[int | None, ...] = QUERY_REFERENCE_KS, memo: MatcherMemo | None = None,
    ) -> None:
        self.matchers, self.inner_folds, self.n_estimators, self.seed = matchers, inner_folds, n_estimators, seed
        self.reference_ks, self.memo = tuple(reference_ks), memo

    def fit(self, data: TrainingSet) -> MatchingHead:
        self.booster_ = self._fit_booster(data, data.text_feats)
        self.matchers_, self.references_ = self._fit_matchers(data)
        return self

    def with_booster_for(self, data: TrainingSet, text_feats: np.ndarray) -> MatchingHead:
        """A copy of this head, fitted on ``data``, with the same matchers and a booster learnt from the pairs'
        texts read from ``text_feats`` (rows as ``data.text_feats``) instead: for texts that reach the head
        another way, such as a multilingual encoder's vectors mapped into the text encoder's space."""
        return self.with_booster(self._fit_booster(data, text_feats))

    def with_booster(self, booster: lgb.Booster) -> MatchingHead:
        """A copy of this fitted head that shares its matchers and scores with ``booster``."""
        head = copy.copy(self)
        head.booster_ = booster
        return head

    def _fit_booster(self, data: TrainingSet, text_feats: np.ndarray) -> lgb.Booster:
        """LightGBM on the out-of-fold features of ``data``'s pairs (matchers fitted on ``data``'s positives),
        their texts read from ``text_feats``."""
        pairs, texts = data.pairs, replace(data, text_feats=text_feats)
        features = np.zeros((len(pairs), (1 + len(self.reference_ks)) * len(self.matchers)), dtype=np.float32)
        for held_out, matchers, references in self.inner_matchers(data):
            test_rows = pairs["image"].isin(held_out).to_numpy()
            features[test_rows] = self._pair_features(matchers, references, texts, pairs[test_rows])
        y, w = pairs["target"].to_numpy(np.float32), pairs["weight"].to_numpy(np.float32)
        # Every feature grows with the similarity: monotone increasing keeps the score's order within a query sane.
        monotone = [1] * features.shape[1]
        return fit_lgbm(features, y, w, self.n_estimators, colsample_bytree=1.0, monotone_constraints=monotone)

    def inner_matchers(self, data: TrainingSet) -> Iterator[tuple[set[str], dict[str, Matcher], dict[str, np.ndarray]]]:
        """Per inner fold of :meth:`fit` on ``data``: its held-out images, and the matchers and references fitted
        without them (through the memo: after :meth:`fit` on the same data, no fit repeats)."""
        # Inner folds over the images, not the rows, and over every image the final matchers see (scored pairs or
        # positives): then extra crowd rows leave the folds, and so the matchers' inputs, unchanged.
        images = np.unique(np.concatenate([data.pairs["image"].to_numpy(str), data.positives["image"].to_numpy(str)]))
        for train_images, test_images in grouped_folds(images, self.inner_folds, self.seed):
            yield set(images[test_images]), *self._fit_matchers(data.restrict(set(images[train_images])))

    def _fit_matchers(self, data: TrainingSet) -> tuple[dict[str, Matcher], dict[str, np.ndarray]]:
        """Matchers fitted on the positives, and the positives' images in each matcher's space."""
        fit = self.memo.fit if self.memo is not None else fit_matchers
        matchers = fit(self.matchers, *data.positive_feats())
        reference = data.images(data.positives["image"].unique())
        return matchers, embed_images(matchers, reference)

    def _features(
        self, matchers: dict[str, Matcher], references: dict[str, np.ndarray], image_feats: np.ndarray,
        text_feats: np.ndarray,
    ) -> np.ndarray:
        images = embed_images(matchers, image_feats)
        return self._embedded_features(matchers, references, images, text_feats)

    def _pair_features(
        self, matchers: dict[str, Matcher], references: dict[str, np.ndarray], data: TrainingSet, frame: pd.DataFrame
    ) -> np.ndarray:
        """:meth:`_features` of a table's (image, query_id) rows, each distinct image and text embedded once: a
        training image has many rows, and crowd rows repeat it dozens of times."""
        image_of_row, image_names = pd.factorize(frame["image"])
        query_of_row, query_ids = pd.factorize(frame["query_id"])
        image_feats = data.images(image_names)
        images = embed_images(matchers, image_feats)
        return self._cell_features(matchers, references, images, data.texts(query_ids), image_of_row, query_of_row)

    def _embedded_features(
        self, matchers: dict[str, Matcher], references: dict[str, np.ndarray], images: dict[str, np.ndarray],
        text_feats: np.ndarray,
    ) -> np.ndarray:
        # Rows repeat queries (a search scores one query against many images): embed each distinct one once.
        queries, query_of_row = unique_rows(text_feats)
        rows = np.arange(len(next(iter(images.values()))))
        return self._cell_features(matchers, references, images, queries, rows, query_of_row)

    def _cell_features(
        self, matchers: dict[str, Matcher], references: dict[str, np.ndarray], images: dict[str, np.ndarray],
        text_feats: np.ndarray, image_of_row: np.ndarray, query_of_row: np.ndarray,
    ) -> np.ndarray:
        """Features of the (``image_of_row[i]``, ``query_of_row[i]``) cells from each matcher's image embeddings
        ``images``; each text embedded once."""
        columns = []
        for name, matcher in matchers.items():
            texts = matcher.embed_text(text_feats)
            sims = rowwise_cosine(images[name], texts, image_of_row, query_of_row)
            to_references = texts @ references[name].T
            columns.append(sims)
            columns += [sims - top_k_mean(to_references, k)[query_of_row] for k in self.reference_ks]
        return np.column_stack(columns)

    def image_embeddings(self, image_feats: np.ndarray) -> dict[str, np.ndarray]:
        """Each fitted matcher's image vectors: all the head reads of an image."""
        return embed_images(self.matchers_, image_feats)

    def predict_embedded(self, images: dict[str, np.ndarray], text_feats: np.ndarray) -> np.ndarray:
        """Scores of aligned rows from :meth:`image_embeddings` output (as an index stores them) and text vectors."""
        return self.booster_.predict(
            self._embedded_features(self.matchers_, self.references_, images, text_feats), num_threads=1
        )

    def features(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        """The head's input: per matcher, the similarity, then the similarity relative to each yardstick."""
        return self._features(self.matchers_, self.references_, image_feats, text_feats)

    def predict(self, image_feats: np.ndarray, text_feats: np.ndarray) -> np.ndarray:
        return self.predict_embedded(self.image_embeddings(image_feats), text_feats)

    def predict_grid(self, image_feats: np.ndarray, text_feats: np.ndarray, chunk: int = 64) -> np.ndarray:
        """Scores of every text against every image, ``(texts, images)``: each embedded once, cells scored in
        chunks of ``chunk`` texts (a gallery's full grid of aligned rows would not fit in memory)."""
        n_images = len(image_feats)
        cells = np.tile(np.arange(n_images), (len(text_feats), 1))
        return self.predict_cells(image_feats, text_feats, cells, chunk=chunk)

    def predict_cells(
        self, image_feats: np.ndarray, text_feats: np.ndarray, columns: np.ndarray, chunk: int = 64,
        fitted: tuple[dict[str, Matcher], dict[str, np.ndarray]] | None = None,
    ) -> np.ndarray:
        """Scores of text ``q`` against images ``columns[q]``, shaped like ``columns``, in chunks of ``chunk``
        texts; ``fitted``: other (matchers, references) than the head's own, e.g. one of :meth:`inner_matchers`."""
        matchers, references = fitted or (self.matchers_, self.references_)
        images = embed_images(matchers, image_feats)
        scores = np.empty(columns.shape)
        for start in range(0, len(text_feats), chunk):
            texts, rows = text_feats[start : start + chunk], columns[start : start + chunk]
            cells = self._cell_features(
                matchers, references, images, texts, rows.ravel(), np.repeat(np.arange(len(texts)), rows.shape[1])
            )
            scores[start : start + len(texts)] = self.booster_.predict(cells, num_threads=1).reshape(rows.shape)
        return scores

    def export(self) -> Exported:
        parts = {name: matcher.export() for name, matcher in self.matchers_.items()}
        params = {
            "kind": self.kind, "inner_folds": self.inner_folds, "n_estimators": self.n_estimators, "seed": self.seed,
            "reference_ks": list(self.reference_ks),
        }
        exported = nest(parts, params)
        exported.texts["booster"] = self.booster_.model_to_string()
        exported.arrays.update({f"references/{name}": value for name, value in self.references_.items()})
        return exported

    @classmethod
    def restore(cls, exported: Exported) -> MatchingHead:
        p = exported.params
        matchers = {name: restore_matcher(part) for name, part in unnest(exported).items()}
        model = cls({}, p["inner_folds"], p["n_estimators"], p["seed"], tuple(p["reference_ks"]))
        model.matchers_, model.booster_ = matchers, lgb.Booster(model_str=exported.texts["booster"])
        model.references_ = {name: exported.arrays[f"references/{name}"] for name in matchers}
        return model
