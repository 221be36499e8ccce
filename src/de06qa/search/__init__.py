"""The Searcher: a question through the search's stages, each a module of this package that
`compare` and `eval/` use directly:

  questions  analyse: the question checked, its marks restored, embedded and analysed
  retrieval  candidates and rank: the backend's candidates, their features, the learned ranker
  passages   passages: the ranked chunks as passages to read (merged, no text twice)
  answers    read and confidence: selector → reader → calibrated confidence; dated answers
  results    what a search returns (its JSON: contract.py)

The CLI, the HTTP service and the evaluation only format what `Searcher.search` returns.
"""

from __future__ import annotations

import time
from dataclasses import replace

from de06qa import store
from de06qa.backends import Backend, open_backend
from de06qa.config import Settings
from de06qa.documents import Article
from de06qa.embedding import Embedder, model_info
from de06qa.errors import BadQuery
from de06qa.filters import SORTS, Filters
from de06qa.query import Query
from de06qa.ranking import Models, load_models, sigmoid
from de06qa.reader import OnnxReader, Reader
from de06qa.search.answers import READ_SENTENCES, Answerer
from de06qa.search.passages import facets, newest_first, top_passages
from de06qa.search.questions import EMPTY_QUESTION, analyse_many
from de06qa.search.results import AnswerSpan, Passage, SearchResult
from de06qa.search.retrieval import rank

MODES = ("hybrid", "bm25", "dense")


class Searcher:
    """An index (a backend), the model it was built with, the reader and the fitted models."""

    def __init__(
        self,
        backend: Backend,
        embedder: Embedder,
        settings: Settings,
        models: Models | None = None,
        reader: Reader | None = None,
    ) -> None:
        m = backend.manifest
        info = model_info(embedder, int(m.get("model", {}).get("dim") or 0))
        if settings.backend == "embedded":
            store.check_model(m, info, str(settings.index_dir))
        else:
            store.check_model(
                m, info, f"the index {settings.collection!r} in Milvus",
                f"de06qa index FOLDER --rebuild --backend milvus --collection {settings.collection}",
            )  # fmt: skip
        self.backend = backend
        self.embedder = embedder
        self.settings = settings
        # the reader loads on its first question
        self.answerer = Answerer(models or load_models(), reader or OnnxReader(settings))

    @classmethod
    def open(
        cls,
        settings: Settings,
        embedder: Embedder,
        models: Models | None = None,
        reader: Reader | None = None,
    ) -> Searcher:
        return cls(open_backend(settings), embedder, settings, models, reader)

    @property
    def models(self) -> Models:
        return self.answerer.models

    @property
    def reader(self) -> Reader:
        return self.answerer.reader

    def document(self, doc_id: str) -> Article:
        return self.backend.article(doc_id)

    def analyse(self, queries: list[str]) -> list[Query]:
        """The questions validated and analysed as this searcher reads them (questions.py)."""
        s = self.settings
        return analyse_many(
            queries, self.embedder, s.max_query_chars, s.restore_marks, bool(self.backend.stats.chunks)
        )

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: str = "hybrid",
        filters: Filters | None = None,
        sort: str = "relevance",
    ) -> SearchResult:
        return self.search_many([query], k, mode, filters, sort)[0]

    def search_many(
        self,
        queries: list[str],
        k: int | None = None,
        mode: str = "hybrid",
        filters: Filters | None = None,
        sort: str = "relevance",
    ) -> list[SearchResult]:
        """Batch-first: the question embeddings are computed in one call."""
        if mode not in MODES:
            raise BadQuery(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if sort not in SORTS:
            raise BadQuery(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
        filters = filters or Filters()
        k = k or self.settings.k
        t0 = time.perf_counter()
        analysed = self.analyse(queries)
        t_embed = (time.perf_counter() - t0) * 1000 / max(len(queries), 1)
        out = []
        for q in analysed:
            res = self._search_one(q, k, mode, filters, sort)
            res.timings_ms["embed"] = t_embed
            res.timings_ms["total"] += t_embed
            out.append(res)
        return out

    def _search_one(self, q: Query, k: int, mode: str, filters: Filters, sort: str) -> SearchResult:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        undated = self.backend.stats.undated if filters.dated else 0
        if not self.backend.stats.chunks:
            return SearchResult(
                q.text, False, 0.0, None, (), {"total": 0.0}, filters=filters, sort=sort,
                undated_excluded=undated, comparative=q.comparative, read_as=q.marked,
            )  # fmt: skip
        r = rank(self.backend, self.models.ranker, q, filters)
        c = r.candidates
        lexical = c.lexical
        timings["retrieve"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        if mode == "bm25":
            scores = lexical
        elif mode == "dense":
            scores = c.dense
        else:
            scores = sigmoid(r.logits)
        passages = top_passages(r, scores, lexical, k, 2 * self.settings.chunk_chars)
        timings["rank"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        answer, confidence = self.answerer.answer(r, passages, timings=timings)
        if answer is not None:
            answer = self.answerer.dated(r, passages, replace(answer, confidence=confidence))
            confidence = answer.confidence
        timings["answer"] = (time.perf_counter() - t) * 1000
        if sort == "date":
            passages = newest_first(passages)
        timings["total"] = timings["retrieve"] + timings["rank"] + timings["answer"]  # "read" is in "answer"
        answerable = answer is not None and confidence >= self.models.threshold
        return SearchResult(
            q.text, answerable, confidence, answer if answerable else None, passages, timings,
            filters=filters, sort=sort, facets=facets(c.view, c.rows), undated_excluded=undated,
            comparative=q.comparative, read_as=q.marked,
        )  # fmt: skip


def open_searcher(
    settings: Settings, embedder: Embedder | None = None, reader: Reader | None = None
) -> Searcher:
    """Load the index and the model it was built with (the model only if the index exists)."""
    from de06qa.embedding import create_embedder

    backend = open_backend(settings)
    return Searcher(backend, embedder or create_embedder(settings), settings, reader=reader)


__all__ = [
    "EMPTY_QUESTION", "MODES", "READ_SENTENCES", "AnswerSpan", "Passage", "SearchResult", "Searcher",
    "open_searcher",
]  # fmt: skip
