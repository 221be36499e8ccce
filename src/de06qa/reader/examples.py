"""Training and evaluation examples of the reader from SQuAD-format files, and their labels in
windows. Offsets are NFC throughout: a context and its answers are normalised before
`answer_start` is used, so `context[start:end]` is the answer (tests/test_reader.py checks every
training answer)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from de06qa.documents import Span
from de06qa.reader.windows import Window
from de06qa.squad import in_train
from de06qa.text import nfc


@dataclass(frozen=True)
class Example:
    qid: str
    question: str
    context: str
    answers: tuple[tuple[int, int], ...]  # NFC char spans in context; empty = does not answer
    article: str


def nfc_span(context: str, start: int, text: str) -> tuple[str, int, int] | None:
    """The answer's span in the NFC context: the NFC of the text before it gives the new start;
    when the annotation is off by a few characters, the nearest occurrence of the answer."""
    ctx = nfc(context)
    ans = nfc(text).strip()
    if not ans:
        return None
    s = len(nfc(context[:start]))
    if ctx[s : s + len(ans)] != ans:
        hits = [i for i in range(len(ctx)) if ctx.startswith(ans, i)]
        if not hits:
            return None
        s = min(hits, key=lambda i: abs(i - s))
    return ctx, s, s + len(ans)


def read_squad(path: Path, keep: str = "all") -> list[Example]:
    """Examples of a SQuAD 1/2 file; keep = "all", "train" or "heldout" (by article)."""
    data = json.loads(path.read_text(encoding="utf-8-sig"))["data"]
    out = []
    for art in data:
        title = art.get("title", "")
        if keep != "all" and in_train(title, 0.3) != (keep == "train"):
            continue
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                spans = []
                ctx = nfc(para["context"])
                for a in [] if qa.get("is_impossible") else qa.get("answers", []):
                    got = nfc_span(para["context"], int(a["answer_start"]), a["text"])
                    if got:
                        spans.append(got[1:])
                if not spans and not qa.get("is_impossible"):
                    continue  # an answer the context does not hold: unusable
                out.append(Example(str(qa["id"]), nfc(qa["question"]), ctx, tuple(spans), title))
    return out


def unit_span(spans: list[tuple[int, int]], a: int, b: int) -> tuple[int, int] | None:
    """First and last unit of the char span [a, b): units overlapping it."""
    inside = [i for i, (s, e) in enumerate(spans) if s < b and a < e]
    return (inside[0], inside[-1]) if inside else None


def labelled(w: Window, su: int, eu: int) -> tuple[int, int] | None:
    """Window positions of the first token of unit `su` and the last of unit `eu`; None when the
    window does not hold them whole."""
    tu = w.token_unit
    if not (w.first_unit <= su and eu <= w.last_unit):
        return None
    try:
        s = tu.index(su)
        e = len(tu) - 1 - tu[::-1].index(eu)
    except ValueError:
        return None
    return w.context_at + s, w.context_at + e


def answer_sentences(sents: list[Span], a: int, b: int) -> tuple[int, int] | None:
    """First and last sentence overlapping the answer [a, b) (an answer may cross a boundary the
    splitter drew)."""
    inside = [i for i, s in enumerate(sents) if s.start < b and a < s.end]
    return (inside[0], inside[-1]) if inside else None
