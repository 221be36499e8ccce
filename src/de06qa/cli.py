"""The `de06qa` command: index, ask (one question, a file of questions, or a prompt), serve, eval."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from de06qa.config import Settings
from de06qa.errors import De06qaError

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
    Path | None, typer.Option("--index-dir", help="Index folder [env DE06QA_INDEX_DIR; default index/]")
]


def _quiet_libraries() -> None:
    # The libraries' own progress bars and warnings are noise for a CLI user.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in ("bm25s", "sentence_transformers", "transformers", "faiss"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _settings(index_dir: Path | None) -> Settings:
    return Settings.from_env().with_(index_dir=index_dir)


class _Reporter:
    """Build progress: a bar with counts and ETA on a terminal; plain log lines otherwise (CI)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._next_pct = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "read":
            err.print(f"Read {done} of {total} files")
            return
        if total == 0:
            return
        if self.tty:
            if self._bar is None:
                self._bar = Progress(
                    TextColumn("Embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, transient=True,
                )  # fmt: skip
                self._bar.start()
                self._task = self._bar.add_task("embed", total=total)
            assert self._task is not None
            self._bar.update(self._task, completed=done)
            if done >= total:
                self._bar.stop()
        elif 100 * done // total >= self._next_pct:
            err.print(f"embedding {done}/{total} ({100 * done // total}%)")
            self._next_pct = 100 * done // total // 10 * 10 + 10


def _build(settings: Settings, source: Path, rebuild: bool = False) -> int:
    """Build or update the index; returns the number of skipped files."""
    from de06qa.embedding import create_embedder
    from de06qa.indexing import build_index

    embedder = create_embedder(settings)
    s = build_index(settings, source, embedder, _Reporter(), rebuild=rebuild)
    change = f"{s.embedded} new or changed, {s.reused} unchanged, {s.removed} removed"
    if not s.changed:
        change += "; the index was already up to date"
    err.print(
        f"Indexed {s.documents} documents ({change}) into {s.chunks} chunks "
        f"({s.sentences} sentences) in {s.seconds:.1f} s -> {s.index_dir}",
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
) -> None:
    """Build or update the index from a folder of articles.

    Only new or changed articles are embedded; deleted ones are removed. Exit status: 0 when every
    file was indexed, 3 when some were skipped (each is listed with its reason), 2 on an error or
    when nothing could be indexed (the previous index is left as it was).

    Example: de06qa index seeds --index-dir index
    """
    settings = _settings(index_dir)
    if _build(settings, path or settings.seeds_dir, rebuild):
        raise typer.Exit(3)


def _build_if_missing(settings: Settings) -> None:
    """First use: with no index yet and the bundled seeds present, build it (ask, serve, eval)."""
    from de06qa.store import MANIFEST

    if not (settings.index_dir / MANIFEST).exists() and settings.seeds_dir.is_dir():
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


def _print_result(d: dict, width: int = 80) -> None:  # type: ignore[type-arg]
    a = d["answer"]
    if a:
        sentence = Text(a["sentence"])
        off = a["start"] - a["sentence_start"]
        sentence.stylize("bold black on yellow", off, off + len(a["text"]))
        out.print(
            Text.assemble(
                ("Answer: ", "bold green"), (a["text"], "bold"), f"  (confidence {d['confidence']:.2f})"
            )
        )
        _say(sentence)
    else:
        out.print(
            Text.assemble(
                ("No answer in the indexed articles", "bold red"),
                f" (confidence {d['confidence']:.2f}); closest passages:",
            )
        )
    for r in d["results"]:
        out.print()
        head = Text.assemble((f"[{r['rank']}] ", "bold cyan"), (r["title"], "bold"))
        _say(head)
        page = f" · tr. {r['page']}" if r.get("page") else ""
        cite = f"{r['source']}{page} · chars {r['start']}–{r['end']}"
        if r["date"]:
            cite = f"{r['date']} · {cite}"
        _say(Text(cite, style="dim"), indent=4)
        body = Text(r["text"].replace("\n", " "))
        if a and a["doc_id"] == r["doc_id"] and r["start"] <= a["start"] and a["end"] <= r["end"]:
            o = a["start"] - r["start"]
            body.stylize("bold black on yellow", o, o + len(a["text"]))
        _say(body, indent=4)


@app.command()
def ask(
    question: Annotated[
        str | None, typer.Argument(help="The question; omit it for an interactive prompt")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="Passages to return")] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the search JSON (JSON Lines with --file)")
    ] = False,
    file: Annotated[str | None, typer.Option("--file", help="One question per line; '-' reads stdin")] = None,
    index_dir: IndexDirOpt = None,
) -> None:
    """Answer a question over the indexed articles.

    Examples:
      de06qa ask "Hà Giang có bao nhiêu dịch vụ công toàn trình?"
      de06qa ask --json --file questions.txt
      de06qa ask            (interactive prompt; exit or Ctrl-D to leave)
    """
    settings = _settings(index_dir)
    searcher = _open(settings)

    def answer(q: str) -> None:
        d = searcher.search(q, k).to_dict()
        if as_json:
            out.file.write(json.dumps(d, ensure_ascii=False) + "\n")
            out.file.flush()
        else:
            _print_result(d)

    if file is not None:
        stream = sys.stdin if file == "-" else _open_text(Path(file))
        for line in stream:
            if line.strip():
                answer(line)
        return
    if question is not None:
        answer(question)
        return
    if not sys.stdin.isatty():
        for line in sys.stdin:
            if line.strip():
                answer(line)
        return
    _prompt(answer)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port")] = 8000,
    index_dir: IndexDirOpt = None,
) -> None:
    """Serve the search API and the web page.

    Example: de06qa serve --port 8000, then open http://127.0.0.1:8000/?q=Hà Giang có bao nhiêu dịch vụ công toàn trình?
    """
    # ONNX Runtime's threads per request come from DE06QA_THREADS (Settings; default one per core).
    import uvicorn

    from de06qa.api import create_app

    settings = _settings(index_dir)
    _build_if_missing(settings)
    err.print(f"de06qa: serving http://{host}:{port}/ (index {settings.index_dir}; Ctrl-C stops)")
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
    kind_names = ["all", *sorted({k for r in modes.values() for k in r["by_kind"]})]
    for kind in kind_names:
        for i, (mode, r) in enumerate(modes.items()):
            row = r["all"] if kind == "all" else r["by_kind"].get(kind)
            if row:
                t.add_row(kind if i == 0 else "", mode, *(f"{row[m]:.3f}" for m in METRICS),
                          end_section=i == len(modes) - 1)  # fmt: skip
    wide.print(t)
    a = Table(title="Answers and abstention", title_justify="left")
    for col in (
        "mode",
        "sentence acc",
        "span acc",
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
                      f"{r['answer_exact_match']:.3f}", f"{r['answer_f1']:.3f}",
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
) -> None:
    """Score retrieval on a question set, mode by mode, and write TREC run/qrels files.

    Modes: bm25-syllables (a generic BM25 library's baseline), bm25-words (underthesea words),
    bm25 (ours: words + accent-folded syllables), dense, hybrid (the default).

    Examples:
      de06qa eval --out eval/out
      de06qa eval --corpus mydata/corpus --questions mydata/questions.jsonl --index-dir mydata/index --out mydata/out
      de06qa eval --questions other/questions.jsonl --unanswerable --out out-abstention
    """
    from de06qa.evaluation import EVAL_MODES, evaluate, load_questions, run_file

    settings = _settings(index_dir)
    qs = load_questions(questions)
    if unanswerable:
        qs = [replace(q, kind="unanswerable", doc_id=None, answers=()) for q in qs]
    if corpus is not None:
        _build(settings, corpus)
    searcher = _open(settings)
    chosen = tuple(m.strip() for m in modes.split(",")) if modes else EVAL_MODES
    report = evaluate(searcher, qs, chosen, out_dir)
    _print_report(report)
    files = ", ".join([run_file(m) for m in chosen])
    err.print(f"Wrote {out_dir}/metrics.json, qrels.trec, {files}, failures.jsonl", soft_wrap=True)


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
        return path.open(encoding="utf-8")
    except OSError as e:
        raise De06qaError(
            f"cannot read {path} ({e.strerror}); give a UTF-8 file, one question per line"
        ) from e


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
    while True:
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
