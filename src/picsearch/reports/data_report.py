"""The preliminary data review: tables' health, expert scores, agreement, crowd vs expert, policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import kendalltau, spearmanr
from sklearn.metrics import cohen_kappa_score

from picsearch import labels
from picsearch.data.tables import EXPERT_SCORES, Dataset, load_dataset
from picsearch.data.validate import ValidationReport, validate_dataset
from picsearch.markdown import markdown_table
from picsearch.policy.filter import FilterResult, training_filter
from picsearch.reports import save_figure
from picsearch.storage import write_bytes

REPORT_NAME = "data_report.md"
_SCORE_LEVELS = np.arange(10) / 9  # exp_mean_score takes the values k/9
_EXPERT_COLORS = ("#4C72B0", "#DD8452", "#55A868")


def write_data_report(root: Path, out: Path) -> Path:
    """Validate and load the dataset at ``root``, write ``data_report.md`` and its PNGs into ``out``."""
    out = Path(out)
    validation = validate_dataset(root)
    dataset = load_dataset(root)
    sections = [
        f"# Data report\n\nDataset: `{Path(root).resolve()}`",
        _overview(validation),
        _health(dataset),
        _expert_scores(dataset.expert, out),
        _agreement(dataset.expert, out),
        _crowd_vs_expert(dataset, out),
        _policy(dataset, training_filter(dataset), out),
    ]
    path = out / REPORT_NAME
    write_bytes(path, ("\n\n".join(sections) + "\n").encode("utf-8"))
    return path


def _overview(validation: ValidationReport) -> str:
    verdict = "clean" if validation.ok else f"**{len(validation.problems)} problem(s)** (see `picsearch validate`)"
    rows = [[name, value] for name, value in validation.summary.items()]
    return f"## Overview\n\nValidation: {verdict}.\n\n" + markdown_table(["what", "value"], rows)


def _health(dataset: Dataset) -> str:
    """Duplicates and missing (empty) values per table."""
    tables = {
        "train_dataset.csv": (dataset.train, ["image", "query_id"]),
        "ExpertAnnotations.tsv": (dataset.expert, ["image", "query_id"]),
        "CrowdAnnotations.tsv": (dataset.crowd, ["image", "query_id"]),
        "test_queries.csv": (dataset.test_queries, ["query_id"]),
    }
    rows = []
    for name, (frame, keys) in tables.items():
        empty = frame.astype(str).apply(lambda column: column.str.strip().eq("")).sum()
        missing = ", ".join(f"{column}: {count}" for column, count in empty.items() if count) or "none"
        rows.append([name, len(frame), int(frame.duplicated().sum()), int(frame.duplicated(keys).sum()), missing])
    repeated = dataset.train.groupby("query_id")["query_text"].nunique().gt(1).sum()
    header = ["table", "rows", "duplicate rows", "duplicate keys", "empty values"]
    return (
        "## Duplicates and missing values\n\nKeys: (image, query_id), or query_id for test queries.\n\n"
        + markdown_table(header, rows)
        + f"\n\nquery_ids with more than one text in train_dataset.csv: {repeated}."
    )


def _expert_scores(expert: pd.DataFrame, out: Path) -> str:
    figure = Figure(figsize=(11, 4))
    left, right = figure.subplots(1, 2)
    for offset, (column, color) in enumerate(zip(EXPERT_SCORES, _EXPERT_COLORS)):
        counts = expert[column].value_counts().reindex(range(1, 5), fill_value=0)
        left.bar(counts.index + (offset - 1) * 0.27, counts.to_numpy(), width=0.27, label=column, color=color)
    left.set(title="Scores per expert", xlabel="score (1 = no match, 4 = exact match)", ylabel="pairs")
    left.set_xticks(range(1, 5))
    left.legend(frameon=False)
    score = labels.exp_mean_score(expert)
    counts = score.round(6).value_counts().reindex(_SCORE_LEVELS.round(6), fill_value=0)
    right.bar(_SCORE_LEVELS, counts.to_numpy(), width=0.08, color="#8172B3")
    right.set(title="exp_mean_score = (mean of three - 1) / 3", xlabel="exp_mean_score", ylabel="pairs")
    right.set_xticks(_SCORE_LEVELS, [f"{k}/9" for k in range(10)])
    for axis in (left, right):
        axis.grid(axis="y", alpha=0.3)
    link = save_figure(figure, out / "expert_scores.png")
    shares = expert[EXPERT_SCORES].stack().value_counts(normalize=True).sort_index()
    share_text = ", ".join(f"{int(s)}: {v:.1%}" for s, v in shares.items())
    return (
        f"## Expert scores\n\n![expert scores]({link})\n\n"
        f"{len(expert)} pairs, three experts each. Share of all scores: {share_text}. "
        f"exp_mean_score: mean {score.mean():.3f}, median {score.median():.3f}; "
        f"{(score == 0).mean():.1%} of pairs are 0 (all three said 1)."
    )


def _agreement(expert: pd.DataFrame, out: Path) -> str:
    stats = labels.agreement(expert)
    majority = labels.majority_vote(expert)
    kappa = np.eye(3)
    for i in range(3):
        for j in range(i + 1, 3):
            value = cohen_kappa_score(expert[EXPERT_SCORES[i]], expert[EXPERT_SCORES[j]], weights="quadratic")
            kappa[i, j] = kappa[j, i] = value
    figure = Figure(figsize=(11, 4))
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    ranges = stats["range"].value_counts().reindex(range(4), fill_value=0)
    bars = left.bar(ranges.index, ranges.to_numpy(), color="#4C72B0")
    left.bar_label(bars, [f"{v / len(expert):.1%}" for v in ranges.to_numpy()])
    left.set(title="Spread of the three scores per pair", xlabel="max - min score", ylabel="pairs")
    left.margins(y=0.12)
    left.set_xticks(range(4))
    left.grid(axis="y", alpha=0.3)
    image = right.imshow(kappa, vmin=0, vmax=1, cmap="viridis")
    right.set_xticks(range(3), EXPERT_SCORES)
    right.set_yticks(range(3), EXPERT_SCORES)
    for (i, j), value in np.ndenumerate(kappa):
        right.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
    right.set_title("Pairwise Cohen's kappa (quadratic weights)")
    figure.colorbar(image, ax=right, fraction=0.046)
    link = save_figure(figure, out / "expert_agreement.png")
    pairs = kappa[np.triu_indices(3, 1)]
    return (
        f"## Expert agreement\n\n![expert agreement]({link})\n\n"
        f"All three agree on {stats['unanimous'].mean():.1%} of pairs; the scores span at most one step "
        f"on {(stats['range'] <= 1).mean():.1%}. Majority vote exists for {majority.notna().mean():.1%} "
        f"({majority.isna().sum()} pairs where all three disagree are dropped by it). "
        f"Pairwise quadratic kappa: {pairs.min():.2f}..{pairs.max():.2f}."
    )


def _crowd_vs_expert(dataset: Dataset, out: Path) -> str:
    expert = dataset.expert.assign(exp_mean_score=labels.exp_mean_score(dataset.expert))
    both = expert.merge(dataset.crowd, on=["image", "query_id"])
    if len(both) < 3:
        return f"## Crowd vs expert\n\nOnly {len(both)} pairs were rated by both; no correlation computed."
    rho = spearmanr(both["exp_mean_score"], both["true_frac"]).statistic
    tau = kendalltau(both["exp_mean_score"], both["true_frac"], variant="b").statistic
    figure = Figure(figsize=(11, 4.2))
    left, right = figure.subplots(1, 2)
    levels = [level for level in _SCORE_LEVELS if np.isclose(both["exp_mean_score"], level).any()]
    groups = [both.loc[np.isclose(both["exp_mean_score"], level), "true_frac"] for level in levels]
    left.boxplot(groups, positions=range(len(levels)), widths=0.6, showmeans=True)
    left.set_xticks(range(len(levels)), [f"{round(level * 9)}/9" for level in levels])
    for position, group in enumerate(groups):
        left.text(position, 1.06, f"n={len(group)}", ha="center", fontsize=7)
    left.set_ylim(-0.05, 1.12)
    left.set(title="Crowd true_frac by expert score (triangle = mean)", xlabel="exp_mean_score", ylabel="true_frac")
    # Both scores are discrete: jitter so overlapping points show as a cloud.
    noise = np.random.default_rng(0).uniform(-0.025, 0.025, (2, len(both)))
    alpha = float(np.clip(200 / len(both), 0.2, 0.8))
    right.scatter(both["exp_mean_score"] + noise[0], both["true_frac"] + noise[1], s=6, alpha=alpha)
    right.set(title=f"Pairs rated by both (n={len(both)}), jittered", xlabel="exp_mean_score", ylabel="true_frac")
    right.set_xticks(_SCORE_LEVELS, [f"{k}/9" for k in range(10)])
    for axis in (left, right):
        axis.grid(alpha=0.3)
    link = save_figure(figure, out / "crowd_vs_expert.png")
    return (
        f"## Crowd vs expert\n\n![crowd vs expert]({link})\n\n"
        f"{len(both)} of {len(expert)} expert pairs ({len(both) / len(expert):.1%}) were also rated by the crowd. "
        f"On them, exp_mean_score vs true_frac: Spearman rho = {rho:.3f}, Kendall tau-b = {tau:.3f}."
    )


def _policy(dataset: Dataset, result: FilterResult, out: Path) -> str:
    """How much the child-content filter removes, per table and per rule."""
    figure = Figure(figsize=(10, 3.2))
    axis = figure.subplots()
    parts = [
        ("kept", "remaining", "#55A868"),
        ("removed: text rule only", "text_only", "#DD8452"),
        ("removed: image rule only", "image_only", "#C44E52"),
        ("removed: both rules", "both", "#8172B3"),
    ]
    names = [name for name, _ in result.tables()]
    left = np.zeros(len(names))
    for label, attribute, color in parts:
        shares = np.array([getattr(counts, attribute) / max(counts.total, 1) for _, counts in result.tables()])
        bars = axis.barh(names, shares, left=left, color=color, label=label)
        axis.bar_label(bars, [f"{v:.0%}" if v >= 0.04 else "" for v in shares], label_type="center", color="white")
        left += shares
    axis.set(xlim=(0, 1), xlabel="share of pairs", title="Pairs the child-content filter keeps and removes, by rule")
    axis.invert_yaxis()
    axis.legend(ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    link = save_figure(figure, out / "policy_filter.png")
    header = ["table", "pairs", "text only", "image only", "both", "removed", "kept", "images", "images emptied"]
    rows = [
        [name, c.total, c.text_only, c.image_only, c.both, c.removed, c.remaining, c.images_total, c.images_removed]
        for name, c in result.tables()
    ]
    test_queries = set(dataset.test_queries["query_id"])
    test_images = set(dataset.test_queries["image"])
    return (
        f"## Child-content policy\n\n![policy filter]({link})\n\n"
        "Text rule: the caption is blocked by the policy lexicon. Image rule: the image is a child image "
        "(one of its own captions is blocked, or the crowd confirmed a blocked caption for it). "
        "Images emptied: images left with no pair in that table.\n\n"
        + markdown_table(header, rows)
        + f"\n\nBlocked captions: {len(result.blocked_queries)} "
        f"({len(result.blocked_queries & test_queries)} of {len(test_queries)} test queries). "
        f"Child images: {len(result.child_images)} "
        f"({len(result.child_images & test_images)} of {len(test_images)} test images)."
    )
