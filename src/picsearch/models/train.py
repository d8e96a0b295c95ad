"""`picsearch train`: compare every model on the same image-disjoint folds, select, refit, save."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from picsearch.data.tables import (
    CROWD_TSV, EXPERT_TSV, TEST_QUERIES_CSV, TRAIN_CSV, Dataset, caption_image,
)
from picsearch.features import DatasetFeatures, dataset_features, embed_texts
from picsearch.models.artifacts import METRICS, MODEL_CARD, RelevanceBundle
from picsearch.models.classes import class_prompts
from picsearch.models.child import detection_metrics, train_child_detector
from picsearch.models.evaluate import (
    CVResult, ModelFactory, cross_validate, retrieval_ranks, retrieval_summary,
)
from picsearch.models.heads import RelevanceModel, ConcatLGBM, ConcatMLP, ConcatRidge, MatchingHead, MatcherFactory
from picsearch.models.matching import (
    CaptionTransferMatcher, ClassBridgeMatcher, ImageLayout, ImageTransferMatcher, JointSpace, Matcher, RidgeMatcher,
    SharedSpaceMatcher, TwoTowerMatcher,
)
from picsearch.models.splits import grouped_folds, grouped_holdout, split_images
from picsearch.models.trainset import Target, TrainingSet, build_training_set
from picsearch.policy import is_blocked
from picsearch.policy.filter import CROWD_CONFIRMED, child_images
from picsearch.storage import file_sha256, save_json, write_bytes

RERANK_CANDIDATES = 20
GALLERY_SIZE = 100
"""The retrieval estimate searches galleries of this size, the size of test_images/."""
GALLERIES = 3
"""Random galleries per fold in the retrieval estimate."""


@dataclass(frozen=True)
class Encoders:
    """Which encoders made the features: registry names, ids, image layout, class-name vectors if any."""

    image_name: str
    image_id: str
    text_name: str
    text_id: str
    layout: ImageLayout
    class_texts: np.ndarray | None = None

    @property
    def shared_space(self) -> bool:
        """Both ids name the two towers of one CLIP model."""
        return self.image_id.startswith("clip-image-") and self.image_id.replace("-image-", "-text-", 1) == self.text_id


@dataclass(frozen=True)
class TrainingData:
    """Which target the models fit and with what row weight crowd pairs the experts did not rate join in."""

    target: Target = "expert"
    crowd_rows: float = 0.0


TRAINING_DATA_OPTIONS = {
    "expert": TrainingData(),
    "combined": TrainingData(target="combined"),
    "expert+crowd_rows": TrainingData(crowd_rows=0.3),
}


@dataclass(frozen=True)
class TrainConfig:
    folds: int = 5
    holdout: float = 0.3
    seed: int = 0
    data_options: tuple[str, ...] = tuple(TRAINING_DATA_OPTIONS)
    """Names in :data:`TRAINING_DATA_OPTIONS`: the candidates are compared on the first, the selected model is
    cross-validated on every one, and refitted on the one with the lowest CV RMSE."""
    models: tuple[str, ...] | None = None
    """Restrict the comparison to these candidate names (default: all)."""


def matcher_factories(encoders: Encoders) -> dict[str, MatcherFactory]:
    """The matching models that apply to these encoders."""
    layout = encoders.layout
    factories: dict[str, MatcherFactory] = {
        "ridge_map": lambda: RidgeMatcher(layout),
        "two_tower": lambda: TwoTowerMatcher(layout),
        "caption_transfer": lambda: CaptionTransferMatcher(layout),
        "image_transfer": lambda: ImageTransferMatcher(layout),
    }
    if layout.probs is not None and encoders.class_texts is not None:
        factories["class_bridge"] = lambda: ClassBridgeMatcher(layout, encoders.class_texts)
    if encoders.shared_space:
        factories["shared_space"] = lambda: SharedSpaceMatcher(layout)
    return factories


def candidate_models(encoders: Encoders) -> dict[str, ModelFactory]:
    """Every relevance model compared by `train`."""
    layout, matchers = encoders.layout, matcher_factories(encoders)
    return {
        "concat_ridge": lambda: ConcatRidge(layout),
        "concat_mlp": lambda: ConcatMLP(layout),
        "concat_lgbm": lambda: ConcatLGBM(layout),
        "matching_head": lambda: MatchingHead(matchers),
    }


def joint_options(names: list[str]) -> dict[str, dict[str, float]]:
    """Candidate weightings of the joint space: each matcher alone, all equal, and all but each one."""
    options = {name: {name: 1.0} for name in names}
    options["all"] = {name: 1.0 for name in names}
    if len(names) > 2:
        options.update({f"all-{drop}": {n: 1.0 for n in names if n != drop} for drop in names})
    return options


@dataclass
class TrainResult:
    bundle: RelevanceBundle
    metrics: dict[str, Any]
    cv: dict[str, CVResult] = field(default_factory=dict)


def _fit_matchers(factories: dict[str, MatcherFactory], data: TrainingSet) -> dict[str, Matcher]:
    images, texts = data.positive_feats()
    return {name: make().fit(images, texts) for name, make in factories.items()}


def retrieval_cv(
    data: TrainingSet, queries: pd.DataFrame, folds: list, fold_models: list[RelevanceModel],
    factories: dict[str, MatcherFactory], progress: Callable[[str], None], seed: int = 0,
) -> tuple[dict[str, dict[str, float]], str]:
    """Search as the product does, on held-out images: per fold, :data:`GALLERIES` random galleries of
    :data:`GALLERY_SIZE` held-out images, queried with the captions (``query_id, image``) that describe them.

    ``fold_models`` are the selected model fitted on each fold (their matchers are reused when they have
    some). Returns metrics and dimensions per joint-space option plus ``<best>+rerank`` (top candidates
    reranked by the model's score), and the option :func:`choose_joint` picks.
    """
    rng = np.random.default_rng(seed)
    ranks: dict[str, list[np.ndarray]] = {}
    dims: dict[str, int] = {}
    prepared = []
    for split, model in zip(folds, fold_models):
        progress("retrieval estimate")
        train_images, test_images = split_images(data.evaluation["image"], split)
        matchers = _matchers_of(model, factories, data.restrict(train_images))
        for gallery, query_ids, targets in _galleries(queries, sorted(test_images), rng):
            image_feats, text_feats = data.images(gallery), data.texts(query_ids)
            for option, weights in joint_options(list(matchers)).items():
                joint = JointSpace(matchers, weights)
                image_vectors = joint.embed_image(image_feats)
                dims[option] = image_vectors.shape[1]
                ranks.setdefault(option, []).append(
                    retrieval_ranks(image_vectors, joint.embed_text(text_feats), targets)
                )
            prepared.append((model, matchers, image_feats, text_feats, targets))
    summary = {option: {**retrieval_summary(np.concatenate(r)), "dims": dims[option]} for option, r in ranks.items()}
    best = choose_joint(summary, n_queries=sum(len(r) for r in next(iter(ranks.values()))))
    reranked = []
    for model, matchers, image_feats, text_feats, targets in prepared:
        joint = JointSpace(matchers, joint_options(list(matchers))[best])
        reranked.append(retrieval_ranks(
            joint.embed_image(image_feats), joint.embed_text(text_feats), targets,
            rerank=lambda rows, qrows: model.predict(image_feats[rows], text_feats[qrows]),
            candidates=RERANK_CANDIDATES,
        ))
    summary[f"{best}+rerank"] = {**retrieval_summary(np.concatenate(reranked)), "dims": dims[best]}
    return summary, best


def choose_joint(summary: dict[str, dict[str, float]], n_queries: int) -> str:
    """The one-standard-error rule: of the options whose Recall@5 is within one (binomial) standard error of
    the best, the one with the fewest dimensions, then the best MRR. Every dimension is paid for in index
    size and search time, and differences inside the error are noise."""
    top = max(s["recall@5"] for s in summary.values())
    error = np.sqrt(top * (1 - top) / n_queries)
    near = [option for option, s in summary.items() if s["recall@5"] >= top - error]
    return min(near, key=lambda option: (summary[option]["dims"], -summary[option]["mrr"]))


def _galleries(
    queries: pd.DataFrame, images: list[str], rng: np.random.Generator
) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
    """(sorted gallery, query ids, target rows) for random galleries drawn from ``images``.

    A caption written for another gallery image is left out: that query would have two right answers.
    """
    size = min(GALLERY_SIZE, len(images))
    for _ in range(GALLERIES):
        gallery = sorted(rng.choice(images, size, replace=False))
        inside = set(gallery)
        author = queries["query_id"].map(caption_image)
        chosen = queries[queries["image"].isin(inside) & ((author == queries["image"]) | ~author.isin(inside))]
        yield gallery, chosen["query_id"].tolist(), np.searchsorted(gallery, chosen["image"].to_numpy())


def _matchers_of(model: RelevanceModel, factories: dict[str, MatcherFactory], data: TrainingSet) -> dict[str, Matcher]:
    """The model's own fitted matchers, or matchers fitted on ``data`` for models without any."""
    return model.matchers if isinstance(model, MatchingHead) else _fit_matchers(factories, data)


def _retrieval_queries(dataset: Dataset, data: TrainingSet) -> pd.DataFrame:
    """Queries of the retrieval estimate (``query_id, image``): every training caption for the image it was
    written for, and crowd-confirmed captions for the image the crowd confirmed (no child filter: evaluation)."""
    own = pd.DataFrame({"query_id": sorted(set(dataset.train["query_id"]) & set(data.text_row))})
    own["image"] = own["query_id"].map(caption_image)
    crowd = dataset.crowd[dataset.crowd["true_frac"] > CROWD_CONFIRMED][["query_id", "image"]]
    queries = pd.concat([own, crowd[crowd["query_id"].isin(data.text_row)]]).drop_duplicates(ignore_index=True)
    return queries[queries["image"].isin(data.image_row)].reset_index(drop=True)


def train_models(
    dataset: Dataset,
    feats: DatasetFeatures,
    encoders: Encoders,
    config: TrainConfig = TrainConfig(),
    show_progress: bool = True,
) -> TrainResult:
    """Compare all candidates by grouped CV, pick the lowest CV RMSE, choose its training data the same way,
    refit on everything, add the child detector."""

    def training_set(option: TrainingData) -> TrainingSet:
        return build_training_set(dataset, feats, encoders.layout, option.target, crowd_rows=option.crowd_rows)

    data = training_set(TRAINING_DATA_OPTIONS[config.data_options[0]])
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

    metrics: dict[str, Any] = {"models": {}}
    cv: dict[str, CVResult] = {}
    for name, factory in candidates.items():
        cv[name] = cross_validate(factory, data, dataset.expert, folds, on_fold=lambda n=name: step(n))
        held = cross_validate(factory, data, dataset.expert, [holdout], on_fold=lambda n=name: step(n))
        metrics["models"][name] = {**cv[name].summary(), "rmse_holdout": held.folds[0]["rmse"]}
    selected = min(metrics["models"], key=lambda n: metrics["models"][n]["rmse"])
    metrics["selected"] = selected
    options = {config.data_options[0]: (data, cv[selected])}
    for name in config.data_options[1:]:
        variant = training_set(TRAINING_DATA_OPTIONS[name])
        options[name] = variant, cross_validate(
            candidates[selected], variant, dataset.expert, folds, on_fold=lambda n=name: step(f"data {n}")
        )
    metrics["training_data_options"] = {name: result.summary() for name, (_, result) in options.items()}
    data_name = min(options, key=lambda n: metrics["training_data_options"][n]["rmse"])
    data, selected_cv = options[data_name]
    queries = _retrieval_queries(dataset, data)
    retrieval, joint_name = retrieval_cv(data, queries, folds, selected_cv.models, factories, step)
    metrics["retrieval_cv"] = {
        "joint": joint_name, "candidates": RERANK_CANDIDATES, "gallery_size": GALLERY_SIZE,
        "galleries_per_fold": GALLERIES, "options": retrieval,
    }

    step(f"refit {selected}")
    scorer = candidates[selected]().fit(data)
    matchers = _matchers_of(scorer, factories, data)
    joint = JointSpace(matchers, joint_options(list(matchers))[joint_name])

    step("child detector")
    child, metrics["child_detector"] = _child_detector(dataset, feats, encoders.layout)
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
    return TrainResult(bundle, metrics, cv)


def _child_detector(dataset: Dataset, feats: DatasetFeatures, layout: ImageLayout):
    """Fit on train images (labels from their captions), then measure on test images (their 5 captions)."""
    train_names = sorted(set(dataset.train["image"]) & set(feats.image_row))
    children = child_images(dataset)
    labels = np.array([name in children for name in train_names])
    report = train_child_detector(layout, feats.images(train_names), labels)
    queries = dataset.test_queries
    blocked_test = set(queries.loc[queries["query_text"].map(is_blocked), "image"])
    test_names = sorted(set(queries["image"]) & set(feats.image_row))
    test_probs = report.detector.probability(feats.images(test_names))
    test_labels = np.array([name in blocked_test for name in test_names])
    summary = {
        "cv": report.cv, "c": report.detector.c, "threshold": report.detector.threshold,
        "target_recall": 0.99, "grid": report.grid,
        "test_images": detection_metrics(test_probs, test_labels, report.detector.threshold),
    }
    return report.detector, summary


LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm", "torch", "safetensors")


def model_card(dataset: Dataset, metrics: dict[str, Any], bundle: RelevanceBundle) -> dict[str, Any]:
    """Provenance: data file hashes, encoders, library versions, metrics."""
    files = (TRAIN_CSV, EXPERT_TSV, CROWD_TSV, TEST_QUERIES_CSV)
    return {
        "data": {name: file_sha256(dataset.root / name) for name in files},
        "encoders": {
            "image": {"name": bundle.image_encoder, "id": bundle.image_encoder_id},
            "text": {"name": bundle.text_encoder, "id": bundle.text_encoder_id},
        },
        "libraries": {"python": platform.python_version(), **{lib: version(lib) for lib in LIBRARIES}},
        "selected": bundle.selected,
        "joint_weights": bundle.joint.weights,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "metrics": metrics,
    }


def _card_markdown(card: dict[str, Any]) -> str:
    metrics = card["metrics"]
    rows = [
        f"| {name} | {m['rmse']:.4f} ± {m['rmse_std']:.4f} | {m['mae']:.4f} | {m['tau_c_expert']:.3f} | "
        f"{m['tau_b_crowd']:.3f} | {m['rmse_holdout']:.4f} |"
        for name, m in metrics["models"].items()
    ]
    lines = [
        "# picsearch relevance model card", "",
        f"Selected: **{card['selected']}** (lowest {metrics['training_data']['folds']}-fold grouped CV RMSE); "
        f"joint space: {card['joint_weights']}.", "",
        f"Image encoder `{card['encoders']['image']['id']}`, text encoder `{card['encoders']['text']['id']}`.", "",
        "| model | RMSE (CV) | MAE | tau_c expert | tau_b crowd | RMSE hold-out |", "|---|---|---|---|---|---|",
        *rows, "", "Data (sha256): " + ", ".join(f"`{k}` {v[:12]}" for k, v in card["data"].items()), "",
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in card["libraries"].items()), "",
        "Full numbers: `metrics.json`; provenance: `model_card.json`.", "",
    ]
    return "\n".join(lines)


def save_training(folder: Path, dataset: Dataset, result: TrainResult) -> Path:
    """Write bundle, metrics.json, model_card.json and MODEL_CARD.md into ``folder`` (each atomically)."""
    folder = Path(folder)
    result.bundle.save(folder)
    save_json(folder / METRICS, result.metrics)
    card = model_card(dataset, result.metrics, result.bundle)
    save_json(folder / "model_card.json", card)
    write_bytes(folder / MODEL_CARD, _card_markdown(card).encode("utf-8"))
    predictions = pd.DataFrame({name: r.predictions for name, r in result.cv.items()})
    predictions.insert(0, "query_id", dataset.expert.loc[predictions.index, "query_id"])
    predictions.insert(0, "image", dataset.expert.loc[predictions.index, "image"])
    write_bytes(folder / "cv_predictions.csv", predictions.to_csv(index_label="expert_row").encode("utf-8"))
    return folder


def fit_from_dataset(
    dataset: Dataset, image_encoder: str, text_encoder: str, cache_dir: Path, config: TrainConfig = TrainConfig()
) -> TrainResult:
    """Embed (through the cache) every image, caption and ImageNet class prompt, then :func:`train_models`."""
    from picsearch.encoders import get_text_encoder

    feats = dataset_features(dataset, image_encoder, text_encoder, cache_dir, progress=True)
    layout = ImageLayout.from_fields(feats.fields, feats.image_vectors.shape[1])
    class_texts = (
        embed_texts(class_prompts(layout.probs[1] - layout.probs[0]), get_text_encoder(text_encoder), cache_dir)
        if layout.probs is not None
        else None
    )
    torch.set_num_threads(1)  # after embedding: these models are small, one thread beats two on a shared 2-core box
    encoders = Encoders(image_encoder, feats.image_encoder_id, text_encoder, feats.text_encoder_id, layout, class_texts)
    return train_models(dataset, feats, encoders, config)
