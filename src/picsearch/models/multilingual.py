"""Queries in any language: a multilingual encoder mapped into the English text space the models use.

A multilingual encoder (``e5-small``) puts a sentence and its translation close together, so a map
from its space into the English encoder's space (MPNet), learned on the training captions, carries a Russian
query to where its English original would be; the joint space, scorer and index stay as they are, and English
queries keep the English encoder. :class:`TextMap` is a linear ridge map, :class:`KernelTextMap` a ridge map
with an RBF kernel; which one, and its alpha (and gamma), are chosen by grouped CV on the pairs, folds by image.
:class:`MappedTextEncoder` is the text encoder search uses.

The map learns from two kinds of pairs, both aimed at a training caption's English vector: the caption itself,
and its Russian translation from :data:`TRANSLATIONS`. The translations teach the map what the English captions
alone cannot: where the multilingual encoder puts Russian, which is not quite where it puts English. Captions
the child policy blocks are never learnt from (the law keeps data about children out of training).
"""

from __future__ import annotations

import copy
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.kernel_ridge import KernelRidge

from picsearch.data.tables import Dataset, caption_image
from picsearch.encoders import TextEncoder, get_text_encoder
from picsearch.features import DatasetFeatures, embed_texts
from picsearch.models.export import Exported
from picsearch.models.linear import fit_ridge
from picsearch.models.vectors import l2_normalize
from picsearch.models.splits import grouped_folds
from picsearch.policy import is_blocked
from picsearch.policy.filter import blocked_queries

ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
KERNEL_GRID = tuple((alpha, gamma) for alpha in (0.03, 0.1, 0.3) for gamma in (0.25, 0.5, 1.0))
"""(alpha, gamma) of the RBF maps tried beside the linear ones. With them, Russian R@5 in the multilingual
benchmark's CV went 0.640 -> 0.660 (English originals 0.727), MRR 0.429 -> 0.433 and the score gap to the English
original 0.122 -> 0.116, all in one run; choosing the map on the translations' held-out cosine alone, rather than
every pair's, gave 0.653."""
TRANSLATIONS = Path(__file__).with_name("translations_ru.tsv")
"""Russian translations, by hand, of 385 training captions (``query_id``, ``english``, ``russian``; UTF-8,
tab-separated): every training caption that the child policy does not block and that is not in the Russian
evaluation set ``tests/data/ru_queries.tsv`` (provenance in ``tests/data/README.md``)."""


def needs_map(text: str) -> bool:
    """True when ``text`` has a letter outside the Latin script (Cyrillic, Greek, CJK...): the English encoder
    cannot read it, the multilingual one can. A mixed query ("собака frisbee") takes the multilingual path."""
    return any(ch.isalpha() and not unicodedata.name(ch, "").startswith("LATIN") for ch in text)


class TextMap:
    """Ridge regression from one text encoder's vectors to another's; outputs L2-normalized rows."""

    def __init__(self, alpha: float, source: str, source_id: str, target_id: str) -> None:
        self.alpha, self.source, self.source_id, self.target_id = alpha, source, source_id, target_id

    def fit(self, source_feats: np.ndarray, target_feats: np.ndarray) -> TextMap:
        self.source_mean = source_feats.mean(axis=0).astype(np.float32)
        self.target_mean = target_feats.mean(axis=0).astype(np.float32)
        centred = fit_ridge(source_feats - self.source_mean, target_feats - self.target_mean, self.alpha)
        self.weights = centred.coef_.T.astype(np.float32)
        return self

    def transform(self, source_feats: np.ndarray) -> np.ndarray:
        """(n, source dim) -> (n, target dim), unit rows."""
        return l2_normalize((np.atleast_2d(source_feats) - self.source_mean) @ self.weights + self.target_mean)

    def export(self) -> Exported:
        params = {
            "kind": "ridge_text_map", "alpha": self.alpha, "source": self.source,
            "source_id": self.source_id, "target_id": self.target_id,
        }
        arrays = {"weights": self.weights, "source_mean": self.source_mean, "target_mean": self.target_mean}
        return Exported(params, arrays)

    @classmethod
    def restore(cls, exported: Exported) -> TextMap:
        p, arrays = exported.params, exported.arrays
        text_map = cls(p["alpha"], p["source"], p["source_id"], p["target_id"])
        text_map.weights, text_map.source_mean, text_map.target_mean = (
            arrays["weights"], arrays["source_mean"], arrays["target_mean"]
        )
        return text_map

    @property
    def label(self) -> str:
        """What the map is, for metrics and reports."""
        return f"linear, alpha {self.alpha:g}"


class KernelTextMap(TextMap):
    """Ridge regression with an RBF kernel (scikit-learn's ``KernelRidge``) on the centred target: the map bends
    where Russian and English sentences sit differently in the multilingual space; outputs L2-normalized rows.
    It keeps its training sources, about 3.5 KB a pair for the default encoders."""

    def __init__(self, alpha: float, source: str, source_id: str, target_id: str, gamma: float = 0.5) -> None:
        super().__init__(alpha, source, source_id, target_id)
        self.gamma = gamma

    def fit(self, source_feats: np.ndarray, target_feats: np.ndarray) -> KernelTextMap:
        target_mean = target_feats.mean(axis=0).astype(np.float32)
        model = KernelRidge(alpha=self.alpha, kernel="rbf", gamma=self.gamma)
        model.fit(source_feats.astype(np.float32), (target_feats - target_mean).astype(np.float32))
        return self._adopt(model, target_mean)

    def _adopt(self, model: KernelRidge, target_mean: np.ndarray) -> KernelTextMap:
        """Take a fitted ``model`` and the target mean it was centred on; keeps the support's squared norms for
        :meth:`transform`."""
        self.model, self.target_mean = model, target_mean
        self._support_norms = (model.X_fit_**2).sum(axis=1)
        return self

    def transform(self, source_feats: np.ndarray) -> np.ndarray:
        # KernelRidge.predict's own kernel (float32 distances upcast in chunks) takes 8 ms a query; this, 0.7
        support, queries = self.model.X_fit_, np.atleast_2d(source_feats).astype(np.float32)
        distances = (queries**2).sum(axis=1)[:, None] + self._support_norms[None, :] - 2 * queries @ support.T
        kernel = np.exp(-self.gamma * np.maximum(distances, 0.0))
        return l2_normalize(kernel @ self.model.dual_coef_ + self.target_mean)

    def export(self) -> Exported:
        params = {
            "kind": "rbf_text_map", "alpha": self.alpha, "gamma": self.gamma, "source": self.source,
            "source_id": self.source_id, "target_id": self.target_id,
        }
        arrays = {
            "support": np.asarray(self.model.X_fit_, dtype=np.float32),
            "dual": np.asarray(self.model.dual_coef_, dtype=np.float32),
            "target_mean": self.target_mean,
        }
        return Exported(params, arrays)

    @classmethod
    def restore(cls, exported: Exported) -> KernelTextMap:
        p, arrays = exported.params, exported.arrays
        model = KernelRidge(alpha=p["alpha"], kernel="rbf", gamma=p["gamma"])
        model.X_fit_, model.dual_coef_ = arrays["support"], arrays["dual"]
        text_map = cls(p["alpha"], p["source"], p["source_id"], p["target_id"], p["gamma"])
        return text_map._adopt(model, arrays["target_mean"])

    @property
    def label(self) -> str:
        return f"rbf, alpha {self.alpha:g}, gamma {self.gamma:g}"


def restore_text_map(exported: Exported) -> TextMap:
    """The map an :meth:`TextMap.export` wrote, of either kind."""
    kinds = {"ridge_text_map": TextMap, "rbf_text_map": KernelTextMap}
    return kinds[exported.params["kind"]].restore(exported)


def map_candidates(source: str = "", source_id: str = "", target_id: str = "") -> list[TextMap]:
    """Every map :func:`fit_text_map` chooses among, unfitted: :data:`ALPHAS` linear, :data:`KERNEL_GRID` RBF."""
    names = (source, source_id, target_id)
    return [TextMap(alpha, *names) for alpha in ALPHAS] + [
        KernelTextMap(alpha, *names, gamma=gamma) for alpha, gamma in KERNEL_GRID
    ]


def map_cosines(
    source_feats: np.ndarray, target_feats: np.ndarray, groups: Sequence[str],
    candidates: Sequence[TextMap] | None = None, folds: int = 5, seed: int = 0,
) -> dict[str, float]:
    """Mean held-out cosine between mapped and true target vectors per candidate map (by its ``label``; default
    :func:`map_candidates`), 5 folds grouped by ``groups``."""
    splits = grouped_folds(groups, folds, seed)
    target = l2_normalize(target_feats)
    out = {}
    for candidate in candidates or map_candidates():
        cosines = []
        for train, test in splits:
            candidate.fit(source_feats[train], target_feats[train])
            cosines.append(np.sum(candidate.transform(source_feats[test]) * target[test], axis=1))
        out[candidate.label] = float(np.mean(np.concatenate(cosines)))
    return out


@dataclass(frozen=True)
class MapTexts:
    """The pairs a map is learned on: each source text, the training caption whose English vector is its target
    (query id), the image that caption was written for (CV groups), and whether the text is a translation."""

    query_ids: list[str]
    texts: list[str]
    groups: list[str]
    translated: list[bool]


def read_translations(path: Path = TRANSLATIONS) -> pd.DataFrame:
    """``query_id, english, russian`` rows of a translations file."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = {"query_id", "english", "russian"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    return frame


def training_captions(
    dataset: Dataset, images: set[str] | None = None, translations: Path | None = TRANSLATIONS
) -> MapTexts:
    """Every distinct training caption the child policy does not block (never a test query), then each
    translation in ``translations`` (None: none) of one of them, matched by query id and English text, so a
    different data set never takes a stranger's translation; optionally only those written for ``images``."""
    captions = dataset.train.drop_duplicates("query_id")
    captions = captions[~captions["query_id"].isin(blocked_queries(dataset))]
    pairs = captions[["query_id", "query_text"]].assign(translated=False)
    if translations is not None:
        translated = read_translations(translations).merge(
            captions, left_on=["query_id", "english"], right_on=["query_id", "query_text"]
        )
        translated = translated[~translated["russian"].map(is_blocked).astype(bool)]  # bool even when empty
        translated = translated[["query_id", "russian"]].rename(columns={"russian": "query_text"})
        pairs = pd.concat([pairs, translated.assign(translated=True)])
    authors = pairs["query_id"].map(caption_image)
    if images is not None:
        pairs, authors = pairs[authors.isin(images)], authors[authors.isin(images)]
    return MapTexts(
        pairs["query_id"].tolist(), pairs["query_text"].tolist(), authors.tolist(), pairs["translated"].tolist()
    )


def fit_text_map(
    source_feats: np.ndarray, target_feats: np.ndarray, groups: Sequence[str],
    source: str, source_id: str, target_id: str, linear_only: bool = False,
) -> tuple[TextMap, dict[str, Any]]:
    """Choose the map by grouped CV (highest mean held-out cosine, :func:`map_cosines`) among
    :func:`map_candidates` (``linear_only``: the linear ones), refit it on everything; returns map and metrics."""
    candidates = [
        m for m in map_candidates(source, source_id, target_id) if not (linear_only and isinstance(m, KernelTextMap))
    ]
    cosines = map_cosines(source_feats, target_feats, groups, candidates)
    text_map = max(candidates, key=lambda candidate: cosines[candidate.label]).fit(source_feats, target_feats)
    metrics = {
        "source": source, "source_id": source_id, "target_id": target_id, "texts": len(groups),
        "map": text_map.label, "alpha": text_map.alpha, "cv_cosine": cosines,
    }
    return text_map, metrics


def train_text_map(
    dataset: Dataset, feats: DatasetFeatures, encoder_name: str, cache_dir: str | os.PathLike
) -> tuple[TextMap, dict[str, Any]]:
    """The map from ``encoder_name`` into the space of ``feats``' text vectors, on the pairs of
    :func:`training_captions` (embedded through the cache); alpha by grouped CV, folds by the image a caption was
    written for, so a caption and its translation are always held out together."""
    encoder = get_text_encoder(encoder_name)
    captions = training_captions(dataset)
    source = embed_texts(captions.texts, encoder, cache_dir, progress=False)
    text_map, metrics = fit_text_map(
        source, feats.texts(captions.query_ids), captions.groups, encoder_name, encoder.id, feats.text_encoder_id
    )
    return text_map, {**metrics, "translations": sum(captions.translated)}


def out_of_fold_mapped(
    text_map: TextMap, source: np.ndarray, target: np.ndarray, groups: Sequence[str], folds: int = 5, seed: int = 1
) -> np.ndarray:
    """Each row of ``source`` mapped by a copy of ``text_map`` (same kind and hyperparameters) fitted on the other
    groups' rows only: the vector a query gets from a map that never learnt it."""
    out = np.zeros(target.shape, dtype=np.float32)
    for train, test in grouped_folds(groups, folds, seed):
        out[test] = copy.deepcopy(text_map).fit(source[train], target[train]).transform(source[test])
    return out


def mapped_caption_texts(
    text_map: TextMap, captions: MapTexts, source: np.ndarray, target: np.ndarray, text_feats: np.ndarray,
    text_row: dict[str, int],
) -> np.ndarray:
    """``text_feats`` (rows by ``text_row``) with the row of every English caption of ``captions`` replaced by its
    :func:`out_of_fold_mapped` vector (``source`` and ``target``: the captions' vectors in the map's two spaces);
    translations help fit the maps and have no row of their own. A scorer learnt on them has seen the map's
    error as a query meets it."""
    mapped = text_feats.copy()
    vectors = out_of_fold_mapped(text_map, source, target, captions.groups)
    for query_id, translated, vector in zip(captions.query_ids, captions.translated, vectors):
        if not translated and query_id in text_row:
            mapped[text_row[query_id]] = vector
    return mapped


def train_mapped_texts(
    dataset: Dataset, feats: DatasetFeatures, text_map: TextMap, cache_dir: str | os.PathLike
) -> np.ndarray:
    """:func:`mapped_caption_texts` of ``feats``' text vectors on the pairs :func:`train_text_map` learnt from
    (the map's source vectors come through the cache)."""
    captions = training_captions(dataset)
    source = embed_texts(captions.texts, get_text_encoder(text_map.source), cache_dir, progress=False)
    target = feats.texts(captions.query_ids)
    return mapped_caption_texts(text_map, captions, source, target, feats.text_vectors, feats.text_row)


class MappedTextEncoder:
    """The English encoder for Latin-script texts, the multilingual encoder plus :class:`TextMap` for the rest.

    Its vectors live in the English encoder's space and it carries that encoder's ``id``, so the models,
    the index and the cache checks see the encoder they were trained with."""

    def __init__(self, english: TextEncoder, multilingual: TextEncoder, text_map: TextMap) -> None:
        if multilingual.id != text_map.source_id or english.id != text_map.target_id:
            raise ValueError(
                f"text map goes {text_map.source_id!r} -> {text_map.target_id!r}, "
                f"encoders are {multilingual.id!r} and {english.id!r}"
            )
        self.english, self.multilingual, self.text_map = english, multilingual, text_map
        self.id, self.dim = english.id, english.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        routes = [needs_map(text) for text in texts]
        mapped = [i for i, needs in enumerate(routes) if needs]
        plain = [i for i, needs in enumerate(routes) if not needs]
        if plain:
            out[plain] = self.english.encode([texts[i] for i in plain])
        if mapped:
            out[mapped] = self.text_map.transform(self.multilingual.encode([texts[i] for i in mapped]))
        return out
