"""The Searcher: lexical + dense retrieval, fusion, article context, answer and confidence.

The CLI, the HTTP service and the evaluation only format what `Searcher.search` returns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from de06qa import store
from de06qa.answer import content_terms, has_candidate, locate, question_kind
from de06qa.config import Settings
from de06qa.documents import Article, Chunk, Span
from de06qa.embedding import Embedder
from de06qa.errors import BadQuery, UnknownDocument
from de06qa.gazetteer import covered_by, find_provinces
from de06qa.indexing import model_info
from de06qa.text import fold, folded_terms, has_diacritics, nfc, word_terms, words

MODES = ("hybrid", "bm25", "dense")


@dataclass(frozen=True)
class FusionParams:
    method: str = "weighted"  # "weighted" (normalised weighted sum) or "rrf"
    lexical_weight: float = 0.4  # weighted: share of the normalised BM25 score
    rrf_k: int = 60
    folded_weight: float = 0.5  # BM25 of the folded field, relative to the accented words field
    province_boost: float = 0.25  # added to chunks of an article about a province the question names


@dataclass(frozen=True)
class Passage:
    rank: int
    chunk: Chunk
    article: Article
    score: float
    lexical: float
    dense: float


@dataclass(frozen=True)
class AnswerSpan:
    text: str
    sentence: str
    doc_id: str
    start: int
    end: int
    sentence_start: int
    sentence_end: int


@dataclass(frozen=True)
class SearchResult:
    query: str
    answerable: bool
    confidence: float
    answer: AnswerSpan | None
    passages: tuple[Passage, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of one search (see DESIGN.md)."""
        a = self.answer
        return {
            "query": self.query,
            "answerable": self.answerable,
            "confidence": round(self.confidence, 4),
            "answer": None if a is None else {
                "text": a.text, "sentence": a.sentence, "doc_id": a.doc_id, "start": a.start, "end": a.end,
                "sentence_start": a.sentence_start, "sentence_end": a.sentence_end,
            },
            "results": [
                {
                    "rank": p.rank, "chunk_id": p.chunk.chunk_id, "doc_id": p.chunk.doc_id,
                    "title": p.article.title, "source": p.article.source, "date": p.article.date,
                    "text": p.chunk.text, "start": p.chunk.start, "end": p.chunk.end,
                    "score": round(p.score, 4),
                    "scores": {"lexical": round(p.lexical, 4), "dense": round(p.dense, 4)},
                }
                for p in self.passages
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _rrf(scores: np.ndarray, k: int) -> np.ndarray:
    ranks = np.empty(len(scores), dtype=np.float32)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return 1.0 / (k + ranks)


class Searcher:
    def __init__(self, data: store.IndexData, embedder: Embedder, settings: Settings,
                 fusion: FusionParams | None = None) -> None:
        store.check_model(data.manifest, model_info(embedder), settings.index_dir)
        self.data = data
        self.embedder = embedder
        self.settings = settings
        self.fusion = fusion or FusionParams()
        self._chunk_doc = np.array([c.doc_id for c in data.chunks])
        self._sent_index = {(d, s.start, s.end): i for i, (s, d) in enumerate(zip(data.sentences, data.sentence_docs))}
        self._doc_provinces = {d: set(a.provinces) for d, a in data.articles.items()}
        self._corpus_provinces = set().union(*self._doc_provinces.values()) if data.articles else set()

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder, fusion: FusionParams | None = None) -> Searcher:
        return cls(store.load(settings.index_dir), embedder, settings, fusion)

    # -- public API -------------------------------------------------------------------------------
    def document(self, doc_id: str) -> Article:
        try:
            return self.data.articles[doc_id]
        except KeyError:
            raise UnknownDocument(f"no article {doc_id!r}; GET /documents lists the doc_ids") from None

    def validate(self, query: str) -> str:
        q = nfc(query).strip()
        if not q:
            raise BadQuery("the question is empty; type a question, e.g. \"Hà Giang có bao nhiêu dịch vụ công toàn trình?\"")
        if len(q) > self.settings.max_query_chars:
            raise BadQuery(f"the question has {len(q)} characters; the limit is {self.settings.max_query_chars}")
        return q

    def search(self, query: str, k: int | None = None, mode: str = "hybrid") -> SearchResult:
        return self.search_many([query], k, mode)[0]

    def search_many(self, queries: list[str], k: int | None = None, mode: str = "hybrid") -> list[SearchResult]:
        """Batch-first: the query embeddings are computed in one call."""
        if mode not in MODES:
            raise BadQuery(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        k = k or self.settings.k
        qs = [self.validate(q) for q in queries]
        t0 = time.perf_counter()
        qvecs = self.embedder.embed_queries(qs) if mode != "bm25" and self.data.chunks else None
        t_embed = (time.perf_counter() - t0) * 1000 / max(len(qs), 1)
        out = []
        for i, q in enumerate(qs):
            res = self._search_one(q, k, mode, None if qvecs is None else qvecs[i])
            res.timings_ms["embed"] = t_embed
            res.timings_ms["total"] += t_embed
            out.append(res)
        return out

    # -- internals --------------------------------------------------------------------------------
    def _lexical(self, q: str) -> np.ndarray:
        lex = self.data.lexical
        s = lex.scores("folded", folded_terms(q)) * self.fusion.folded_weight
        if has_diacritics(q):
            s = s + lex.scores("words", word_terms(words(q)))
        return s

    def _search_one(self, q: str, k: int, mode: str, qvec: np.ndarray | None) -> SearchResult:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        n = len(self.data.chunks)
        if n == 0:
            return SearchResult(q, False, 0.0, None, (), {"total": 0.0})
        lex = self._lexical(q) if mode != "dense" else np.zeros(n, np.float32)
        timings["lexical"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        dense = np.zeros(n, np.float32)
        if qvec is not None:
            for row, score in self.data.dense.search(qvec[None, :], n)[0]:
                dense[row] = score
        timings["dense"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        named = {p for name in find_provinces(q) for p in covered_by(name)}
        fused = self._fuse(lex, dense, mode, named)
        order = np.argsort(-fused, kind="stable")[:k]
        passages = tuple(
            Passage(r + 1, self.data.chunks[i], self.data.articles[self.data.chunks[i].doc_id],
                    float(fused[i]), float(lex[i]), float(dense[i]))
            for r, i in enumerate(order)
        )
        timings["fusion"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        answer, confidence = self._answer(q, passages, qvec, named)
        timings["answer"] = (time.perf_counter() - t) * 1000
        timings["total"] = sum(timings.values())
        answerable = answer is not None and confidence >= 0.5
        return SearchResult(q, answerable, confidence, answer if answerable else None, passages, timings)

    def _fuse(self, lex: np.ndarray, dense: np.ndarray, mode: str, named: set[str]) -> np.ndarray:
        f = self.fusion
        if mode == "bm25":
            fused = _minmax(lex)
        elif mode == "dense":
            fused = dense.copy()
        elif f.method == "rrf":
            fused = (_rrf(lex, f.rrf_k) + _rrf(dense, f.rrf_k)) * (f.rrf_k + 1) / 2
        else:
            fused = f.lexical_weight * _minmax(lex) + (1 - f.lexical_weight) * _minmax(dense)
        if mode == "hybrid" and named:
            about = np.array([bool(self._doc_provinces[d] & named) for d in self._chunk_doc])
            fused = fused + f.province_boost * about
        return fused.astype(np.float32)

    def _answer(self, q: str, passages: tuple[Passage, ...], qvec: np.ndarray | None,
                named: set[str]) -> tuple[AnswerSpan | None, float]:
        """Pick the answering sentence among the top passages, the span inside it, and a confidence."""
        if not passages:
            return None, 0.0
        kind = question_kind(q)
        terms = content_terms(q)
        best: tuple[float, Span, Passage] | None = None
        for p in passages[:3]:
            context = set(fold(" ".join([p.article.title, *p.article.provinces])).lower().split())
            for s in p.chunk.sentences:
                sent_terms = set(fold(s.text).lower().split()) | context
                cov = sum(1 for t in terms if t in sent_terms) / len(terms) if terms else 0.0
                sim = 0.0
                if qvec is not None:
                    row = self._sent_index.get((p.chunk.doc_id, s.start, s.end))
                    sim = float(self.data.sentence_vectors[row] @ qvec) if row is not None else 0.0
                score = 2.0 * sim + 1.0 * cov + 0.3 * has_candidate(s.text, kind) - 0.05 * (p.rank - 1)
                if best is None or score > best[0]:
                    best = (score, s, p)
        assert best is not None
        _, sent, top = best
        span = locate(sent.text, q, kind)
        a, b = (sent.start + span[0], sent.start + span[1]) if span else (sent.start, sent.end)
        doc = top.article.text
        answer = AnswerSpan(doc[a:b], sent.text, top.chunk.doc_id, a, b, sent.start, sent.end)
        return answer, self._confidence(q, terms, sent, top, passages, kind, span is not None, named)

    def _confidence(self, q: str, terms: list[str], sent: Span, top: Passage, passages: tuple[Passage, ...],
                    kind: str | None, typed: bool, named: set[str]) -> float:
        """A probability-like score from a few interpretable signals (calibrated on eval/questions.jsonl)."""
        if named and not (named & self._corpus_provinces):
            return 0.02  # the question is about a province no article covers
        if named and not (named & self._doc_provinces[top.chunk.doc_id]):
            return 0.1
        dense_top = max(p.dense for p in passages)
        context = set(fold(" ".join([top.article.title, *top.article.provinces])).lower().split())
        chunk_terms = set(fold(top.chunk.text).lower().split()) | context
        cov = sum(1 for t in terms if t in chunk_terms) / len(terms) if terms else 0.0
        z = 25.0 * (dense_top - 0.80) + 2.0 * (cov - 0.5) + (0.8 if typed or kind is None else -0.8)
        return 1.0 / (1.0 + math.exp(-z))


def open_searcher(settings: Settings) -> Searcher:
    """Load the index and the model it was built with (the model only if the index exists)."""
    from de06qa.embedding import SentenceTransformerEmbedder

    data = store.load(settings.index_dir)
    return Searcher(data, SentenceTransformerEmbedder(settings), settings)


__all__ = ["FusionParams", "Searcher", "SearchResult", "open_searcher", "Path"]
