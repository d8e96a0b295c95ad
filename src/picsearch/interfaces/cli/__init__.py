"""The `picsearch` command: one sub-module per concern registers its commands here."""

from __future__ import annotations

import typer

from picsearch.interfaces.cli import data, embed, policy, review, search, serve, train

app = typer.Typer(
    name="picsearch",
    help="Text-to-image search with a relevance score in [0, 1] trained on human judgements.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
report_app = typer.Typer(help="Write reports (Markdown + PNG plots).", no_args_is_help=True)
app.add_typer(report_app, name="report")

for module in (data, policy, embed, train, search, serve, review):
    module.register(app, report_app)


def main() -> None:
    """Console-script entry point."""
    app()
