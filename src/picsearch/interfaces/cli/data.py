"""Commands: `validate` (check a dataset folder) and `report data` (the preliminary data review)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from picsearch.data.validate import ValidationReport, validate_dataset
from picsearch.interfaces.cli.common import DataOption, console, data_dir, say, user_errors


def validate(data: DataOption = None) -> None:
    """Check every table and image of the dataset; list all problems; exit 2 if there are any."""
    root = data_dir(data)
    started = time.perf_counter()
    report = validate_dataset(root)
    _print_report(report, time.perf_counter() - started)
    if not report.ok:
        raise typer.Exit(2)


def warn_about_problems(root: Path) -> None:
    """Check the dataset at ``root`` as `validate` does and list each problem on stderr as a warning."""
    report = validate_dataset(root)
    for problem in report.problems:
        say(("warning:", "yellow"), " ", str(problem), err=True)
    if report.problems:
        say(("warning:", "yellow"), f" {len(report.problems)} problem(s) in {root}, listed above", err=True)


def _print_report(report: ValidationReport, seconds: float) -> None:
    table = Table(title=f"Dataset {report.root}", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, value in report.summary.items():
        table.add_row(name, str(value))
    console.print(table)
    for problem in report.problems:
        say(str(problem))
    verdict = ("clean", "green") if report.ok else (f"{len(report.problems)} problem(s)", "bold red")
    say(verdict, f" (checked in {seconds:.1f} s)")


def report_data(
    out: Annotated[Path, typer.Option("--out", help="Folder to write data_report.md and its plots into.")],
    data: DataOption = None,
) -> None:
    """Write the data review (Markdown + PNG plots) to --out."""
    from picsearch.reports.data_report import write_data_report

    root = data_dir(data)
    with user_errors():
        path = write_data_report(root, out)
    console.print(f"wrote {path}")


def register(app: typer.Typer, report_app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("validate")(validate)
    report_app.command("data")(report_data)
