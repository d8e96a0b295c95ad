"""The `picsearch` command: one sub-module per concern registers its commands here."""

from __future__ import annotations

from typing import Annotated, Optional

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

# train's models are small: one compute thread each and one fit per CPU (`runtime.model_workers`) beats every thread
# inside one fit (`bench.train_time`); so does the demo, which trains, and which then also embeds one batch per CPU.
# index, which embeds images only, too: one image batch per CPU was 1.19x faster on a 2-core VNNI machine and 0.98x
# on an older one. embed too where texts run in bfloat16 (`sentence.batch_backend`): there one text batch per CPU
# was 1.53x faster than one at a time on both threads; in float32 it was 0.99x and, on the older machine, 0.76x, so
# there embed keeps every thread for one batch (`bench.embed --workers`). serve sets its own (`serve --threads`).
ONE_THREAD = {"train", "demo", "index"}
OWN_THREADS = {"serve"}


def one_thread(command: str | None) -> bool:
    """Whether ``command`` runs its models one call per CPU at one compute thread each by default."""
    from picsearch.encoders.sentence import batch_backend

    return command in ONE_THREAD or (command == "embed" and batch_backend() == "torch-bf16")


@app.callback()
def compute_threads(
    ctx: typer.Context,
    threads: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="Compute threads (torch, BLAS, ONNX Runtime); default one per CPU, 1 for train, demo and index "
            "(and embed where texts run in bfloat16).",
        ),
    ] = None,
) -> None:
    """Set the compute threads once, here, before any command runs a model."""
    from picsearch.runtime import set_threads

    if ctx.invoked_subcommand not in OWN_THREADS:
        set_threads(threads or (1 if one_thread(ctx.invoked_subcommand) else None))


for module in (data, policy, embed, train, search, serve, review):
    module.register(app, report_app)


def main() -> None:
    """Console-script entry point."""
    app()
