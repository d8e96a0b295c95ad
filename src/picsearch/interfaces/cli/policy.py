"""Command: `picsearch policy` -- check queries against the child-content policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from picsearch.interfaces.cli.common import fail, say
from picsearch.policy import PolicyDecision, check


def _read_queries(path: Path) -> list[str]:
    """Non-blank lines of ``path``; a missing or unreadable file is a one-line error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(f"{path}: file not found") from None
    except IsADirectoryError:
        raise fail(f"{path}: is a folder, expected a text file with one query a line") from None
    except UnicodeDecodeError as exc:
        raise fail(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _show(decision: PolicyDecision, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"text": decision.text, "blocked": decision.blocked, "matched": decision.matched},
                              ensure_ascii=False))
    elif decision.blocked:
        say(f"BLOCKED  {decision.text}  (matched: {', '.join(decision.matched)})")
    else:
        say(f"allowed  {decision.text}")


def policy(
    text: Annotated[Optional[str], typer.Argument(help="Query to check.")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", help="Text file, one query a line.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines: text, blocked, matched.")] = False,
) -> None:
    """Say whether queries are about children (blocked: the user gets the disclaimer instead of pictures)."""
    if (text is None) == (file is None):
        raise fail("give a query TEXT or --file FILE, not both")
    for query in [text] if text is not None else _read_queries(file):
        _show(check(query), as_json)


def register(app: typer.Typer, report_app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("policy")(policy)
