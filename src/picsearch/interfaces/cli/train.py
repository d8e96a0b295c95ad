"""Commands: `train` (compare, select, save the relevance models), `report models` and `report child`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.table import Table

from picsearch.config import DEFAULT_ARTIFACTS, default_cache_dir
from picsearch.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_MULTILINGUAL_ENCODER, DEFAULT_TEXT_ENCODER
from picsearch.interfaces.cli.common import DataOption, console, data_dir, say, user_errors

ArtifactsOption = Annotated[Path, typer.Option("--out", help="Artifacts folder to write.")]


def train(
    data: DataOption = None,
    out: ArtifactsOption = DEFAULT_ARTIFACTS,
    image_encoder: Annotated[str, typer.Option(help="Image encoder registry name.")] = DEFAULT_IMAGE_ENCODER,
    text_encoder: Annotated[str, typer.Option(help="Text encoder registry name.")] = DEFAULT_TEXT_ENCODER,
    cache: Annotated[Optional[Path], typer.Option("--cache", help="Embedding cache (default: OUT/cache).")] = None,
    folds: Annotated[int, typer.Option(help="Grouped CV folds.")] = 5,
    multilingual: Annotated[
        str, typer.Option(help="Encoder for queries in other scripts (Russian...), mapped into the text space; 'none': off.")
    ] = DEFAULT_MULTILINGUAL_ENCODER,
    workers: Annotated[
        Optional[int],
        typer.Option(min=1, help="Models fitted at once, one compute thread each (default: CPUs / --threads)."),
    ] = None,
) -> None:
    """Train and compare every relevance model on image-disjoint folds, select by CV, refit, save."""
    from picsearch.data import load_dataset
    from picsearch.encoders import EncoderUnavailableError
    from picsearch.models.train import TrainConfig, fit_from_dataset, save_training

    root = data_dir(data)
    with user_errors(EncoderUnavailableError):
        dataset = load_dataset(root)
        result = fit_from_dataset(
            dataset, image_encoder, text_encoder, cache or default_cache_dir(out), TrainConfig(
                folds=folds, multilingual=None if multilingual == "none" else multilingual, workers=workers
            ),
        )
        save_training(out, dataset, result)
    _print_models(result.metrics)
    say("selected ", (result.metrics["selected"], "bold"), f"; artifacts in {out}")


def _print_models(metrics: dict) -> None:
    from picsearch.models.card import MODEL_COLUMNS, model_table

    table = Table(*MODEL_COLUMNS)
    for row in model_table(metrics):
        table.add_row(*row)
    console.print(table)


ReportModelOption = Annotated[Path, typer.Option("--model", help="Artifacts folder written by `picsearch train`.")]
ReportOutOption = Annotated[Optional[Path], typer.Option("--out", help="Report folder (default: MODEL/report).")]


def report_models(model: ReportModelOption = DEFAULT_ARTIFACTS, out: ReportOutOption = None, data: DataOption = None) -> None:
    """Comparison table (Markdown) and plots: predicted vs true, reliability, error by expert agreement."""
    from picsearch.reports.models_report import write_models_report

    _write_report(write_models_report, model, out, data)


def report_child(model: ReportModelOption = DEFAULT_ARTIFACTS, out: ReportOutOption = None, data: DataOption = None) -> None:
    """The child detector's trade-off: precision-recall, share hidden, CV misses, a sheet of false alarms."""
    from picsearch.reports.child_report import write_child_report

    _write_report(write_child_report, model, out, data)


def _write_report(writer: Callable[[Path, Any, Path], Path], model: Path, out: Optional[Path], data: Optional[Path]) -> None:
    from picsearch.data import load_dataset

    root = data_dir(data)
    with user_errors():
        path = writer(model, load_dataset(root), out or model / "report")
    say(f"wrote {path}")


def register(app: typer.Typer, report_app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("train")(train)
    report_app.command("models")(report_models)
    report_app.command("child")(report_child)
