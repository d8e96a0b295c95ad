"""Command: `picsearch serve` — the search page and JSON API over an index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from picsearch.interfaces.cli.common import say, user_errors
from picsearch.interfaces.web.batcher import MAX_BATCH, MAX_QUEUE
from picsearch.interfaces.web.server import MAX_CONNECTIONS


def register(app: typer.Typer, report_app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(serve)


def serve(
    index: Annotated[Path, typer.Option("--index", help="Index folder written by `picsearch index`.")],
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes the page to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    thumbs: Annotated[
        Optional[Path], typer.Option(help="Thumbnail cache folder (default: INDEX/thumbs).")
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="Compute threads of the server (ONNX Runtime, torch, BLAS). On a busy CPU spinning thread pools "
            "stall each other: one thread served 16x more searches/s on 2 cores.",
        ),
    ] = 1,
    review_token_file: Annotated[
        Optional[Path],
        typer.Option(
            "--review-token-file",
            help="Enable the review page at /review for operators holding the token in this file "
            "(at least 16 characters). Without it the page and its API do not exist.",
        ),
    ] = None,
    query_cache: Annotated[
        int, typer.Option(min=0, help="Remember the vectors of this many recent queries (0: off).")
    ] = 1024,
    max_batch: Annotated[int, typer.Option(min=1, help="Concurrent searches answered by one encoder call.")] = MAX_BATCH,
    max_queue: Annotated[
        int, typer.Option(min=1, help="Searches that may wait; beyond, 503 with Retry-After.")
    ] = MAX_QUEUE,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections; beyond, 503 at once.")
    ] = MAX_CONNECTIONS,
) -> None:
    """Serve the search page at http://HOST:PORT/ (JSON API at /api/search, docs at /docs)."""
    import uvicorn

    from picsearch.index.desk import ReviewDesk
    from picsearch.index.review import ReviewLog
    from picsearch.interfaces.web import create_app
    from picsearch.interfaces.web.batcher import SearchBatcher
    from picsearch.interfaces.web.review import enable_review, load_token
    from picsearch.interfaces.web.server import server_config
    from picsearch.runtime import set_threads
    from picsearch.search import Searcher

    set_threads(threads)
    with user_errors():
        token = load_token(review_token_file) if review_token_file else None
        searcher = Searcher.open(index, query_cache=query_cache)
    batcher = SearchBatcher(searcher, max_batch=max_batch, max_queue=max_queue)
    app = create_app(searcher, thumbs or index / "thumbs", batcher)
    if token:
        enable_review(app, ReviewDesk(searcher.index, ReviewLog.of_index(index)), token)
        say("review page at ", (f"http://{host}:{port}/review", "bold"), f" (token from {review_token_file})")
    say(f"picsearch: {len(searcher)} images at ", (f"http://{host}:{port}/", "bold"), " (Ctrl-C stops)")
    uvicorn.Server(server_config(app, host, port, max_connections)).run()
