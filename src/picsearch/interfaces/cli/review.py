"""Commands: `picsearch review` (the human review queue and decisions) and `picsearch flags` (audit listing)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from picsearch.interfaces.cli.common import console, fail, say, user_errors
from picsearch.interfaces.cli.search import IndexOption, JsonOption

DEFAULT_SHOWN = 50


def review(
    index: IndexOption,
    clear: Annotated[Optional[str], typer.Option("--clear", help="Clear the flag of this photo id (a false alarm).")] = None,
    flag: Annotated[Optional[str], typer.Option("--flag", help="Flag this photo id (a child photo the detector missed).")] = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why (required with --clear / --flag).")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="Who decides (default: the OS user).")] = None,
    duplicate_cosine: Annotated[
        float, typer.Option("--duplicate-cosine", min=0.0, max=1.0, help="Group photos at least this similar.")
    ] = 0.95,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Queue rows to print (the count covers all).")] = DEFAULT_SHOWN,
    as_json: JsonOption = False,
) -> None:
    """List flagged photos to review, most likely harmless first, or record a decision with --clear / --flag."""
    from picsearch.index.desk import ReviewDesk

    if clear and flag:
        raise fail("give --clear ID or --flag ID, not both")
    with user_errors():
        desk = ReviewDesk.open(index)
        if clear or flag:
            if not reason:
                raise fail("--reason TEXT is required with --clear / --flag (it goes into the audit log)")
            decision = desk.decide(clear or flag, "clear" if clear else "flag", reason, by or getpass.getuser())
            _print_decision(decision.to_json(), desk.path_of(decision.id), as_json)
            return
        queue = desk.queue(duplicate_cosine)
    if as_json:
        print(json.dumps(queue.to_json(), ensure_ascii=False))
        return
    console.print(_queue_table(queue, limit))
    say(f"{queue.remaining} flagged photos left to review in {queue.groups} groups; {queue.reviewed} reviewed")


def _print_decision(record: dict, path: Path, as_json: bool) -> None:
    if as_json:
        print(json.dumps(record, ensure_ascii=False))
        return
    effect = "shown in search from now on" if record["decision"] == "clear" else "hidden from search from now on"
    say(f"{record['decision']}: {record['id']} ({path}) by {record['who']}: {effect}")


def _queue_table(queue, limit: int) -> Table:
    table = Table(title="Review queue (most likely harmless first)", title_justify="left")
    for name, justify in (("#", "right"), ("group", "right"), ("child p", "right"), ("id", "left"), ("path", "left")):
        table.add_column(name, justify=justify)
    for rank, item in enumerate(queue.items[:limit], start=1):
        table.add_row(str(rank), str(item.group), f"{item.probability:.3f}", item.id, item.path)
    return table


def flags(index: IndexOption, as_json: JsonOption = False) -> None:
    """Every indexed photo with its flag now, the detector's probability and the current review decision."""
    from picsearch.index.desk import ReviewDesk

    with user_errors():
        records = ReviewDesk.open(index).flags()
    if as_json:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
        return
    table = Table(title=f"{sum(r['flagged'] for r in records)} of {len(records)} photos hidden", title_justify="left")
    for name in ("flagged", "child p", "review", "path"):
        table.add_column(name)
    for record in records:
        decision = record["review"]["decision"] if record["review"] else ""
        table.add_row("yes" if record["flagged"] else "", f"{record['probability']:.3f}", decision, record["path"])
    console.print(table)


def register(app: typer.Typer, report_app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("review")(review)
    app.command("flags")(flags)
