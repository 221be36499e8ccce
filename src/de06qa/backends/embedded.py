"""The embedded backend: bm25s and FAISS over an index folder loaded into this process."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from de06qa.backends import Candidates
from de06qa.dense import DenseIndex
from de06qa.documents import Article
from de06qa.filters import Filters
from de06qa.lexical import LexicalIndex
from de06qa.query import Query


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    if depth >= len(scores):
        return np.flatnonzero(scores > 0)
    top = np.argpartition(-scores, depth - 1)[:depth]
    return top[scores[top] > 0]


class EmbeddedBackend:
    def __init__(
        self, lexical: LexicalIndex, dense: DenseIndex, articles: list[Article], chunk_doc: np.ndarray
    ) -> None:
        self.lexical = lexical
        self.dense = dense
        self._articles = articles
        self._chunk_doc = chunk_doc  # chunk row -> position in `articles`
        # Analysts repeat the same few filters; their row sets are kept.
        self.allowed = lru_cache(maxsize=64)(self._allowed)

    def _allowed(self, filters: Filters) -> np.ndarray:
        """Sorted chunk rows of the articles that pass the filters."""
        ok = np.array([filters.matches(a) for a in self._articles], dtype=bool)
        return np.flatnonzero(ok[self._chunk_doc]) if len(ok) else np.zeros(0, np.int64)

    def candidates(self, query: Query, depth: int, filters: Filters | None = None) -> Candidates:
        allowed = self.allowed(filters) if filters is not None and filters.active else None
        folded = self.lexical.scores("folded", list(query.folded_terms))
        words = self.lexical.scores("words", list(query.words)) if query.accented else np.zeros_like(folded)
        if allowed is not None:
            mask = np.zeros(len(folded), np.float32)
            mask[allowed] = 1.0
            folded, words = folded * mask, words * mask
        lex_rows = _top(folded + words, depth)
        if query.vector is not None:
            dense_rows, _ = self.dense.search_arrays(query.vector[None, :], depth, allowed)
        else:
            dense_rows = np.zeros(0, np.int64)
        rows = np.union1d(lex_rows, dense_rows).astype(np.int64)
        cos = (
            self.dense.score(query.vector, rows)
            if query.vector is not None
            else np.zeros(len(rows), np.float32)
        )
        return Candidates(rows, words[rows], folded[rows], cos)

    def idf(self, terms: tuple[str, ...]) -> dict[str, float]:
        return self.lexical.idf("folded", terms)

    def check(self) -> None:
        """In this process: always available once loaded."""
