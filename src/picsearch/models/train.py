"""`picsearch train`: compare every model on the same image-disjoint folds, select, refit, save.

Orchestration only: candidates and the rules that choose are in :mod:`~picsearch.models.selection`, the
retrieval estimate in :mod:`~picsearch.models.retrieval_cv`, the child detector in :mod:`~picsearch.models.child`,
the model card in :mod:`~picsearch.models.card`.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from picsearch.data.tables import Dataset
from picsearch.encoders import DEFAULT_MULTILINGUAL_ENCODER
from picsearch.features import DatasetFeatures, dataset_features, embed_texts
from picsearch.models.artifacts import METRICS, MODEL_CARD, RelevanceBundle
from picsearch.models.card import card_markdown, model_card
from picsearch.models.child import CHILD_PREDICTIONS, fit_child_detector
from picsearch.models.classes import class_prompts
from picsearch.models.evaluate import CVResult, collect_cv, start_fits
from picsearch.models.layout import ImageLayout
from picsearch.models.matching import JointSpace
from picsearch.models.retrieval_cv import (
    GALLERY_SIZES, RERANK_CANDIDATES, SELECTION_SIZE, matchers_of, retrieval_cv, retrieval_queries,
)
from picsearch.models.selection import (
    TRAINING_DATA_OPTIONS, Encoders, candidate_models, joint_options, lowest_rmse, matcher_factories,
)
from picsearch.models.matching_head import MatchingHead
from picsearch.models.multilingual import train_mapped_texts, train_text_map
from picsearch.models.relevance import RelevanceModel
from picsearch.models.splits import grouped_folds, grouped_holdout
from picsearch.models.trainset import TrainingSet
from picsearch.runtime import worker_pool
from picsearch.storage import save_json, write_bytes


@dataclass(frozen=True)
class TrainConfig:
    folds: int = 5
    holdout: float = 0.3
    seed: int = 0
    data_options: tuple[str, ...] = tuple(TRAINING_DATA_OPTIONS)
    """Names in :data:`TRAINING_DATA_OPTIONS`: the candidates are compared on the first, the selected model is
    cross-validated on every one, and refitted on the one :func:`lowest_rmse` picks."""
    models: tuple[str, ...] | None = None
    """Restrict the comparison to these candidate names (default: all)."""
    multilingual: str | None = DEFAULT_MULTILINGUAL_ENCODER
    """Text encoder for queries the trained one cannot read, mapped into its space (None: English only)."""
    workers: int | None = None
    """Models fitted at once, on threads; default: as many as the CPUs hold at the entry point's compute threads
    each (`picsearch train` gives each fit one thread, so one fit per CPU)."""


@dataclass
class TrainResult:
    bundle: RelevanceBundle
    metrics: dict[str, Any]
    cv: dict[str, CVResult] = field(default_factory=dict)
    child_oof: pd.DataFrame | None = None  # image, label, probability: the child detector's out-of-fold view
    training_set: TrainingSet | None = None  # what the bundle's scorer was refitted on


def train_models(
    dataset: Dataset,
    feats: DatasetFeatures,
    encoders: Encoders,
    config: TrainConfig = TrainConfig(),
    show_progress: bool = True,
) -> TrainResult:
    """Compare all candidates by grouped CV, pick by CV RMSE (:func:`lowest_rmse`), choose its training data the
    same way, refit on everything, add the child detector."""

    data = TRAINING_DATA_OPTIONS[config.data_options[0]].build(dataset, feats, encoders.layout)
    candidates = candidate_models(encoders)
    if config.models:
        candidates = {name: candidates[name] for name in config.models}
    factories = matcher_factories(encoders)
    images = data.evaluation["image"]
    folds = grouped_folds(images, config.folds, config.seed)
    holdout = grouped_holdout(images, config.holdout, config.seed)
    steps = len(candidates) * (config.folds + 1) + len(config.data_options[1:]) * config.folds + config.folds + 3
    bar = tqdm(total=steps, desc="train", disable=not show_progress, unit="step")

    def step(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    metrics: dict[str, Any] = {}
    cv: dict[str, CVResult] = {}
    with worker_pool(config.workers, "fit") as pool:
        child_fit = pool.submit(fit_child_detector, dataset, feats, encoders.layout)
        # Candidates are listed simplest first, and the last are the slowest to fit: started first, their fits are
        # not left running alone at the end. The summaries keep the listed order, which the rule ranks by.
        started = {
            name: (start_fits(factory, data, folds, pool), start_fits(factory, data, [holdout], pool))
            for name, factory in reversed(candidates.items())
        }
        held_out_rmse = {}
        for name, (fold_fits, holdout_fit) in started.items():
            cv[name] = collect_cv(fold_fits, data, dataset.expert, folds, on_fold=lambda n=name: step(n))
            held = collect_cv(holdout_fit, data, dataset.expert, [holdout], on_fold=lambda n=name: step(n))
            held_out_rmse[name] = held.folds[0]["rmse"]
        cv = {name: cv[name] for name in candidates}
        metrics["models"] = {
            name: {**result.summary(), "rmse_holdout": held_out_rmse[name]} for name, result in cv.items()
        }
        selected = lowest_rmse(metrics["models"], config.folds)
        metrics["selected"] = selected

        def refit(option: TrainingSet) -> Future[RelevanceModel]:
            return pool.submit(candidates[selected]().fit, option)

        def estimate(
            option: TrainingSet, fold_models: list[RelevanceModel], progress: Callable[[str], None] = step
        ) -> tuple[dict[str, dict], str]:
            return retrieval_cv(option, retrieval_queries(dataset, option), folds, fold_models, factories, progress)

        default = config.data_options[0]
        # The default data is the likely choice (the rule keeps the first option unless another is clearly
        # better), so its refit and retrieval estimate run while the other options are cross-validated; they are
        # redone only if another option wins.
        default_refit = refit(data)
        variants = {
            name: TRAINING_DATA_OPTIONS[name].build(dataset, feats, encoders.layout) for name in config.data_options[1:]
        }
        variant_fits = {
            name: start_fits(candidates[selected], variant, folds, pool) for name, variant in variants.items()
        }
        default_estimate = estimate(data, cv[selected].models)
        options = {default: (data, cv[selected])}
        for name, variant in variants.items():
            options[name] = variant, collect_cv(
                variant_fits[name], variant, dataset.expert, folds, on_fold=lambda n=name: step(f"data {n}")
            )
        metrics["training_data_options"] = {name: result.summary() for name, (_, result) in options.items()}
        data_name = lowest_rmse(metrics["training_data_options"], config.folds)
        data, selected_cv = options[data_name]
        if data_name == default:
            scorer_fit, (retrieval, joint_name) = default_refit, default_estimate
        else:
            scorer_fit, (retrieval, joint_name) = refit(data), estimate(data, selected_cv.models, lambda _: None)
        metrics["retrieval_cv"] = {
            "joint": joint_name, "candidates": RERANK_CANDIDATES, "gallery_size": SELECTION_SIZE,
            "gallery_sizes": list(GALLERY_SIZES), "options": retrieval,
        }
        scorer = scorer_fit.result()
        step(f"refit {selected}")
        matchers = matchers_of(scorer, factories, data)
        joint = JointSpace(matchers, joint_options(list(matchers))[joint_name])
        step("child detector")
        child, metrics["child_detector"], child_oof = child_fit.result()
    step("done")
    bar.close()
    metrics["training_data"] = {
        "option": data_name, **asdict(TRAINING_DATA_OPTIONS[data_name]), "pairs": len(data.pairs),
        "evaluation_pairs": len(data.evaluation), "positives": len(data.positives), "folds": config.folds,
        "holdout": config.holdout, "seed": config.seed,
    }
    bundle = RelevanceBundle(
        scorer, joint, child, encoders.image_name, encoders.image_id, encoders.text_name, encoders.text_id, selected
    )
    return TrainResult(bundle, metrics, cv, child_oof, data)


def save_training(folder: Path, dataset: Dataset, result: TrainResult) -> Path:
    """Write bundle, metrics.json, model_card.json and MODEL_CARD.md into ``folder`` (each atomically)."""
    folder = Path(folder)
    result.bundle.save(folder)
    save_json(folder / METRICS, result.metrics)
    card = model_card(dataset, result.metrics, result.bundle)
    save_json(folder / "model_card.json", card)
    write_bytes(folder / MODEL_CARD, card_markdown(card).encode("utf-8"))
    predictions = pd.DataFrame({name: r.predictions for name, r in result.cv.items()})
    predictions.insert(0, "query_id", dataset.expert.loc[predictions.index, "query_id"])
    predictions.insert(0, "image", dataset.expert.loc[predictions.index, "image"])
    write_bytes(folder / "cv_predictions.csv", predictions.to_csv(index_label="expert_row").encode("utf-8"))
    if result.child_oof is not None:
        write_bytes(folder / CHILD_PREDICTIONS, result.child_oof.to_csv(index=False).encode("utf-8"))
    return folder


def encoders_of(feats: DatasetFeatures, image_encoder: str, text_encoder: str, cache_dir: Path) -> Encoders:
    """The encoders behind ``feats``, with the ImageNet class prompts embedded (through the cache) if it has probs."""
    from picsearch.encoders import get_text_encoder

    layout = ImageLayout.from_fields(feats.fields, feats.image_vectors.shape[1])
    class_texts = (
        embed_texts(class_prompts(layout.probs[1] - layout.probs[0]), get_text_encoder(text_encoder), cache_dir)
        if layout.probs is not None
        else None
    )
    return Encoders(image_encoder, feats.image_encoder_id, text_encoder, feats.text_encoder_id, layout, class_texts)


def fit_from_dataset(
    dataset: Dataset, image_encoder: str, text_encoder: str, cache_dir: Path, config: TrainConfig = TrainConfig()
) -> TrainResult:
    """Embed (through the cache) every image, caption and ImageNet class prompt, then :func:`train_models`."""
    feats = dataset_features(dataset, image_encoder, text_encoder, cache_dir, progress=True)
    result = train_models(dataset, feats, encoders_of(feats, image_encoder, text_encoder, cache_dir), config)
    if config.multilingual and config.multilingual != text_encoder:
        bundle = result.bundle
        bundle.text_map, result.metrics["text_map"] = train_text_map(dataset, feats, config.multilingual, cache_dir)
        if isinstance(bundle.scorer, MatchingHead):
            mapped = train_mapped_texts(dataset, feats, bundle.text_map, cache_dir)
            bundle.mapped_scorer = bundle.scorer.with_booster_for(result.training_set, mapped)
            result.metrics["text_map"]["mapped_scorer"] = True
    return result
