"""Options and error handling shared by the command modules."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.text import Text

from picsearch.config import resolve_data_dir

# Markup, emoji codes and highlighting are off: every string printed is shown as it is, so user text
# (queries, file names, data cells, "train_dataset.csv:100:") is never parsed. Style goes through `say`.
console = Console(markup=False, emoji=False, highlight=False)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False)

Part = str | tuple[str, str]
"""A piece of a printed line: plain text, or (text, rich style)."""

DataOption = Annotated[
    Optional[Path],
    typer.Option("--data", help="Dataset folder (else $PICSEARCH_DATA, else /datasets/image_search)."),
]


def say(*parts: Part, err: bool = False) -> None:
    """Print one line on stdout (stderr with ``err``); plain parts verbatim, (text, style) parts styled."""
    (err_console if err else console).print(Text.assemble(*parts), soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    say(("error:", "bold red"), " ", message, err=True)
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
