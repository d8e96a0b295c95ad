"""Commands: index (build/update a gallery index), search, evaluate, demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from picsearch.config import DEFAULT_ARTIFACTS
from picsearch.interfaces.cli.common import DataOption, console, data_dir, fail, say, user_errors

if TYPE_CHECKING:
    from picsearch.search import SearchResult

IndexOption = Annotated[Path, typer.Option("--index", help="Index folder written by `picsearch index`.")]
ModelOption = Annotated[
    Optional[Path], typer.Option("--model", help="Model artifacts (default: the ones the index was built with).")
]
KOption = Annotated[int, typer.Option("--k", help="Number of images to return (>= 1).")]
MinScoreOption = Annotated[float, typer.Option("--min-score", help="Drop images scoring below this (0..1).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (JSON lines with --file).")]
CandidatesOption = Annotated[
    Optional[int],
    typer.Option("--candidates", min=1, help="Images reranked per query (default: as validated in training)."),
]


def index_command(
    gallery: Annotated[Path, typer.Argument(help="Folder of photos (searched recursively).")],
    model: Annotated[Path, typer.Option("--model", help="Model artifacts folder from `picsearch train`.")],
    out: Annotated[Path, typer.Option("--out", help="Index folder to create or update.")],
    cache: Annotated[Optional[Path], typer.Option("--cache", help="Embedding cache (default MODEL/cache).")] = None,
    vectors: Annotated[
        Optional[str],
        typer.Option(
            "--vectors",
            help="How the joint vectors are stored: int4 (a scale per row and matcher block, column weights; "
            "1.3 KB a photo), int8 (2.6 KB), float16 or float32. Default: the existing index's, else int4.",
        ),
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Fail (exit 2) instead of waiting while another process updates --out."),
    ] = False,
    store: Annotated[
        Optional[str],
        typer.Option(
            "--store",
            help="Vector store: exact, ann (FAISS), milvus (Milvus Lite in --out) or milvus://HOST:PORT "
            "(default: the index's current one, else exact). Changing it moves the stored vectors; nothing is embedded.",
        ),
    ] = None,
    milvus_uri: Annotated[
        Optional[str], typer.Option("--milvus-uri", help="Milvus server for --store milvus, e.g. http://HOST:19530.")
    ] = None,
) -> None:
    """Index a gallery; a second run embeds only added or changed photos and drops removed ones.

    One process at a time updates an index folder: a second run waits for the first (saying which
    pid holds the lock), or with --no-wait fails naming it. Files that cannot be indexed (unreadable,
    a name that is not UTF-8, a symlink loop or one leading out of the gallery, a shape no photo has)
    are skipped and named.
    """
    from picsearch.index import IndexLockedError, build_index, parse_store

    def waiting(message: str) -> None:
        say(message, err=True)

    with user_errors(IndexLockedError):
        spec = parse_store(store, milvus_uri)
        report = build_index(
            gallery, model, out, cache, vector_dtype=vectors, wait=not no_wait,
            on_wait=waiting, store=spec,
        )
    print_update(report)


def print_update(report) -> None:
    """Say what an index run did, listing changed, removed and skipped files."""
    for label, paths in (("added", report.added), ("changed", report.changed), ("removed", report.removed)):
        if paths and len(paths) <= 20:
            say(f"{label}: {', '.join(paths)}")
    for note in report.notes:
        say(note)
    for _, reason in report.skipped:
        say(("skipped", "yellow"), " ", reason)
    say(report.summary())


def search_command(
    query: Annotated[Optional[str], typer.Argument(help="Text query.")] = None,
    index: IndexOption = Path("index"),
    file: Annotated[Optional[Path], typer.Option("--file", help="One query per line (blank lines ignored).")] = None,
    k: KOption = 5,
    min_score: MinScoreOption = 0.0,
    as_json: JsonOption = False,
    model: ModelOption = None,
    candidates: CandidatesOption = None,
) -> None:
    """Find the best images for a query; a query about children gets the legal disclaimer instead."""
    from picsearch.search import Searcher, check_request

    if (query is None) == (file is None):
        raise fail("give either QUERY or --file FILE")
    with user_errors():
        queries = [query] if file is None else read_queries(file)
        for text in queries:
            check_request(text, k, min_score)
        searcher = Searcher.open(index, model, candidates)
        results = searcher.search_many(queries, k, min_score)
    for result in results:
        if as_json:
            print(json.dumps(result.to_json(), ensure_ascii=False))
        else:
            console.print(result_table(result))


def read_queries(path: Path) -> list[str]:
    """Non-blank lines of ``path``, UTF-8 (a byte-order mark is dropped)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: query file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}: line {line}: not UTF-8 text ({exc.reason}); save the file as UTF-8") from exc
    queries = [line.strip() for line in text.splitlines() if line.strip()]
    if not queries:
        raise ValueError(f"{path}: no queries (file is empty)")
    return queries


def result_table(result: SearchResult) -> Table:
    """A rich table of one query's hits, or its disclaimer."""
    table = Table(title=result.query, title_justify="left", show_lines=False)
    if result.blocked:
        table.add_column("blocked")
        table.add_row(Text(result.disclaimer, style="yellow"))
        return table
    for name, justify in (("#", "right"), ("score", "right"), ("image", "left")):
        table.add_column(name, justify=justify)
    for rank, hit in enumerate(result.hits, start=1):
        table.add_row(str(rank), f"{hit.score:.3f}", Path(*hit.path.parts[-2:]).as_posix())
    if not result.hits:
        table.add_row("", "", Text("no image reaches --min-score", style="dim"))
    elif result.weak:
        from picsearch.search import WEAK_NOTE

        table.caption = WEAK_NOTE
    return table


def evaluate_command(
    queries: Annotated[Path, typer.Option("--queries", help="Queries in test_queries.csv format.")],
    index: IndexOption = Path("index"),
    as_json: JsonOption = False,
    model: ModelOption = None,
    candidates: CandidatesOption = None,
) -> None:
    """Recall@1/5/10, MRR and median rank: the raw model (policy off), then with policy and child filter."""
    from picsearch.data.tables import load_test_queries
    from picsearch.search import Searcher
    from picsearch.search.evaluate import evaluate

    with user_errors():
        table = load_test_queries(queries)
        report = evaluate(Searcher.open(index, model, candidates), table)
    if as_json:
        print(json.dumps(report, indent=1, ensure_ascii=False))
        return
    console.print(evaluation_table(report))
    say(f"ranking: {report['ranking']}")


def evaluation_table(report: dict) -> Table:
    """Raw model vs with policy: one column each."""
    table = Table(title=f"{report['n_queries']} queries over {report['gallery']} images")
    table.add_column("metric")
    columns = (("raw model", report), ("with policy", report["with_policy"]), ("answerable", report["answerable"]))
    for name, _ in columns:
        table.add_column(name, justify="right")
    for metric in ("n_queries", "recall@1", "recall@5", "recall@10", "mrr", "median_rank"):
        table.add_row(metric, *(str(part[metric]) for _, part in columns))
    table.add_row("blocked", "", str(report["blocked"]), "")
    table.add_row("hidden_targets", "", str(report["hidden_targets"]), "")
    weak = report["weak"]  # answers whose best image scores under 1/3
    table.add_row("weak answers, target hidden", "", str(weak["share_target_hidden"]), "")
    table.add_row("weak answers", "", "", str(weak["share"]))
    table.add_row("recall@1 weak / others", "", "", f"{weak['recall@1_weak']} / {weak['recall@1_others']}")
    return table


def demo_command(
    data: DataOption = None,
    artifacts: Annotated[Path, typer.Option("--artifacts", help="Model artifacts (trained if missing).")] = DEFAULT_ARTIFACTS,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default ARTIFACTS/demo).")] = None,
    queries: Annotated[Optional[list[str]], typer.Option("--queries", help="Your own queries (repeatable).")] = None,
    n: Annotated[int, typer.Option("--n", help="Random test queries to show.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed for picking the queries.")] = 0,
    k: KOption = 5,
    serve_page: Annotated[
        bool, typer.Option("--serve", help="Then serve the search page over the demo's index (Ctrl-C stops).")
    ] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port of --serve (on 127.0.0.1).")] = 8000,
) -> None:
    """Train (or reuse) the models, index test_images/, and show the best images for test queries."""
    from picsearch.interfaces.cli.serve import serve
    from picsearch.reports.demo import run_demo

    root = data_dir(data)
    out = out or artifacts / "demo"
    with user_errors():
        demo = run_demo(root, artifacts, out, queries, n=n, seed=seed, k=k, log=console.print)
    for result in demo.results:
        console.print(result_table(result))
    say(f"HTML page: {demo.html}\nPNG grid:  {demo.grid}")
    if serve_page:
        serve(index=out / "index", port=port)


def register(app: typer.Typer, report_app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("index")(index_command)
    app.command("search")(search_command)
    app.command("evaluate")(evaluate_command)
    app.command("demo")(demo_command)
