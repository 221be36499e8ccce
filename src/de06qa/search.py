"""The Searcher: lexical + dense retrieval, fusion, article context, answer and confidence.

The CLI, the HTTP service and the evaluation only format what `Searcher.search` returns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from de06qa import store
from de06qa.answer import STOPWORDS, content_terms, has_candidate, locate, question_kind
from de06qa.config import Settings
from de06qa.documents import Article, Chunk, Span
from de06qa.embedding import Embedder
from de06qa.errors import BadQuery, UnknownDocument
from de06qa.gazetteer import covered_by, find_provinces
from de06qa.indexing import context_terms, model_info
from de06qa.text import fold, folded_terms, has_diacritics, nfc, word_terms, words

MODES = ("hybrid", "bm25", "dense")
DENSE_DEPTH = 200
EMPTY_QUESTION = (
    'the question is empty; type a question, e.g. "Hà Giang có bao nhiêu dịch vụ công toàn trình?"'
)


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
            "answer": None
            if a is None
            else {
                "text": a.text,
                "sentence": a.sentence,
                "doc_id": a.doc_id,
                "start": a.start,
                "end": a.end,
                "sentence_start": a.sentence_start,
                "sentence_end": a.sentence_end,
            },
            "results": [
                {
                    "rank": p.rank,
                    "chunk_id": p.chunk.chunk_id,
                    "doc_id": p.chunk.doc_id,
                    "title": p.article.title,
                    "source": p.article.source,
                    "date": p.article.date,
                    "text": p.chunk.text,
                    "start": p.chunk.start,
                    "end": p.chunk.end,
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
    def __init__(
        self,
        data: store.IndexData,
        embedder: Embedder,
        settings: Settings,
        fusion: FusionParams | None = None,
    ) -> None:
        store.check_model(data.manifest, model_info(embedder), settings.index_dir)
        self.data = data
        self.embedder = embedder
        self.settings = settings
        self.fusion = fusion or FusionParams()
        # Chunk row -> article number, so per-article facts broadcast to chunks without a loop.
        self._doc_ids = list(data.articles)
        number = {d: i for i, d in enumerate(self._doc_ids)}
        self._chunk_doc = np.array([number[c.doc_id] for c in data.chunks], dtype=np.int64)
        self._sent_index = {
            (d, s.start, s.end): i for i, (s, d) in enumerate(zip(data.sentences, data.sentence_docs))
        }
        self._doc_provinces = {d: set(a.provinces) for d, a in data.articles.items()}
        self._corpus_provinces = set().union(*self._doc_provinces.values()) if data.articles else set()
        self._context = {d: context_terms(a) for d, a in data.articles.items()}
        self._title_folded = {
            d: set(fold(" ".join([a.title, *a.provinces])).lower().split()) for d, a in data.articles.items()
        }

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
            raise BadQuery(EMPTY_QUESTION)
        if len(q) > self.settings.max_query_chars:
            raise BadQuery(
                f"the question has {len(q)} characters; the limit is {self.settings.max_query_chars}"
            )
        return q

    def search(self, query: str, k: int | None = None, mode: str = "hybrid") -> SearchResult:
        return self.search_many([query], k, mode)[0]

    def search_many(
        self, queries: list[str], k: int | None = None, mode: str = "hybrid"
    ) -> list[SearchResult]:
        """Batch-first: the query embeddings are computed in one call."""
        if mode not in MODES:
            raise BadQuery(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        k = k or self.settings.k
        qs = [self.validate(q) for q in queries]
        t0 = time.perf_counter()
        # Every mode embeds the question: the answer sentence and the confidence need it, whatever
        # ranked the passages.
        qvecs = self.embedder.embed_queries(qs) if self.data.chunks else None
        t_embed = (time.perf_counter() - t0) * 1000 / max(len(qs), 1)
        out = []
        for i, q in enumerate(qs):
            res = self._search_one(q, k, mode, None if qvecs is None else qvecs[i])
            res.timings_ms["embed"] = t_embed
            res.timings_ms["total"] += t_embed
            out.append(res)
        return out

    # -- internals --------------------------------------------------------------------------------
    def _lexical(self, q: str) -> tuple[np.ndarray, float]:
        """BM25 scores, and the share of the question's topic words the corpus knows at all: a
        question in English shares few words with Vietnamese articles, so its BM25 ranking is
        mostly noise and fusion should lean on the dense side."""
        lex = self.data.lexical
        folded = folded_terms(q)
        s = lex.scores("folded", folded) * self.fusion.folded_weight
        if has_diacritics(q):
            s = s + lex.scores("words", word_terms(words(q)))
        terms = content_terms(q)
        known = sum(1 for t in terms if lex.knows("folded", t)) / len(terms) if terms else 0.0
        return s, known

    def _search_one(self, q: str, k: int, mode: str, qvec: np.ndarray | None) -> SearchResult:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        n = len(self.data.chunks)
        if n == 0:
            return SearchResult(q, False, 0.0, None, (), {"total": 0.0})
        lex, known = self._lexical(q) if mode != "dense" else (np.zeros(n, np.float32), 0.0)
        timings["lexical"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        dense = np.zeros(n, np.float32)
        if qvec is not None:
            # Exact scores for the dense top DENSE_DEPTH; the rest share the lowest of those (on
            # the seeds that is every chunk; on 100k chunks it spares a full sort of all scores).
            rows, scores = self.data.dense.search_arrays(qvec[None, :], min(n, max(DENSE_DEPTH, 20 * k)))
            dense[:] = scores[-1] if len(scores) else 0.0
            dense[rows] = scores
        timings["dense"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        named = {p for name in find_provinces(q) for p in covered_by(name)}
        fused = self._fuse(lex, dense, mode, named, known)
        top = np.argpartition(-fused, k - 1)[:k] if k < n else np.arange(n)
        order = top[np.argsort(-fused[top], kind="stable")]
        passages = tuple(
            Passage(
                r + 1,
                self.data.chunks[i],
                self.data.articles[self.data.chunks[i].doc_id],
                float(fused[i]),
                float(lex[i]),
                float(dense[i]),
            )
            for r, i in enumerate(order)
        )
        timings["fusion"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        answer, confidence = self._answer(q, passages, qvec, named)
        timings["answer"] = (time.perf_counter() - t) * 1000
        timings["total"] = sum(timings.values())
        answerable = answer is not None and confidence >= 0.5
        return SearchResult(q, answerable, confidence, answer if answerable else None, passages, timings)

    def _fuse(
        self, lex: np.ndarray, dense: np.ndarray, mode: str, named: set[str], known: float
    ) -> np.ndarray:
        f = self.fusion
        w = f.lexical_weight * known
        if mode == "bm25":
            fused = _minmax(lex)
        elif mode == "dense":
            fused = dense.copy()
        elif f.method == "rrf":
            fused = (known * _rrf(lex, f.rrf_k) + _rrf(dense, f.rrf_k)) * (f.rrf_k + 1) / 2
        else:
            fused = w * _minmax(lex) + (1 - w) * _minmax(dense)
        if mode == "hybrid" and named:
            about_doc = np.array([bool(self._doc_provinces[d] & named) for d in self._doc_ids])
            about = about_doc[self._chunk_doc]
            fused = fused + f.province_boost * about
        return fused.astype(np.float32)

    def _answer(
        self, q: str, passages: tuple[Passage, ...], qvec: np.ndarray | None, named: set[str]
    ) -> tuple[AnswerSpan | None, float]:
        """Pick the answering sentence among the top passages, the span inside it, and a confidence."""
        if not passages:
            return None, 0.0
        kind = question_kind(q)
        terms = content_terms(q)
        best: tuple[float, Span, Passage, float, float] | None = None
        for p in passages[:3]:
            context = self._title_folded[p.chunk.doc_id]
            on_topic = not named or bool(named & self._doc_provinces[p.chunk.doc_id])
            for s in p.chunk.sentences:
                sent_terms = set(fold(s.text).lower().split()) | context
                cov = sum(1 for t in terms if t in sent_terms) / len(terms) if terms else 0.0
                sim = 0.0
                if qvec is not None:
                    row = self._sent_index.get((p.chunk.doc_id, s.start, s.end))
                    sim = float(self.data.sentence_vectors[row] @ qvec) if row is not None else 0.0
                score = (
                    2.0 * sim + cov + 0.3 * has_candidate(s.text, kind) + 0.5 * on_topic - 0.05 * (p.rank - 1)
                )
                if best is None or score > best[0]:
                    best = (score, s, p, sim, cov)
        assert best is not None
        _, sent, top, sim, cov = best
        span = locate(sent.text, q, kind)
        a, b = (sent.start + span[0], sent.start + span[1]) if span else (sent.start, sent.end)
        answer = AnswerSpan(top.article.text[a:b], sent.text, top.chunk.doc_id, a, b, sent.start, sent.end)
        features = {
            "dense_top": max(p.dense for p in passages),
            "sentence_sim": sim,
            "coverage": self._phrase_coverage(q, top),
            # The question names a province and the answer comes from that province's article.
            "province_match": float(bool(named & self._doc_provinces[top.chunk.doc_id])),
        }
        if named and not (named & self._corpus_provinces):
            return answer, 0.02  # the question is about a province no article covers
        if named and not (named & self._doc_provinces[top.chunk.doc_id]):
            return answer, 0.1  # the answering sentence is about another province
        return answer, confidence(features)

    def _phrase_coverage(self, q: str, p: Passage) -> float:
        """Share of the question's topic words (underthesea words, or folded syllable pairs for a
        question without diacritics) found in the passage or its article's title: "giá vàng" shares
        syllables with many passages but the word "giá_vàng" with none."""
        ctx_words, ctx_folded = self._context[p.chunk.doc_id]
        if has_diacritics(q):
            stop = STOPWORDS
            units = [
                w
                for w in word_terms(words(q))
                if fold(w).lower().replace("_", " ") not in stop
                and not all(x in stop for x in fold(w).lower().split("_"))
            ]
            have = set(p.chunk.words) | set(ctx_words)
        else:
            syl = content_terms(q)
            units = [f"{a}_{b}" for a, b in zip(syl, syl[1:])] or syl
            have = set(p.chunk.folded) | set(ctx_folded)
        return sum(1 for u in units if u in have) / len(units) if units else 0.0


# A logistic score over three interpretable signals. The weights are set by hand so that each one
# reads plainly (a topic-word coverage of ~45% is the break-even point; naming the answer's province
# is worth a lot; dense similarity of the answering sentence adds or removes a little) and were
# checked against eval/questions.jsonl. A fitted logistic regression on the same data put nearly all
# weight on coverage and province match but had too few unanswerable examples to trust its bias.
def confidence(features: dict[str, float]) -> float:
    z = (
        6.0 * (features["coverage"] - 0.45)
        + 3.0 * features["province_match"]
        + 10.0 * (features["sentence_sim"] - 0.80)
    )
    return 1.0 / (1.0 + math.exp(-z))


def open_searcher(settings: Settings) -> Searcher:
    """Load the index and the model it was built with (the model only if the index exists)."""
    from de06qa.embedding import SentenceTransformerEmbedder

    data = store.load(settings.index_dir)
    return Searcher(data, SentenceTransformerEmbedder(settings), settings)


__all__ = ["FusionParams", "SearchResult", "Searcher", "open_searcher"]
