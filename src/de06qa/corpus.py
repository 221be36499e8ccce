"""What ranking and answers read of the corpus around a question's candidates: their chunks, the
articles they come from, their sentences' vectors and a few corpus-wide facts.

The embedded backend has one view of its whole index, built when it is loaded; the Milvus backend
builds one per question from the candidate rows it fetched, so a serving process holds no corpus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from de06qa.documents import Article, Chunk
from de06qa.termsets import TermSets, TermSetsBuilder, concat_ranges, terms_of


def title_terms(a: Article) -> frozenset[str]:
    """Folded syllables of the article's title (as retrieval reads it) and province names."""
    return terms_of(" ".join([a.context, *a.provinces, *a.provinces_2025]))[0]


@dataclass(frozen=True, eq=False)
class CorpusView:
    """Per-index facts the features read, computed once when an index is loaded."""

    chunks: list[Chunk]
    chunk_doc: np.ndarray  # chunk row -> article number
    articles: list[Article]  # by article number (the Milvus backend's carry no text)
    doc_number: dict[str, int]  # doc_id -> article number
    doc_provinces: list[frozenset[str]]
    doc_title_terms: list[frozenset[str]]  # folded syllables of the title and province names
    chunk_position: np.ndarray  # 0 for an article's first chunk … 1 for its last
    sentence_row: dict[tuple[str, int], int]  # (doc_id, sentence start) -> sentence row
    sentence_lo: np.ndarray  # chunk row -> its first sentence row
    sentence_hi: np.ndarray  # … one past its last
    sentence_vectors: np.ndarray
    corpus_provinces: frozenset[str]  # of the whole corpus, not only these rows
    term_sets: TermSets  # chunk row -> its terms, its sentences' terms, the answer kinds it holds
    term_vocab: Mapping[str, int]  # term -> the id term_sets use

    def sentence_cos_max(self, rows: np.ndarray, qvec: np.ndarray) -> np.ndarray:
        lo, hi = self.sentence_lo[rows], self.sentence_hi[rows]
        n = np.maximum(hi - lo, 0)
        if n.sum() == 0:
            return np.zeros(len(rows), np.float32)
        sims = self.sentence_vectors[concat_ranges(lo, hi)] @ qvec
        starts = np.concatenate([[0], np.cumsum(n)[:-1]])
        out = np.maximum.reduceat(sims, np.minimum(starts, len(sims) - 1)).astype(np.float32)
        out[n == 0] = 0.0
        return out

    def article(self, doc_id: str) -> Article:
        return self.articles[self.doc_number[doc_id]]

    def sentence_vector(self, doc_id: str, start: int) -> np.ndarray | None:
        i = self.sentence_row.get((doc_id, start))
        return None if i is None else self.sentence_vectors[i]


def build_view(
    articles: list[Article],
    chunks: list[Chunk],
    positions: np.ndarray,
    sentence_keys: list[tuple[str, int]],
    sentence_vectors: np.ndarray,
    corpus_provinces: frozenset[str],
    ranges: np.ndarray | None = None,
    term_sets: TermSets | None = None,
    term_vocab: Mapping[str, int] | None = None,
) -> CorpusView:
    """A view over `chunks` (its rows), their `articles`, and the vectors of the sentences keyed
    (doc_id, start) in `sentence_keys`: unique and in article order, or, with `ranges`, each
    chunk's own sentences in a block of rows [ranges[i, 0], ranges[i, 1]) (a sentence two chunks
    share is then stored twice). `term_sets` (with their `term_vocab`) when the index stores them;
    else they are computed here for these chunks."""
    if term_sets is None or term_vocab is None:
        vocab = dict(term_vocab or {})
        builder = TermSetsBuilder(vocab)
        for c in chunks:
            builder.add(c.text, c.folded, [s.text for s in c.sentences])
        term_sets, term_vocab = builder.done(), vocab
    number = {a.doc_id: i for i, a in enumerate(articles)}
    sent_row = {k: i for i, k in enumerate(sentence_keys)}
    lo = np.zeros(len(chunks), np.int64)
    hi = np.zeros(len(chunks), np.int64)
    if ranges is not None:
        lo, hi = ranges[:, 0].copy(), ranges[:, 1].copy()
    for i, c in enumerate(chunks if ranges is None else ()):
        rows = [sent_row[(c.doc_id, s.start)] for s in c.sentences if (c.doc_id, s.start) in sent_row]
        if rows:
            lo[i], hi[i] = min(rows), max(rows) + 1
    return CorpusView(
        chunks=chunks,
        chunk_doc=np.array([number[c.doc_id] for c in chunks], dtype=np.int64),
        articles=articles,
        doc_number=number,
        doc_provinces=[frozenset(a.provinces) for a in articles],
        doc_title_terms=[title_terms(a) for a in articles],
        chunk_position=positions,
        sentence_row=sent_row,
        sentence_lo=lo,
        sentence_hi=hi,
        sentence_vectors=sentence_vectors,
        corpus_provinces=corpus_provinces,
        term_sets=term_sets,
        term_vocab=term_vocab,
    )


def positions(chunks: list[Chunk]) -> np.ndarray:
    """Each chunk's place in its article: 0 for the first … 1 for the last."""
    per_doc: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        per_doc.setdefault(c.doc_id, []).append(i)
    out = np.zeros(len(chunks), np.float32)
    for rows in per_doc.values():
        for n, i in enumerate(rows):
            out[i] = n / max(len(rows) - 1, 1)
    return out
