"""The `de06qa` command: index, ask (one question, a file of questions, or a prompt), serve, eval."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from de06qa.cli.building import build, build_if_missing
from de06qa.cli.options import (
    BackendOpt,
    CollectionOpt,
    IndexDirOpt,
    MilvusUriOpt,
    ProvinceOpt,
    SinceOpt,
    SortOpt,
    UntilOpt,
    filters_of,
    settings_of,
)
from de06qa.cli.printing import err, out, plural, print_comparison, print_report, print_result
from de06qa.cli.prompt import open_text, prompt
from de06qa.config import Settings
from de06qa.errors import BadQuery, De06qaError

if TYPE_CHECKING:
    from de06qa.embedding import Embedder
    from de06qa.filters import Filters
    from de06qa.reader import Reader
    from de06qa.search import Searcher

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Question answering over Vietnamese news about Đề án 06.",
)


def _quiet_libraries() -> None:
    """The libraries' own progress bars and warnings are noise for a CLI user."""
    from de06qa.onnx_runtime import quiet

    quiet()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in ("bm25s", "faiss"):
        logging.getLogger(name).setLevel(logging.ERROR)


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
    settings = settings_of(index_dir, backend, milvus_uri, collection)
    if build(settings, path or settings.seeds_dir, rebuild, workers, dask_scheduler):
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
        f"Saved {plural(len(s.saved), 'page')} into {into}, {len(s.unchanged)} unchanged, "
        f"{len(s.skipped)} skipped ({s.listed} links from feeds and sitemaps)",
        soft_wrap=True,
    )
    if s.skipped:
        raise typer.Exit(3)


def _open(settings: Settings, embedder: Embedder | None = None, reader: Reader | None = None) -> Searcher:
    from de06qa.search import open_searcher

    build_if_missing(settings, embedder)
    return open_searcher(settings, embedder, reader)


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
    settings = settings_of(index_dir, backend, milvus_uri, collection)
    from de06qa.loading import loading_ahead

    with loading_ahead(settings) as (embedder, reader):
        filters = filters_of(province, since, until)
        _ask(_open(settings, embedder, reader), filters, question, k, as_json, file, sort)


def _ask(
    searcher: Searcher,
    filters: Filters,
    question: str | None,
    k: int,
    as_json: bool,
    file: str | None,
    sort: str,
) -> None:
    from de06qa.contract import compare_out, search_out

    def answer(q: str) -> None:
        res = search_out(searcher.search(q, k, filters=filters, sort=sort))
        if as_json:
            out.file.write(json.dumps(res.model_dump(), ensure_ascii=False) + "\n")
            out.file.flush()
            return
        if res.comparative:  # "Tỉnh nào … nhiều nhất?": the comparison table first
            from de06qa.compare import compare

            print_comparison(compare_out(compare(searcher, q, None, filters)))
            out.print()
        print_result(res)

    # Bytes that are not UTF-8 reach the searcher as lone surrogates, which refuses them with a
    # one-line reason instead of the codec raising mid-stream.
    sys.stdin.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
    if question is not None and file is None:
        answer(question)
        return
    if file is not None or not sys.stdin.isatty():
        stream = sys.stdin if file in (None, "-") else open_text(Path(file))
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
    prompt(answer)


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
    from de06qa.contract import compare_out

    settings = settings_of(index_dir, backend, milvus_uri, collection)
    filters = filters_of(province, since, until)
    c = compare_out(run(_open(settings), indicator, by, filters))
    if as_json:
        out.file.write(json.dumps(c.model_dump(), ensure_ascii=False) + "\n")
    else:
        print_comparison(c)


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

    settings = settings_of(index_dir, backend, milvus_uri, collection)
    build_if_missing(settings)
    where = settings.index_dir if settings.backend == "embedded" else f"{settings.collection} in Milvus"
    err.print(f"de06qa: serving http://{host}:{port}/ (index {where}; Ctrl-C stops)")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


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

    settings = settings_of(index_dir, backend, milvus_uri, collection)
    filters = filters_of(province, since, until)
    qs = load_questions(questions)
    if unanswerable:
        qs = [replace(q, kind="unanswerable", doc_id=None, answers=()) for q in qs]
    if corpus is not None:
        build(settings, corpus)
    searcher = _open(settings)
    if modes:
        chosen = tuple(m.strip() for m in modes.split(","))
    else:  # the baselines rank a whole index folder in this process
        chosen = EVAL_MODES if settings.backend == "embedded" else MODES
    report = evaluate(searcher, qs, chosen, out_dir, filters, sort)
    print_report(report)
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

    checks = run(settings_of(index_dir, backend, milvus_uri, collection))
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
