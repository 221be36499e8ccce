"""The candidates stage: a question's candidate chunks from the backend, with their features and
the learned ranker's scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from de06qa.backends import Backend, Candidates
from de06qa.filters import Filters
from de06qa.query import Query
from de06qa.ranking import LinearModel, TreeModel, rank_features

# Candidates per retrieval side: the top CANDIDATES by BM25 and the top CANDIDATES by cosine. On
# ViNewsQA dev (the held-out part) the union holds a relevant chunk for 99% of the questions.
CANDIDATES = 100


@dataclass(frozen=True, eq=False)
class Ranked:
    """A question's candidates with their features and ranking scores (what fitting reads too)."""

    query: Query
    candidates: Candidates
    features: np.ndarray
    logits: np.ndarray  # the learned ranker's, whatever the mode
    idf: dict[str, float]


def rank(
    backend: Backend, ranker: LinearModel | TreeModel, q: Query, filters: Filters | None = None
) -> Ranked:
    """Candidates from the backend, their features and the learned ranker's scores."""
    cands = backend.candidates(q, CANDIDATES, filters)
    idf = backend.idf(q.terms)
    x = rank_features(q, cands, cands.view, idf)
    return Ranked(q, cands, x, ranker.logits(x), idf)
