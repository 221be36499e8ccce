"""The passages stage: the ranked candidates as passages a person wants to read; their order by
date and the facets of what a question retrieved."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from de06qa.corpus import CorpusView
from de06qa.documents import Chunk, Span
from de06qa.search.results import Passage
from de06qa.search.retrieval import Ranked


def top_passages(
    r: Ranked, scores: np.ndarray, lexical: np.ndarray, k: int, longest: int
) -> tuple[Passage, ...]:
    """The top k by `scores`, as passages a person wants to read, no two sharing text: a chunk
    that overlaps or touches better ones of its article is merged with them (the passage grows
    to their union, at most two chunks long); past that length, only its sentences that no
    passage shows yet are kept, as a passage of their own. `longest`: the most characters a
    merged passage may span."""
    view = r.candidates.view
    chunks = view.chunks
    groups: list[_Group] = []
    for pos, i in enumerate(np.argsort(-scores, kind="stable").tolist()):
        if len(groups) == k and pos >= 2 * k:
            break  # far-down neighbours would only pad passages with weak text
        ch = chunks[int(r.candidates.rows[i])]
        same = [g for g in groups if g.doc_id == ch.doc_id]
        near = [g for g in same if ch.start <= g.end and g.start <= ch.end]
        if not near:
            if len(groups) < k:
                groups.append(_Group(ch.doc_id, ch.start, ch.end, [ch], i))
            continue
        a, b = min(ch.start, *(g.start for g in near)), max(ch.end, *(g.end for g in near))
        others = [g for g in same if g not in near]
        if (
            b - a <= longest
            and not any(g.trimmed for g in near)
            and not any(g.start < b and a < g.end for g in others)
        ):
            first = near[0]  # the best of them: groups are kept in score order
            for g in near[1:]:
                first.parts += g.parts
                groups.remove(g)
            first.parts.append(ch)
            first.start, first.end = a, b
        elif len(groups) < k:
            free = _uncovered(ch, same)
            if free:
                groups.append(_Group(ch.doc_id, free[0].start, free[-1].end, [ch], i, trimmed=True))
    out = []
    for n, g in enumerate(groups):
        chunk = _trimmed(g) if g.trimmed else _merged(g.parts)
        out.append(
            Passage(
                n + 1, chunk, view.article(chunk.doc_id), float(scores[g.best]), float(lexical[g.best]),
                float(r.candidates.dense[g.best]), float(r.logits[g.best]),
            )
        )  # fmt: skip
    return tuple(out)


@dataclass(eq=False)
class _Group:
    """Chunks of one article shown as one passage (while `_passages` assembles them)."""

    doc_id: str
    start: int
    end: int
    parts: list[Chunk]
    best: int  # candidate index of the best-scored chunk
    trimmed: bool = False  # only the sentences of parts[0] from start to end


def _uncovered(chunk: Chunk, shown: list[_Group]) -> list[Span]:
    """The longest run of the chunk's sentences that no shown passage of its article overlaps."""
    best: list[Span] = []
    run: list[Span] = []
    for s in chunk.sentences:
        if any(s.start < g.end and g.start < s.end for g in shown):
            run = []
            continue
        run.append(s)
        if len(run) > len(best):
            best = list(run)
    return best


def _trimmed(g: _Group) -> Chunk:
    c = g.parts[0]
    return replace(
        c,
        chunk_id=f"{c.chunk_id}-",  # a part of chunk n
        start=g.start,
        end=g.end,
        text=c.text[g.start - c.start : g.end - c.start],
        sentences=tuple(s for s in c.sentences if g.start <= s.start and s.end <= g.end),
    )


def _merged(parts: list[Chunk]) -> Chunk:
    """One chunk covering several overlapping or adjacent chunks of an article ("doc#3+4"); its
    text is theirs joined (they cover one stretch of the article without a gap)."""
    if len(parts) == 1:
        return parts[0]
    parts = sorted(parts, key=lambda c: c.start)
    start, end = parts[0].start, max(c.end for c in parts)
    text = ""
    for c in parts:
        text += c.text[max(start + len(text) - c.start, 0) :]
    sentences = {(s.start, s.end): s for c in parts for s in c.sentences}
    numbers = "+".join(c.chunk_id.rsplit("#", 1)[-1] for c in parts)
    return Chunk(
        chunk_id=f"{parts[0].doc_id}#{numbers}",
        doc_id=parts[0].doc_id,
        start=start,
        end=end,
        text=text,
        words=tuple(w for c in parts for w in c.words),
        folded=tuple(f for c in parts for f in c.folded),
        sentences=tuple(sentences[k] for k in sorted(sentences)),
    )


def newest_first(passages: tuple[Passage, ...]) -> tuple[Passage, ...]:
    """The same passages ordered by their article's date, newest first (undated last; equal dates
    keep their relevance order), ranks renumbered in that order."""
    order = sorted(passages, key=lambda p: p.article.date or "", reverse=True)
    order.sort(key=lambda p: p.article.date is None)  # stable: keeps the date order within
    return tuple(replace(p, rank=n) for n, p in enumerate(order, start=1))


def facets(view: CorpusView, rows: np.ndarray) -> dict[str, dict[str, int]]:
    """Passages the question retrieved (its candidates, within the filters), counted per
    province the article is about and per publication year, largest first."""
    province: Counter[str] = Counter()
    year: Counter[str] = Counter()
    for d in view.chunk_doc[rows].tolist():
        a = view.articles[d]
        province.update(a.provinces)
        year[a.date[:4] if a.date else "undated"] += 1
    years = sorted((y for y in year if y != "undated"), reverse=True) + (
        ["undated"] if "undated" in year else []
    )
    return {"province": dict(province.most_common()), "year": {y: year[y] for y in years}}
