"""Russian search by grouped CV on training data: two designs, against English, with query latency.

``python -m picsearch.bench.multilingual [--data DIR] [--cache DIR] [--queries tests/data/ru_queries.tsv]
[--map-only]``

Both designs are measured on the same 5 folds by image and the same fold galleries (every held-out image) as
`picsearch train`'s retrieval estimate (the matching head on the ``expert`` training data, its joint space chosen
on English):

- ``map``: MPNet stays the text tower; a ridge map (linear or RBF kernel) from a multilingual encoder into MPNet's
  space, fitted per fold on the training fold's captions and their hand translations,
  carries a query that :func:`~picsearch.models.multilingual.needs_map` into MPNet's space. Measured for each
  source in :data:`MAP_SOURCES`: multilingual-e5-small, USE multilingual v3, and the two joined (the default),
  which is measured again in the same run with linear maps only ("linear maps only": the map before the RBF
  kernel ones) and without the translations ("captions only", linear: the map before them). Each fold's map
  and its hyperparameters are chosen by grouped CV inside the fold (held-out cosine over every pair).
  The translations are of captions outside the Russian set, but by the same hand, so the gain they show here
  may be larger than on queries written by other people. The default source's Russian queries are also scored
  by scorers that have seen the map's error, learnt on mapped caption vectors (each fold's training captions
  mapped out of fold, :func:`mapped_caption_heads`), alone and averaged with the English head: a whole second
  head, the English head's matchers with a second booster ("mean of both boosters" is what search does,
  :attr:`~picsearch.models.artifacts.RelevanceBundle.mapped_scorer`), and that booster distilled: learnt to give
  the English head's own score of each pair (:func:`teacher_scores`) rather than the human one.
- ``e5``: multilingual-e5-small is the text tower; joint space and scorer are trained on it.

Each query of the Russian set (captions of training images, translated by hand) is searched in the galleries
of the fold that holds its image out. Printed: Recall@1/5/10 and MRR per design and query language, Recall@5 in
galleries of 100 (the size of test_images/, where the goals are set; 10 random sub-galleries per query), the
English protocol numbers (every caption, Kendall tau_c), the mean absolute difference between the score of a
Russian query and of its English original (on the English query's reranked candidates, and on the target
image) and text-encoding latency per query.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from picsearch.bench.common import load_features, training_set
from picsearch.data.tables import caption_image
from picsearch.encoders import DEFAULT_MULTILINGUAL_ENCODER, get_text_encoder, query_encoder_name
from picsearch.features import DatasetFeatures, embed_texts
from picsearch.metrics import summarize
from picsearch.models.evaluate import cross_validate, fit_on
from picsearch.models.matching import JointSpace
from picsearch.models.matching_head import MatchingHead
from picsearch.models.multilingual import (
    TRANSLATIONS, MappedTextEncoder, TextMap, fit_text_map, mapped_caption_texts, read_translations,
    training_captions,
)
from picsearch.models.retrieval_cv import (
    RERANK_CANDIDATES, fold_galleries, matchers_of, resampled_ranks, retrieval_cv, retrieval_queries, retrieval_ranks,
    score_grid,
)
from picsearch.models.selection import candidate_models, joint_options, matcher_factories
from picsearch.models.splits import grouped_folds, split_images
from picsearch.models.trainset import TrainingSet

DEFAULT_QUERIES = Path(__file__).resolve().parents[3] / "tests" / "data" / "ru_queries.tsv"
MAP_SOURCES = ("e5-small", "use-m3", DEFAULT_MULTILINGUAL_ENCODER)
SMALL_GALLERY = 100
"""The size of test_images/, where the issue's goals are set; a fold gallery holds 200."""


@dataclass
class Design:
    """One fitted design: per-fold models and matchers, the English joint option, English metrics."""

    name: str
    data: object
    folds: list
    models: list
    matchers: list
    joint: str
    english: dict
    factory: object


def load_queries(path: Path) -> pd.DataFrame:
    """``query_id, english, russian`` plus ``image`` (the image the caption was written for)."""
    frame = read_translations(path)
    return frame.assign(image=frame["query_id"].map(caption_image))


def fit_design(name: str, dataset, feats: DatasetFeatures, text_encoder: str, cache: Path, say) -> Design:
    """Cross-validate the matching head on ``feats`` and run the English retrieval estimate."""
    encoders, data = training_set(dataset, feats, cache, "expert", text_encoder)
    folds = grouped_folds(data.evaluation["image"], 5, 0)
    say(f"{name}: cross-validating the matching head")
    factory = candidate_models(encoders)["matching_head"]
    cv = cross_validate(factory, data, dataset.expert, folds)
    factories = matcher_factories(encoders)
    say(f"{name}: English retrieval estimate")
    retrieval, joint = retrieval_cv(data, retrieval_queries(dataset, data), folds, cv.models, factories, lambda _: None)
    matchers = [
        matchers_of(model, factories, data.restrict(split_images(data.evaluation["image"], split)[0]))
        for model, split in zip(cv.models, folds)
    ]
    english = {"tau_c": cv.summary()["tau_c_expert"], "rmse": cv.summary()["rmse"], **retrieval[f"{joint}+rerank"]}
    return Design(name, data, folds, cv.models, matchers, joint, english, factory)


def translated_search(
    design: Design, queries: pd.DataFrame, text_feats: dict[str, list[np.ndarray]], seed: int = 0,
    scorers: dict[str, list[list]] | None = None,
):
    """Ranks of each query's image per variant (``text_feats[variant][fold]`` rows align with ``queries``) in the
    fold galleries, the same at :data:`SMALL_GALLERY` images (``small``: random sub-galleries, as the retrieval
    estimate draws them), and the mean absolute score differences of each variant against ``"en"`` (candidates,
    target). A variant is scored by the fold's model, or by the mean score of ``scorers[variant][fold]``."""
    ranks = {variant: [] for variant in text_feats}
    small = {variant: [] for variant in text_feats}
    gaps = {variant: ([], []) for variant in text_feats}
    position = {query_id: i for i, query_id in enumerate(queries["query_id"])}
    galleries = fold_galleries(design.data, queries, design.folds)  # the fold galleries of retrieval_cv
    for fold, ((_, gallery), matchers) in enumerate(zip(galleries, design.matchers)):
        joint = JointSpace(matchers, joint_options(list(matchers))[design.joint])
        rows, targets = [position[q] for q in gallery.query_ids], gallery.targets
        image_feats = design.data.images(gallery.images)
        joint_images = joint.embed_image(image_feats)
        sims, grids = {}, {}  # per variant: joint cosine and score of every query against every gallery image
        for variant, per_fold in text_feats.items():
            feats = per_fold[fold][rows]
            joint_texts = joint.embed_text(feats)
            sims[variant] = joint_texts @ joint_images.T
            models = scorers[variant][fold] if variant in (scorers or {}) else [design.models[fold]]
            grids[variant] = grid = np.mean([score_grid(model, image_feats, feats) for model in models], axis=0)
            ranks[variant].append(retrieval_ranks(
                joint_images, joint_texts, targets, candidates=RERANK_CANDIDATES, rerank=lambda r, q, g=grid: g[q, r],
            ))
            rng = np.random.default_rng([seed, fold])  # every variant draws the same sub-galleries
            small[variant].append(resampled_ranks(sims[variant], gallery, SMALL_GALLERY, rng, rerank=grid).ravel())
        english_top = np.argsort(-sims["en"], axis=1)[:, :RERANK_CANDIDATES]
        cells = np.column_stack([english_top, targets])  # the English query's candidates, then the target
        for variant, grid in grids.items():
            diff = np.abs(np.take_along_axis(grid, cells, axis=1) - np.take_along_axis(grids["en"], cells, axis=1))
            gaps[variant][0].extend(diff[:, :-1].mean(axis=1))
            gaps[variant][1].extend(diff[:, -1])
    summary = {v: summarize(np.concatenate(r), digits=None) for v, r in ranks.items()}
    for variant, (cands, targets) in gaps.items():
        summary[variant].update(gap_candidates=float(np.mean(cands)), gap_target=float(np.mean(targets)))
        summary[variant]["small"] = summarize(np.concatenate(small[variant]), digits=None)
    return summary


def fold_maps(
    dataset, design: Design, source_of: dict[str, np.ndarray], feats_mp: DatasetFeatures, names: tuple[str, str, str],
    translations: Path | None, linear_only: bool = False,
) -> list[TextMap]:
    """One source -> MPNet map per fold, chosen and fitted on the pairs of that fold's training images only, as
    `train` does (with or without ``translations``; ``linear_only``: among the linear maps); ``names`` are the
    source's name and id and MPNet's id."""
    maps = []
    for split in design.folds:
        train_images, _ = split_images(design.data.evaluation["image"], split)
        captions = training_captions(dataset, train_images, translations)
        source = np.stack([source_of[t] for t in captions.texts])
        target = feats_mp.texts(captions.query_ids)
        maps.append(fit_text_map(source, target, captions.groups, *names, linear_only=linear_only)[0])
    return maps


def teacher_scores(head: MatchingHead, data: TrainingSet) -> np.ndarray:
    """``head``'s score of each of ``data``'s pairs (``head`` fitted on ``data``), from the inner fold that held
    the pair's image out: what its booster was fitted to predict the human score from."""
    scores = np.zeros(len(data.pairs))
    for held_out, matchers, references in head.inner_matchers(data):
        rows = data.pairs["image"].isin(held_out).to_numpy()
        image_feats, text_feats = data.pair_feats(data.pairs[rows])
        own_image = np.arange(len(image_feats))[:, None]  # each row's text against its own image only
        scores[rows] = head.predict_cells(image_feats, text_feats, own_image, fitted=(matchers, references))[:, 0]
    return scores


def mapped_caption_heads(
    dataset, design: Design, maps: list[TextMap], source_of: dict[str, np.ndarray], feats_mp: DatasetFeatures
) -> tuple[list, list, list]:
    """Per fold, learnt on the fold's training pairs with every caption vector replaced by its mapped one (out of
    fold for the captions of the fold's training images, :func:`mapped_caption_texts`; by the fold's map for the
    others, which it never learnt): a whole matching head (its own matchers, so an index would need their image
    vectors too), the fold's head with only its booster learnt anew, as `train` makes ``mapped_scorer``, and the
    same with the booster's targets the fold's head's :func:`teacher_scores` (distillation)."""
    texts = dataset.query_texts()
    rows = sorted(design.data.text_row, key=design.data.text_row.get)
    heads, boosters, distilled = [], [], []
    for split, text_map, model in zip(design.folds, maps, design.models):
        train_images, _ = split_images(design.data.evaluation["image"], split)
        captions = training_captions(dataset, train_images, TRANSLATIONS)
        source = np.stack([source_of[text] for text in captions.texts])
        mapped = mapped_caption_texts(
            text_map, captions, source, feats_mp.texts(captions.query_ids),
            text_map.transform(np.stack([source_of[texts[query_id]] for query_id in rows])), design.data.text_row,
        )
        heads.append(fit_on(design.factory, replace(design.data, text_feats=mapped), train_images))
        data = design.data.restrict(train_images)
        boosters.append(model.with_booster_for(data, mapped))
        taught = replace(data, pairs=data.pairs.assign(target=teacher_scores(model, data)))
        distilled.append(model.with_booster_for(taught, mapped))
    return heads, boosters, distilled


def latency(encoder, text: str, repeats: int = 20) -> float:
    """Median milliseconds to encode one query (after a warm-up call)."""
    encoder.encode([text])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode([text])
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--cache", default="artifacts/cache")
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    parser.add_argument("--map-only", action="store_true", help="measure the map design only (not the e5 tower)")
    args = parser.parse_args(argv)
    console = Console()
    cache = Path(args.cache)
    dataset, feats_mp = load_features(args.data, cache)
    queries = load_queries(args.queries)
    mpnet = get_text_encoder("mpnet")
    sources = {name: get_text_encoder(name) for name in MAP_SOURCES}
    texts = list(dataset.query_texts().values())
    source_texts = texts + read_translations()["russian"].tolist()
    of = {
        name: dict(zip(source_texts, embed_texts(source_texts, encoder, cache, progress=False)))
        for name, encoder in sources.items()
    }
    feats_e5 = replace(
        feats_mp, text_encoder_id=sources["e5-small"].id, text_vectors=np.stack([of["e5-small"][t] for t in texts])
    )
    vectors = {}
    for name, encoder in (("mp", mpnet), *sources.items()):
        for language in ("english", "russian"):
            vectors[name, language] = embed_texts(queries[language].tolist(), encoder, cache, progress=False)

    table = Table(title=f"Russian search, grouped 5-fold CV on training images ({len(queries)} queries)")
    for column in ("design", "queries", "R@1", "R@5", "R@10", "MRR", f"R@5 at {SMALL_GALLERY}", "|Δscore| cand.",
                   "|Δscore| target"):
        table.add_column(column)
    english_rows = []
    designs = (("map", feats_mp, "mpnet"), ("e5", feats_e5, "e5-small"))
    for name, feats, encoder_name in designs[:1] if args.map_only else designs:
        design = fit_design(name, dataset, feats, encoder_name, cache, console.log)
        english_rows.append((name, design))
        n = len(design.folds)
        scorers = {}  # variant -> per fold, the models whose mean score it gets (else the fold's model)
        if name == "map":
            variants = {"en": [vectors["mp", "english"]] * n, "ru (MPNet, no map)": [vectors["mp", "russian"]] * n}
            fitted = {}
            default = DEFAULT_MULTILINGUAL_ENCODER
            runs = [(source, source, TRANSLATIONS, False) for source in sources] + [
                (f"{default}, linear maps only", default, TRANSLATIONS, True),  # the map before the RBF ones
                (f"{default}, captions only", default, None, True),  # the map before the translations
            ]
            for label, source, translations, linear_only in runs:
                names = (source, sources[source].id, mpnet.id)
                maps = fold_maps(dataset, design, of[source], feats_mp, names, translations, linear_only)
                for language in ("russian", "english"):
                    variants[f"{language[:2]} mapped from {label}"] = [m.transform(vectors[source, language]) for m in maps]
                fitted[label] = maps
            mapped_heads, boosters, distilled = mapped_caption_heads(
                dataset, design, fitted[default], of[default], feats_mp
            )
            russian = variants[f"ru mapped from {default}"]
            for label, models in (
                ("mapped-caption head", [[head] for head in mapped_heads]),
                ("mean of both heads", [[model, head] for model, head in zip(design.models, mapped_heads)]),
                ("mapped-caption booster", [[head] for head in boosters]),
                ("mean of both boosters", [[model, head] for model, head in zip(design.models, boosters)]),
                ("distilled booster", [[head] for head in distilled]),
                ("mean of English and distilled boosters", [[m, head] for m, head in zip(design.models, distilled)]),
            ):
                variants[f"ru mapped from {default}, {label}"] = russian
                scorers[f"ru mapped from {default}, {label}"] = models
        else:
            variants = {"en": [vectors["e5-small", "english"]] * n, "ru": [vectors["e5-small", "russian"]] * n}
        for variant, s in translated_search(design, queries, variants, scorers=scorers).items():
            table.add_row(
                name, variant, *(f"{s[k]:.3f}" for k in ("recall@1", "recall@5", "recall@10", "mrr")),
                f"{s['small']['recall@5']:.3f}", f"{s['gap_candidates']:.3f}", f"{s['gap_target']:.3f}",
            )
    console.print(table)
    chosen = {label: [m.label for m in maps] for label, maps in fitted.items()}
    console.print(f"map per fold (grouped CV inside the fold): {chosen}")
    english = Table(title="English protocol (every training caption, retrieval estimate with rerank; tau_c on experts)")
    for column in ("design", "joint", "R@5", "MRR", "tau_c", "RMSE"):
        english.add_column(column)
    for name, design in english_rows:
        e = design.english
        english.add_row(name, design.joint, f"{e['recall@5']:.3f}", f"{e['mrr']:.3f}", f"{e['tau_c']:.4f}", f"{e['rmse']:.4f}")
    console.print(english)
    query_mpnet = get_text_encoder(query_encoder_name("mpnet"))  # as search encodes a query
    mapped = MappedTextEncoder(query_mpnet, sources[DEFAULT_MULTILINGUAL_ENCODER], fitted[DEFAULT_MULTILINGUAL_ENCODER][0])
    timing = Table(title=f"text encoding, ms per query (median of 20, one query at a time; MPNet as {query_mpnet.backend})")
    for column in ("path", "ms", "ratio vs MPNet"):
        timing.add_column(column)
    base = latency(query_mpnet, "a dog runs through the snow")
    for label, encoder, text in (
        ("MPNet, English", query_mpnet, "a dog runs through the snow"),
        (f"{DEFAULT_MULTILINGUAL_ENCODER} + map, Russian", mapped, "собака бежит по снегу"),
        ("e5, Russian (design e5)", sources["e5-small"], "собака бежит по снегу"),
    ):
        ms = latency(encoder, text)
        timing.add_row(label, f"{ms:.1f}", f"{ms / base:.2f}")
    console.print(timing)


if __name__ == "__main__":
    main()
