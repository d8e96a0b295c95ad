"""Options and error handling shared by the command modules."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console

from picsearch.config import resolve_data_dir

console = Console()
err_console = Console(stderr=True)

DataOption = Annotated[
    Optional[Path],
    typer.Option("--data", help="Dataset folder (else $PICSEARCH_DATA, else /datasets/image_search)."),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def data_dir(explicit: Optional[Path]) -> Path:
    """Resolve the dataset folder or exit 2 with the one-line message naming all three places."""
    with user_errors():
        return resolve_data_dir(explicit)


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn expected failures (bad files, missing folders, ...) into one-line errors, exit 2."""
    try:
        yield
    except (FileNotFoundError, ValueError, KeyError, *kinds) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise fail(str(message)) from exc
