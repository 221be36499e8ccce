"""The embedded backend: bm25s and FAISS over an index folder loaded into this process."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from de06qa import store
from de06qa.backends import Candidates, Stats
from de06qa.corpus import CorpusView, build_view, positions
from de06qa.documents import Article, Chunk
from de06qa.errors import UnknownDocument
from de06qa.filters import Filters
from de06qa.query import Query


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    if depth >= len(scores):
        return np.flatnonzero(scores > 0)
    top = np.argpartition(-scores, depth - 1)[:depth]
    return top[scores[top] > 0]


def view_of(data: store.IndexData) -> CorpusView:
    articles = list(data.articles.values())
    provinces = [frozenset(a.provinces) for a in articles]
    return build_view(
        articles,
        data.chunks,
        positions(data.chunks),
        [(d, s.start) for s, d in zip(data.sentences, data.sentence_docs)],
        data.sentence_vectors,
        frozenset().union(*provinces) if provinces else frozenset(),
        term_sets=data.term_sets,
        term_vocab=data.lexical.vocab("folded"),
    )


class EmbeddedBackend:
    def __init__(self, data: store.IndexData, folder: Path, loaded: object = None) -> None:
        self.data = data
        self.folder = folder
        self.loaded = loaded  # stamp() of the folder when it was read
        self.lexical, self.dense = data.lexical, data.dense
        self.view = view_of(data)
        self._stats = Stats(
            len(data.articles), len(data.chunks), sum(a.date is None for a in data.articles.values())
        )
        # Analysts repeat the same few filters; their row sets are kept.
        self.allowed = lru_cache(maxsize=64)(self._allowed)

    @classmethod
    def open(cls, folder: Path) -> EmbeddedBackend:
        # The stamp comes first: a rebuild swapped in while loading is seen as a change later.
        loaded = _stamp(folder)
        return cls(store.load(folder), folder, loaded)

    @property
    def manifest(self) -> dict[str, Any]:
        return self.data.manifest

    @property
    def stats(self) -> Stats:
        return self._stats

    def _allowed(self, filters: Filters) -> np.ndarray:
        """Sorted chunk rows of the articles that pass the filters."""
        ok = np.array([filters.matches(a) for a in self.view.articles], dtype=bool)
        return np.flatnonzero(ok[self.view.chunk_doc]) if len(ok) else np.zeros(0, np.int64)

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
        return Candidates(rows, words[rows], folded[rows], cos, self.view)

    def idf(self, terms: tuple[str, ...]) -> dict[str, float]:
        return self.lexical.idf("folded", terms)

    def article(self, doc_id: str) -> Article:
        try:
            return self.data.articles[doc_id]
        except KeyError:
            raise UnknownDocument(f"no article {doc_id!r}; GET /documents lists the doc_ids") from None

    def documents(self) -> list[tuple[Article, int]]:
        return [(a, len(a.text)) for a in self.view.articles]

    def chunks(self) -> Iterator[Chunk]:
        return iter(self.data.chunks)

    def check(self) -> None:
        """In this process: always available once loaded."""

    def stamp(self) -> object:
        return _stamp(self.folder)


def _stamp(folder: Path) -> tuple[int, int] | None:
    """Identity of the manifest file: a rebuild swaps in a new folder, so inode or mtime changes."""
    try:
        st = (folder / store.MANIFEST).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)
