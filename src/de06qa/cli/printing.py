"""What the CLI prints: an answer with its passages, a comparison table, an evaluation report.
A search and a comparison are printed from their contract models (contract.py), the same
objects `--json` writes."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from de06qa.dated import shown

if TYPE_CHECKING:  # only their attributes are read: the CLI starts without pydantic's models
    from de06qa.contract import CompareOut, ResultOut, SearchOut

# Wrap at the terminal's width, 80 columns when output is not a terminal.
out = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 80)
err = Console(stderr=True, highlight=False)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def say(text: Text, indent: int = 0) -> None:
    """Print wrapped to the console's width, each line indented and without trailing spaces (rich
    pads or leaves a space at each break, which lands in a file or a pipe)."""
    for line in text.wrap(out, max(out.width - indent, 20)):
        line.rstrip()
        out.print(Text(" " * indent) + line)


# Where an answer's date was read, when not its own sentence.
_FROM = {"sentence": "", "paragraph": ", from the paragraph", "article": ", publication date", None: ""}


def print_result(d: SearchOut) -> None:
    """The answer, then the passages grouped by article (articles in the order of their best
    passage, each passage with its rank, page and position)."""
    if d.read_as != d.query:
        say(Text(f"(read as: {d.read_as})", "dim"))
    a = d.answer
    if a:
        sentence = Text(a.sentence)
        off = a.start - a.sentence_start
        sentence.stylize("bold black on yellow", off, off + len(a.text))
        when = f"as of {shown(a.as_of)}{_FROM[a.as_of_from]} · " if a.as_of else ""
        out.print(
            Text.assemble(
                ("Answer: ", "bold green"), (a.text, "bold"), f"  ({when}confidence {d.confidence:.2f})"
            )
        )
        say(sentence)
        if a.conflict:
            say(Text(f"Reports disagree on the figure for {shown(a.as_of)}: see below.", "bold red"))
        if a.others:
            say(Text("Other reports, newest first:", "dim"))
            for o in a.others:
                date = f"{shown(o.as_of)}{_FROM[o.as_of_from]}" if o.as_of else "undated"
                say(
                    Text.assemble(
                        (o.text, "bold"),
                        f"  ({date}) · {o.title or o.doc_id} ",
                        (f"chars {o.start}–{o.end}", "dim"),
                    ),
                    indent=2,
                )
    elif d.results:
        out.print(
            Text.assemble(
                ("No answer in the indexed articles", "bold red"),
                f" (confidence {d.confidence:.2f}); closest passages:",
            )
        )
    else:
        out.print(Text("No passage matches the filters.", "bold red"))
    f = d.filters
    if f.undated_excluded:
        say(
            Text(
                f"({plural(f.undated_excluded, 'article')} without a date left out by the date filter)",
                "dim",
            )
        )
    groups: dict[str, list[ResultOut]] = {}
    for r in d.results:
        groups.setdefault(r.doc_id, []).append(r)
    for rs in groups.values():
        out.print()
        first = rs[0]
        say(Text(first.title, "bold"))
        say(Text(" · ".join(x for x in (first.date, first.source) if x), "dim"), indent=2)
        for r in rs:
            page = f"tr. {r.page} · " if r.page else ""
            say(
                Text.assemble((f"[{r.rank}] ", "bold cyan"), (f"{page}chars {r.start}–{r.end}", "dim")),
                indent=2,
            )
            body = Text(r.text.replace("\n", " "))
            if a and a.doc_id == r.doc_id and r.start <= a.start and a.end <= r.end:
                at = a.start - r.start
                body.stylize("bold black on yellow", at, at + len(a.text))
            say(body, indent=6)


def number(x: float) -> str:
    """A parsed number the Vietnamese way (1.500.000; 88,6)."""
    return f"{x:,.2f}".rstrip("0").rstrip(".").translate(str.maketrans(",.", ".,"))


def print_comparison(d: CompareOut) -> None:
    """The table (a bar per row that compares), the leader when there is one, the silent
    provinces, then each row's sentence with its figure highlighted and its citation."""
    from rich.table import Table

    rows = d.rows
    if not rows:
        out.print(Text(f"No province's articles give a figure for “{d.indicator}”.", "bold red"))
    else:
        top = max((r.number for r in rows if r.compares), default=0) or 1
        t = Table(title=f"{d.indicator} — by {d.by}", title_justify="left")
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
            place = Text(r.province)
            if r.province_2025 != r.province:
                place.append(f"\n→ {r.province_2025}", "dim")  # its name since the 2025 mergers
            when = (r.as_of or "—") + ("*" if r.as_of_from == "article" else "")
            bar = "█" * max(1, round(8 * r.number / top)) if r.compares and r.number > 0 else ""
            cells: list[str | Text] = [str(n), place, r.value]
            cells += [number(r.number)] if wide else []
            cells += [when, f"{r.confidence:.2f}"] + ([bar] if wide else []) + ["; ".join(r.notes)]
            t.add_row(*cells)
        out.print(t)
        if any(r.as_of_from == "article" for r in rows):
            out.print(Text("* the article's date: its text gives none for the figure", "dim"))
    if d.leader:
        lead = rows[0]
        out.print(Text.assemble(("Leader: ", "bold green"), (f"{lead.province} {lead.value}", "bold")))
    if d.silent:
        say(Text(f"No figure in the articles of: {', '.join(d.silent)}", "dim"))
    for n, r in enumerate(rows, 1):
        out.print()
        sentence = Text(r.sentence)
        off = r.start - r.sentence_start
        sentence.stylize("bold black on yellow", off, off + len(r.value))
        page = f" · tr. {r.page}" if r.page else ""
        say(
            Text(
                f"[{n}] {r.title} · {r.date or 'undated'} · {r.doc_id}{page} · chars {r.start}–{r.end}",
                "dim",
            )
        )
        say(sentence, indent=4)


METRICS = ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "ndcg@10", "recall@10")


def print_report(report: dict) -> None:  # type: ignore[type-arg]
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
