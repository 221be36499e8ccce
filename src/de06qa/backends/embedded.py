"""The embedded backend: bm25s and FAISS over an index folder loaded into this process."""

from __future__ import annotations

import numpy as np

from de06qa.backends import Candidates
from de06qa.dense import DenseIndex
from de06qa.lexical import LexicalIndex
from de06qa.query import Query


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    if depth >= len(scores):
        return np.flatnonzero(scores > 0)
    top = np.argpartition(-scores, depth - 1)[:depth]
    return top[scores[top] > 0]


class EmbeddedBackend:
    def __init__(self, lexical: LexicalIndex, dense: DenseIndex) -> None:
        self.lexical = lexical
        self.dense = dense

    def candidates(self, query: Query, depth: int) -> Candidates:
        folded = self.lexical.scores("folded", list(query.folded_terms))
        words = self.lexical.scores("words", list(query.words)) if query.accented else np.zeros_like(folded)
        lex_rows = _top(folded + words, depth)
        if query.vector is not None:
            dense_rows, _ = self.dense.search_arrays(query.vector[None, :], depth)
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
