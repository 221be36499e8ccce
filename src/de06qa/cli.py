"""The `de06qa` command: index, ask (one question, a file of questions, or a prompt), serve, eval."""

from __future__ import annotations

import json
import logging
import os
import select
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from de06qa.config import Settings
from de06qa.dated import shown
from de06qa.errors import BadQuery, De06qaError

if TYPE_CHECKING:
    from de06qa.filters import Filters

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Question answering over Vietnamese news about Đề án 06.",
)
# Wrap at the terminal's width, 80 columns when output is not a terminal.
out = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 80)
err = Console(stderr=True, highlight=False)

IndexDirOpt = Annotated[
    Path | None,
    typer.Option("--index-dir", metavar="DIR", help="Index folder (env DE06QA_INDEX_DIR; default index/)"),
]


BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", metavar="NAME", help="embedded (default) or milvus [env DE06QA_BACKEND]"),
]
MilvusUriOpt = Annotated[
    str | None,
    typer.Option(
        "--milvus-uri",
        metavar="URI",
        help="Milvus for --backend milvus: a Milvus Lite file (milvus.db) or http://host:19530 [env DE06QA_MILVUS_URI]",
    ),
]
CollectionOpt = Annotated[
    str | None,
    typer.Option(
        "--collection", metavar="NAME", help="Milvus collection name (default de06qa) [env DE06QA_COLLECTION]"
    ),
]
ProvinceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--province",
        metavar="NAME",
        help="Only articles about this province (repeatable; a 2025 name such as 'Tuyên Quang' covers its former provinces)",
    ),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DATE",
        help="Only articles published on or after DATE (YYYY-MM-DD, YYYY-MM or YYYY)",
    ),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="DATE",
        help="Only articles published on or before DATE (YYYY-MM-DD, YYYY-MM or YYYY)",
    ),
]
SortOpt = Annotated[
    str,
    typer.Option(
        "--sort", metavar="ORDER", help="relevance, or date: the k most relevant passages, newest first"
    ),
]


def _filters(province: list[str] | None, since: str | None, until: str | None) -> Filters:
    from de06qa.filters import empty_range, parse_filters

    f = parse_filters(province or (), since, until)
    if empty_range(f):
        raise BadQuery(f"--since {f.since} is after --until {f.until}; swap them")
    return f


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _quiet_libraries() -> None:
    # The libraries' own progress bars and warnings are noise for a CLI user.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in ("bm25s", "sentence_transformers", "transformers", "faiss"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _settings(
    index_dir: Path | None,
    backend: str | None = None,
    milvus_uri: str | None = None,
    collection: str | None = None,
) -> Settings:
    return Settings.from_env().with_(
        index_dir=index_dir, backend=backend, milvus_uri=milvus_uri, collection=collection
    )


class _Reporter:
    """Build progress: a bar with counts and ETA on a terminal; plain log lines otherwise (CI)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._next_pct = 0
        self._t0 = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "read":
            err.print(f"Read {done} of {_plural(total, 'file')}")
            return
        if total == 0:
            return
        if not done:
            self._t0 = time.perf_counter()
            return
        if self.tty:
            if self._bar is None:
                self._bar = Progress(
                    TextColumn("Embedding articles"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=err, transient=True,
                )  # fmt: skip
                self._bar.start()
                self._task = self._bar.add_task("embed", total=total)
            assert self._task is not None
            self._bar.update(self._task, completed=done)
            if done >= total:
                self._bar.stop()
        elif 100 * done // total >= self._next_pct:
            took = time.perf_counter() - self._t0
            rate = done / took if took > 0 else 0.0
            eta = f", about {(total - done) / rate:.0f} s left" if rate and done < total else ""
            err.print(f"embedded {done}/{total} articles ({100 * done // total}%, {rate:.1f}/s{eta})")
            self._next_pct = 100 * done // total // 10 * 10 + 10


def _build(
    settings: Settings,
    source: Path,
    rebuild: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
) -> int:
    """Build or update the index (embedding on a Dask cluster when asked); returns the number of
    skipped files."""
    from de06qa.embedding import create_embedder
    from de06qa.indexing import build_index

    embedder = create_embedder(settings)
    if workers or scheduler:
        from de06qa.distributed import cluster_embedder

        where = scheduler or f"a local Dask cluster of {_plural(workers or 1, 'worker')}"
        err.print(f"Embedding on {where}")
        with cluster_embedder(embedder, settings, scheduler, workers) as spread:
            s = build_index(settings, source, spread, _Reporter(), rebuild=rebuild)
    else:
        s = build_index(settings, source, embedder, _Reporter(), rebuild=rebuild)
    change = f"{s.embedded} new or changed, {s.reused} unchanged, {s.removed} removed"
    if not s.changed:
        change += "; the index was already up to date"
    err.print(
        f"Indexed {_plural(s.documents, 'document')} ({change}) into {_plural(s.chunks, 'passage')} "
        f"({_plural(s.sentences, 'sentence')}) in {s.seconds:.1f} s -> {s.target}",
        soft_wrap=True,
    )
    for sk in s.skipped:
        err.print(f"  skipped {sk.path}: {sk.reason}", soft_wrap=True)
    return len(s.skipped)


@app.command()
def index(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of articles: .txt .md .html .htm .pdf .docx, read recursively [default: seeds/]"
        ),
    ] = None,
    index_dir: IndexDirOpt = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Re-embed every article instead of only new or changed ones")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            metavar="N",
            min=1,
            max=256,
            help="Embed on a local Dask cluster of N worker processes",
        ),
    ] = None,
    dask_scheduler: Annotated[
        str | None,
        typer.Option(
            "--dask-scheduler", metavar="URL", help="Embed on the Dask cluster at URL (tcp://host:8786)"
        ),
    ] = None,
    backend: BackendOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Build or update the index from a folder of articles.

    Only new or changed articles are embedded; deleted ones are removed. Exit status: 0 when every
    file was indexed, 3 when some were skipped (each is listed with its reason), 2 on an error or
    when nothing could be indexed (the previous index is left as it was).

    \b
    Examples:
      de06qa index seeds --index-dir index
      de06qa index reports/ --workers 4                          (embedding on 4 local processes)
      de06qa index reports/ --dask-scheduler tcp://10.0.0.5:8786   (on a Dask cluster)
    """
    settings = _settings(index_dir, backend, milvus_uri, collection)
    if _build(settings, path or settings.seeds_dir, rebuild, workers, dask_scheduler):
        raise typer.Exit(3)


@app.command()
def fetch(
    into: Annotated[Path, typer.Option("--into", metavar="FOLDER", help="Where the pages are saved")],
    urls: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[URL]...", help="Article pages, RSS/Atom feeds or sitemaps (sitemap indexes followed)"
        ),
    ] = None,
    urls_file: Annotated[
        Path | None, typer.Option("--urls", metavar="FILE", help="More URLs, one a line (# starts a comment)")
    ] = None,
    delay: Annotated[
        float, typer.Option("--delay", min=0.0, help="Seconds between two requests to one host")
    ] = 1.0,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds a request may take")] = 20.0,
    max_mb: Annotated[float, typer.Option("--max-mb", min=0.01, help="Largest page kept, in MB")] = 5.0,
    retries: Annotated[int, typer.Option("--retries", min=0, max=10, help="Tries again on 429 and 5xx")] = 3,
) -> None:
    """Save web articles into a folder that `de06qa index FOLDER` reads, each with its address,
    title and published date (the citation then links to the page).

    robots.txt is honoured, requests to one host are --delay seconds apart, 429/5xx are retried
    with backoff; a page fetched before is asked for only if changed (If-None-Match /
    If-Modified-Since). Exit status: 0 when every URL was saved or unchanged, 3 when some were
    skipped (each listed with its reason), 2 on an error.

    \b
    Examples:
      de06qa fetch https://example.org/rss/de-an-06.rss --into articles
      de06qa fetch --urls sources.txt --into articles && de06qa index articles
    """
    from de06qa.fetch import Fetcher

    given = list(urls or [])
    if urls_file is not None:
        try:
            lines = urls_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise BadQuery(
                f"cannot read the URL list {urls_file} ({getattr(e, 'strerror', None) or e})"
            ) from e
        given += [u for x in lines if (u := x.split("#", 1)[0].strip())]
    if not given:
        raise BadQuery("no URL given; pass article, feed or sitemap URLs, or --urls FILE")
    f = Fetcher(into, delay, timeout, int(max_mb * 1e6), retries, say=lambda m: err.print(m, soft_wrap=True))
    try:
        s = f.run(given)
    finally:
        f.close()
    out.print(
        f"Saved {_plural(len(s.saved), 'page')} into {into}, {len(s.unchanged)} unchanged, "
        f"{len(s.skipped)} skipped ({s.listed} links from feeds and sitemaps)",
        soft_wrap=True,
    )
    if s.skipped:
        raise typer.Exit(3)


def _build_if_missing(settings: Settings) -> None:
    """First use: with no index yet in the default index/ and the bundled seeds present, build it
    (ask, serve, eval). Another folder with no index is an error: a typo in --index-dir must not
    quietly build the seeds there."""
    from de06qa.errors import IndexMissing
    from de06qa.store import MANIFEST

    if settings.backend != "embedded" or (settings.index_dir / MANIFEST).exists():
        return
    if settings.index_dir != Settings().index_dir:
        raise IndexMissing(
            f"no index in {settings.index_dir}; build one with: de06qa index FOLDER --index-dir {settings.index_dir}"
        )
    if settings.seeds_dir.is_dir():
        err.print(f"No index in {settings.index_dir} yet: building it from {settings.seeds_dir}/ (once).")
        _build(settings, settings.seeds_dir)


def _open(settings: Settings):  # type: ignore[no-untyped-def]
    from de06qa.search import open_searcher

    _build_if_missing(settings)
    return open_searcher(settings)


def _say(text: Text, indent: int = 0) -> None:
    """Print wrapped to the console's width, each line indented and without trailing spaces (rich
    pads or leaves a space at each break, which lands in a file or a pipe)."""
    for line in text.wrap(out, max(out.width - indent, 20)):
        line.rstrip()
        out.print(Text(" " * indent) + line)


# Where an answer's date was read, when not its own sentence.
_FROM = {"sentence": "", "paragraph": ", from the paragraph", "article": ", publication date", None: ""}


def _print_result(d: dict) -> None:  # type: ignore[type-arg]
    """The answer, then the passages grouped by article (articles in the order of their best
    passage, each passage with its rank, page and position)."""
    if d["read_as"] != d["query"]:
        _say(Text(f"(read as: {d['read_as']})", "dim"))
    a = d["answer"]
    if a:
        sentence = Text(a["sentence"])
        off = a["start"] - a["sentence_start"]
        sentence.stylize("bold black on yellow", off, off + len(a["text"]))
        when = f"as of {shown(a['as_of'])}{_FROM[a['as_of_from']]} · " if a["as_of"] else ""
        out.print(
            Text.assemble(
                ("Answer: ", "bold green"), (a["text"], "bold"), f"  ({when}confidence {d['confidence']:.2f})"
            )
        )
        _say(sentence)
        if a["conflict"]:
            _say(Text(f"Reports disagree on the figure for {shown(a['as_of'])}: see below.", "bold red"))
        if a["others"]:
            _say(Text("Other reports, newest first:", "dim"))
            for o in a["others"]:
                date = f"{shown(o['as_of'])}{_FROM[o['as_of_from']]}" if o["as_of"] else "undated"
                _say(
                    Text.assemble(
                        (o["text"], "bold"),
                        f"  ({date}) · {o['title'] or o['doc_id']} ",
                        (f"chars {o['start']}–{o['end']}", "dim"),
                    ),
                    indent=2,
                )
    elif d["results"]:
        out.print(
            Text.assemble(
                ("No answer in the indexed articles", "bold red"),
                f" (confidence {d['confidence']:.2f}); closest passages:",
            )
        )
    else:
        out.print(Text("No passage matches the filters.", "bold red"))
    f = d["filters"]
    if f["undated_excluded"]:
        _say(
            Text(
                f"({_plural(f['undated_excluded'], 'article')} without a date left out by the date filter)",
                "dim",
            )
        )
    groups: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for r in d["results"]:
        groups.setdefault(r["doc_id"], []).append(r)
    for rs in groups.values():
        out.print()
        first = rs[0]
        _say(Text(first["title"], "bold"))
        _say(Text(" · ".join(x for x in (first["date"], first["source"]) if x), "dim"), indent=2)
        for r in rs:
            page = f"tr. {r['page']} · " if r.get("page") else ""
            _say(
                Text.assemble(
                    (f"[{r['rank']}] ", "bold cyan"), (f"{page}chars {r['start']}–{r['end']}", "dim")
                ),
                indent=2,
            )
            body = Text(r["text"].replace("\n", " "))
            if a and a["doc_id"] == r["doc_id"] and r["start"] <= a["start"] and a["end"] <= r["end"]:
                o = a["start"] - r["start"]
                body.stylize("bold black on yellow", o, o + len(a["text"]))
            _say(body, indent=6)


@app.command()
def ask(
    question: Annotated[
        str | None,
        typer.Argument(metavar="[QUESTION]", help="The question; omit it for an interactive prompt"),
    ] = None,
    k: Annotated[int, typer.Option("--k", metavar="N", min=1, max=50, help="Passages to return (1-50)")] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the search JSON (JSON Lines with --file)")
    ] = False,
    file: Annotated[
        str | None, typer.Option("--file", metavar="FILE", help="One question per line; '-' reads stdin")
    ] = None,
    province: ProvinceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    sort: SortOpt = "relevance",
    index_dir: IndexDirOpt = None,
    backend: BackendOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Answer a question over the indexed articles.

    \b
    Examples:
      de06qa ask "Hà Giang có bao nhiêu dịch vụ công toàn trình?"
      de06qa ask "Hà Giang đã làm gì?" --province "Hà Giang" --since 2024 --sort date
      de06qa ask --json --file questions.txt
      de06qa ask            (interactive prompt; exit or Ctrl-D to leave)
    """
    settings = _settings(index_dir, backend, milvus_uri, collection)
    filters = _filters(province, since, until)
    searcher = _open(settings)

    def answer(q: str) -> None:
        d = searcher.search(q, k, filters=filters, sort=sort).to_dict()
        if as_json:
            out.file.write(json.dumps(d, ensure_ascii=False) + "\n")
            out.file.flush()
            return
        if d["comparative"]:  # "Tỉnh nào … nhiều nhất?": the comparison table first
            from de06qa.compare import compare

            _print_comparison(compare(searcher, q, None, filters).to_dict())
            out.print()
        _print_result(d)

    # Bytes that are not UTF-8 reach the searcher as lone surrogates, which refuses them with a
    # one-line reason instead of the codec raising mid-stream.
    sys.stdin.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
    if question is not None and file is None:
        answer(question)
        return
    if file is not None or not sys.stdin.isatty():
        stream = sys.stdin if file in (None, "-") else _open_text(Path(file))
        name = "stdin" if file in (None, "-") else file
        refused = 0
        for n, line in enumerate(stream, 1):
            if line.strip():
                try:
                    answer(line)
                except BadQuery as e:  # one bad line is reported; the others are answered
                    err.print(f"error: {name} line {n}: {e}", soft_wrap=True)
                    refused += 1
        if refused:
            raise SystemExit(2)
        return
    _prompt(answer)


def _number(x: float) -> str:
    """A parsed number the Vietnamese way (1.500.000; 88,6)."""
    return f"{x:,.2f}".rstrip("0").rstrip(".").translate(str.maketrans(",.", ".,"))


def _print_comparison(d: dict) -> None:  # type: ignore[type-arg]
    """The table (a bar per row that compares), the leader when there is one, the silent
    provinces, then each row's sentence with its figure highlighted and its citation."""
    from rich.table import Table

    rows = d["rows"]
    if not rows:
        out.print(Text(f"No province's articles give a figure for “{d['indicator']}”.", "bold red"))
    else:
        top = max((r["number"] for r in rows if r["compares"]), default=0) or 1
        t = Table(title=f"{d['indicator']} — by {d['by']}", title_justify="left")
        wide = out.width >= 100  # the parsed number and a bar where there is room for them
        cols = (
            "#",
            "province",  # by date too: with no province named, rows follow several provinces
            "value",
            *(("number",) if wide else ()),
            "as of",
            "conf.",
            *(("",) if wide else ()),
            "note",
        )
        for col in cols:
            t.add_column(
                col, justify="right" if col in ("#", "number", "conf.") else "left",
                no_wrap=col not in ("province", "note"), min_width=11 if col in ("province", "note") else None,
            )  # fmt: skip
        for n, r in enumerate(rows, 1):
            place = Text(r["province"])
            if r["province_2025"] != r["province"]:
                place.append(f"\n→ {r['province_2025']}", "dim")  # its name since the 2025 mergers
            when = (r["as_of"] or "—") + ("*" if r["as_of_from"] == "article" else "")
            bar = "█" * max(1, round(8 * r["number"] / top)) if r["compares"] and r["number"] > 0 else ""
            cells = [str(n), place, r["value"]]
            cells += [_number(r["number"])] if wide else []
            cells += [when, f"{r['confidence']:.2f}"] + ([bar] if wide else []) + ["; ".join(r["notes"])]
            t.add_row(*cells)
        out.print(t)
        if any(r["as_of_from"] == "article" for r in rows):
            out.print(Text("* the article's date: its text gives none for the figure", "dim"))
    if d["leader"]:
        lead = rows[0]
        out.print(Text.assemble(("Leader: ", "bold green"), (f"{lead['province']} {lead['value']}", "bold")))
    if d["silent"]:
        _say(Text(f"No figure in the articles of: {', '.join(d['silent'])}", "dim"))
    for n, r in enumerate(rows, 1):
        out.print()
        sentence = Text(r["sentence"])
        off = r["start"] - r["sentence_start"]
        sentence.stylize("bold black on yellow", off, off + len(r["value"]))
        page = f" · tr. {r['page']}" if r.get("page") else ""
        _say(
            Text(
                f"[{n}] {r['title']} · {r['date'] or 'undated'} · {r['doc_id']}{page} · chars {r['start']}–{r['end']}",
                "dim",
            )
        )
        _say(sentence, indent=4)


@app.command()
def compare(
    indicator: Annotated[
        str,
        typer.Argument(help="An indicator (dịch vụ công toàn trình) or a question (Tỉnh nào … nhiều nhất?)"),
    ],
    by: Annotated[
        str | None,
        typer.Option("--by", metavar="BY", help="province (one row each) or date (one province over time)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison JSON")] = False,
    province: ProvinceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    index_dir: IndexDirOpt = None,
    backend: BackendOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Compare one figure across provinces, or one province over time, with dates and citations.

    \b
    Examples:
      de06qa compare "dịch vụ công toàn trình"
      de06qa compare "Tỉnh nào có nhiều tài khoản định danh điện tử nhất?" --json
      de06qa compare "căn cước gắn chip" --by date --province "Hà Giang"
    """
    from de06qa.compare import compare as run

    settings = _settings(index_dir, backend, milvus_uri, collection)
    filters = _filters(province, since, until)
    d = run(_open(settings), indicator, by, filters).to_dict()
    if as_json:
        out.file.write(json.dumps(d, ensure_ascii=False) + "\n")
    else:
        _print_comparison(d)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port")] = 8000,
    index_dir: IndexDirOpt = None,
    backend: BackendOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Serve the search API and the web page.

    Example: de06qa serve --port 8000, then open http://127.0.0.1:8000/?q=Hà Giang có bao nhiêu dịch vụ công toàn trình?
    """
    # ONNX Runtime's threads per request come from DE06QA_THREADS (Settings; default one per core).
    import uvicorn

    from de06qa.api import create_app

    settings = _settings(index_dir, backend, milvus_uri, collection)
    _build_if_missing(settings)
    where = settings.index_dir if settings.backend == "embedded" else f"{settings.collection} in Milvus"
    err.print(f"de06qa: serving http://{host}:{port}/ (index {where}; Ctrl-C stops)")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


METRICS = ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "ndcg@10", "recall@10")


def _print_report(report: dict) -> None:  # type: ignore[type-arg]
    from rich.table import Table

    wide = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    modes = report["modes"]
    kinds = ", ".join(f"{n} {k}" for k, n in report["kinds"].items())
    t = Table(
        title=f"Retrieval on {report['answerable']} answerable questions ({kinds})", title_justify="left"
    )
    t.add_column("kind")
    t.add_column("mode")
    for m in METRICS:
        t.add_column(m.replace("recall", "R"), justify="right")
    t.add_column("flagged", justify="right")  # answerable questions withheld as unanswerable
    kind_names = ["all", *sorted({k for r in modes.values() for k in r["by_kind"]})]
    for kind in kind_names:
        for i, (mode, r) in enumerate(modes.items()):
            row = r["all"] if kind == "all" else r["by_kind"].get(kind)
            if kind == "all" and "abstention" in r:
                row = {**row, "answerable_flagged": r["abstention"]["answerable_wrongly_flagged"]}
            if row:
                flagged = f"{row['answerable_flagged']:.3f}" if "answerable_flagged" in row else "—"
                t.add_row(kind if i == 0 else "", mode, *(f"{row[m]:.3f}" for m in METRICS), flagged,
                          end_section=i == len(modes) - 1)  # fmt: skip
    wide.print(t)
    a = Table(title="Answers and abstention", title_justify="left")
    for col in (
        "mode",
        "sentence acc",
        "span acc",
        "holds gold",
        "span EM",
        "span F1",
        "abstain P",
        "abstain R",
        "answerable flagged",
    ):
        a.add_column(col, justify="left" if col == "mode" else "right")
    for mode, r in modes.items():
        if "abstention" in r:
            ab = r["abstention"]
            a.add_row(mode, f"{r['answer_sentence_accuracy']:.3f}", f"{r['answer_span_accuracy']:.3f}",
                      f"{r['answer_holds_gold']:.3f}", f"{r['answer_exact_match']:.3f}", f"{r['answer_f1']:.3f}",
                      f"{ab['precision']:.3f}", f"{ab['recall']:.3f}", f"{ab['answerable_wrongly_flagged']:.3f}")  # fmt: skip
    wide.print(a)


@app.command("eval")
def eval_(
    index_dir: IndexDirOpt = None,
    questions: Annotated[
        Path, typer.Option("--questions", help="Question file (JSON Lines, eval/README.md)")
    ] = Path("eval/questions.jsonl"),
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for metrics.json, run/qrels, failures")
    ] = Path("eval/out"),
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="Index (or update) this folder of articles first")
    ] = None,
    modes: Annotated[
        str | None, typer.Option("--modes", help="Comma-separated subset of the modes (default: all)")
    ] = None,
    unanswerable: Annotated[
        bool,
        typer.Option(
            "--unanswerable",
            help="Treat every question as unanswerable here (questions written for another collection): measures abstention",
        ),
    ] = False,
    province: ProvinceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    sort: SortOpt = "relevance",
    backend: BackendOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Score retrieval on a question set, mode by mode, and write TREC run/qrels files.

    Modes: bm25-syllables (a generic BM25 library's baseline), bm25-words (underthesea words),
    bm25 (ours: words + accent-folded syllables), dense, hybrid (the default).

    With --province/--since/--until every question is asked within those filters (questions whose
    article falls outside them then count as misses).

    \b
    Examples:
      de06qa eval --out eval/out
      de06qa eval --corpus mydata/corpus --questions mydata/questions.jsonl --index-dir mydata/index --out mydata/out
      de06qa eval --questions other/questions.jsonl --unanswerable --out out-abstention
    """
    from de06qa.evaluation import EVAL_MODES, evaluate, load_questions, run_file
    from de06qa.search import MODES

    settings = _settings(index_dir, backend, milvus_uri, collection)
    filters = _filters(province, since, until)
    qs = load_questions(questions)
    if unanswerable:
        qs = [replace(q, kind="unanswerable", doc_id=None, answers=()) for q in qs]
    if corpus is not None:
        _build(settings, corpus)
    searcher = _open(settings)
    if modes:
        chosen = tuple(m.strip() for m in modes.split(","))
    else:  # the baselines rank a whole index folder in this process
        chosen = EVAL_MODES if settings.backend == "embedded" else MODES
    report = evaluate(searcher, qs, chosen, out_dir, filters, sort)
    _print_report(report)
    files = ", ".join([run_file(m) for m in chosen])
    err.print(
        f"Wrote {out_dir}/metrics.json, qrels.trec, {files}, failures.jsonl, answers.jsonl", soft_wrap=True
    )


@app.command()
def doctor(
    index_dir: IndexDirOpt = None,
    backend: BackendOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Check the install: Python and packages (against the lock), the model cache and ONNX
    exports, the index, each format's reader, the optional backends. One line each: ok, warn or
    FAIL with what to do; exit status 1 when something the default path needs is broken.

    \b
    Examples:
      de06qa doctor
      de06qa doctor --index-dir mydata/index
    """
    from de06qa.doctor import FAIL, WARN, run

    checks = run(_settings(index_dir, backend, milvus_uri, collection))
    style = {FAIL: "bold red", WARN: "yellow"}
    for c in checks:
        line = Text.assemble((f"{c.status:<5}", style.get(c.status, "green")), f" {c.what}: {c.detail}")
        if c.fix:
            line.append(f"  → {c.fix}", style="dim" if c.status != FAIL else "")
        out.print(line, soft_wrap=True)
    if any(c.status == FAIL for c in checks):
        raise SystemExit(1)


@app.command("convert-squad")
def convert_squad(
    squad_file: Annotated[Path, typer.Argument(help="A SQuAD-format JSON file (SQuAD 1.1 or 2.0 layout)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write corpus/ and questions.jsonl into")],
    split: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Also write questions.train.jsonl (this share of the articles) and questions.heldout.jsonl",
        ),
    ] = 0.0,
) -> None:
    """Turn a SQuAD-format dataset into a corpus folder and a question file for `de06qa eval`.

    \b
    Example:
      de06qa convert-squad viquad_dev.json --out mydata
      de06qa eval --corpus mydata/corpus --questions mydata/questions.jsonl --index-dir mydata/index --out mydata/out
    """
    from de06qa.squad import convert

    c = convert(squad_file, out_dir, split)
    err.print(
        f"Wrote {c.articles} articles to {c.corpus}/ and {c.answerable + c.unanswerable} questions "
        f"({c.unanswerable} unanswerable) to {c.questions}",
        soft_wrap=True,
    )


def _open_text(path: Path):  # type: ignore[no-untyped-def]
    try:
        return path.open(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise De06qaError(
            f"cannot read {path} ({e.strerror}); give a UTF-8 file, one question per line"
        ) from e


def _typed_while_answering() -> list[str] | None:
    """What the user typed while an answer was printing: None for a Ctrl-D, else the complete
    lines (questions typed ahead), possibly none.

    The terminal is in canonical mode between two `input()` calls, so a Ctrl-D typed then becomes
    a pending end-of-file; readline switches the terminal to raw mode and would never see it, and
    the prompt would wait on. Reading it here sees it (a read of 0 bytes)."""
    fd = sys.stdin.fileno()
    if not select.select([fd], [], [], 0)[0]:
        return []
    data = os.read(fd, 65536)
    if not data:
        return None
    return data.decode("utf-8", "replace").splitlines()


def _prompt(answer) -> None:  # type: ignore[no-untyped-def]
    import readline

    hist = Settings.from_env().cache_dir / "history"
    try:
        hist.parent.mkdir(parents=True, exist_ok=True)
        if hist.exists():
            readline.read_history_file(hist)
    except OSError:
        pass
    err.print("Ask a question about Đề án 06 (exit or Ctrl-D to leave).")
    typed_ahead: list[str] = []
    while True:
        if not typed_ahead:
            pending = _typed_while_answering()
            if pending is None:
                err.print()
                break
            typed_ahead = pending
        if typed_ahead:
            q = typed_ahead.pop(0)
        else:
            try:
                q = input("câu hỏi> ")
            except (EOFError, KeyboardInterrupt):
                err.print()
                break
        if q.strip().lower() in {"exit", "quit", "thoát"}:
            break
        if not q.strip():
            continue
        try:
            answer(q)
        except De06qaError as e:
            err.print(f"error: {e}")
        out.print()
    try:
        readline.write_history_file(hist)
    except OSError:
        pass


def main() -> None:
    _quiet_libraries()
    try:
        app()
    except De06qaError as e:
        err.print(f"error: {e}", soft_wrap=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
