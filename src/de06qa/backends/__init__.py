"""The candidate seam: a backend returns, for one analysed question, the top lexical and the top
dense chunks with their raw scores. Everything above it (ranking, answers, the JSON contract) is
shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from de06qa.filters import Filters
from de06qa.query import Query


@dataclass(frozen=True, eq=False)
class Candidates:
    """Parallel arrays, one entry per candidate chunk (rows of the index's chunk list)."""

    rows: np.ndarray  # int64 chunk rows
    bm25_words: np.ndarray  # BM25 of the accented words field (0 for a question typed without marks)
    bm25_folded: np.ndarray  # BM25 of the folded syllables field
    dense: np.ndarray  # cosine of the question and the chunk's vector

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def lexical(self) -> np.ndarray:
        """The BM25 score the `bm25` mode ranks by: the accented words field plus half the folded
        one (a folded match alone may be a coincidence, dê/dế)."""
        return np.asarray(self.bm25_folded * 0.5 + self.bm25_words, np.float32)


class Backend(Protocol):
    def candidates(self, query: Query, depth: int, filters: Filters | None = None) -> Candidates:
        """The union of the top-`depth` chunks by BM25 and the top-`depth` by cosine, among the
        chunks of articles that pass `filters`."""
        ...

    def idf(self, terms: tuple[str, ...]) -> dict[str, float]:
        """Inverse document frequency of folded terms over the chunks (0 for unknown terms)."""
        ...

    def check(self) -> None:
        """Raise BackendUnavailable when the backend cannot answer now (for /health)."""
        ...
