"""Sentence-aware chunking: windows of whole sentences that never cross an article or a page."""

from __future__ import annotations

import re

from de06qa.documents import Article, Chunk, Span
from de06qa.text import folded_terms, sentences, word_terms, words

# Where an over-long sentence may be cut: after a semicolon, else after a comma.
_CLAUSE_BREAKS = (re.compile(r";\s+"), re.compile(r",\s+"))


def _split_long(span: Span, limit: int) -> list[Span]:
    """Cut a sentence longer than `limit` at clause punctuation, keeping exact offsets."""
    if len(span.text) <= limit:
        return [span]
    for pattern in _CLAUSE_BREAKS:
        cuts = [m.end() for m in pattern.finditer(span.text)]
        if not cuts:
            continue
        pieces: list[Span] = []
        begin = 0
        last_ok = 0
        for cut in [*cuts, len(span.text)]:
            if cut - begin > limit and last_ok > begin:
                pieces.append(_sub(span, begin, last_ok))
                begin = last_ok
            last_ok = cut
        pieces.append(_sub(span, begin, len(span.text)))
        return pieces
    return [span]  # one unbreakable clause: keep it whole rather than cut a word


def _sub(span: Span, a: int, b: int) -> Span:
    text = span.text[a:b]
    stripped = text.rstrip()
    return Span(span.start + a, span.start + a + len(stripped), stripped)


def units(article: Article, limit: int) -> list[Span]:
    """The sentence-like units chunks are built from (sentences, long ones cut at clauses)."""
    return [u for s in sentences(article.text) for u in _split_long(s, limit)]


def chunk_article(article: Article, chunk_chars: int = 450, overlap: int = 1) -> list[Chunk]:
    """Pack consecutive units into windows of at most `chunk_chars` characters (a single longer unit
    forms its own chunk); consecutive windows share `overlap` units so an answer that straddles a
    boundary is still whole in one of them. A chunk of a paged source stays on one page, so that
    its citation names the page it is on."""
    parts = units(article, chunk_chars)
    seg = [words(u.text, base=u.start) for u in parts]
    page = [article.page_at(u.start) for u in parts]
    chunks: list[Chunk] = []
    i = 0
    while i < len(parts):
        j = i + 1
        while j < len(parts) and parts[j].end - parts[i].start <= chunk_chars and page[j] == page[i]:
            j += 1
        start, end = parts[i].start, parts[j - 1].end
        text = article.text[start:end]
        chunks.append(
            Chunk(
                chunk_id=f"{article.doc_id}#{len(chunks)}",
                doc_id=article.doc_id,
                start=start,
                end=end,
                text=text,
                words=tuple(word_terms([w for ws in seg[i:j] for w in ws])),
                folded=tuple(folded_terms(text)),
                sentences=tuple(parts[i:j]),
            )
        )
        if j >= len(parts):
            break
        nxt = max(i + 1, j - overlap)
        # Overlap only when the next window can still reach past this one (otherwise it would be a
        # strict subset of the chunk just emitted) and never across a page.
        i = nxt if parts[j].end - parts[nxt].start <= chunk_chars and page[j] == page[i] else j
    return chunks


def chunk_articles(articles: list[Article], chunk_chars: int = 450, overlap: int = 1) -> list[Chunk]:
    return [c for a in articles for c in chunk_article(a, chunk_chars, overlap)]
