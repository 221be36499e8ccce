"""The Searcher: question analysis → backend candidates → learned ranking → answer and confidence.

The CLI, the HTTP service and the evaluation only format what `Searcher.search` returns.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from de06qa import store
from de06qa.answer import locate
from de06qa.backends import Backend, Candidates
from de06qa.config import Settings
from de06qa.corpus import CorpusView
from de06qa.documents import Article, Chunk, Span
from de06qa.embedding import Embedder
from de06qa.errors import BadQuery
from de06qa.filters import SORTS, Filters
from de06qa.indexing import milvus_uri, model_info
from de06qa.query import Query, analyse
from de06qa.ranking import CONFIDENCE_FEATURES, RANK_FEATURES, Models, load_models, rank_features, sigmoid
from de06qa.reader import Found, Reader, Text
from de06qa.text import nfc

MODES = ("hybrid", "bm25", "dense")
_SURROGATE = re.compile("[\ud800-\udfff]")
EMPTY_QUESTION = (
    'the question is empty; type a question, e.g. "Hà Giang có bao nhiêu dịch vụ công toàn trình?"'
)


@dataclass(frozen=True)
class Passage:
    rank: int
    chunk: Chunk
    article: Article
    score: float
    lexical: float
    dense: float
    logit: float = 0.0  # the learned ranker's score, whatever the mode ranked by


@dataclass(frozen=True)
class AnswerSpan:
    text: str
    sentence: str
    doc_id: str
    start: int
    end: int
    sentence_start: int
    sentence_end: int
    page: int | None = None  # 1-based page of a paged source (PDF), else None


@dataclass(frozen=True)
class SearchResult:
    query: str
    answerable: bool
    confidence: float
    answer: AnswerSpan | None
    passages: tuple[Passage, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    filters: Filters = field(default_factory=Filters)
    sort: str = "relevance"
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    undated_excluded: int = 0  # articles without a date that a date filter left out

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
                "page": a.page,
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
                    "page": p.article.page_at(p.chunk.start),
                    "score": round(p.score, 4),
                    "scores": {"lexical": round(p.lexical, 4), "dense": round(p.dense, 4)},
                }
                for p in self.passages
            ],
            "filters": {
                **self.filters.to_dict(),
                "sort": self.sort,
                "undated_excluded": self.undated_excluded,
            },
            "facets": self.facets,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


# Candidates per retrieval side: the top CANDIDATES by BM25 and the top CANDIDATES by cosine. On
# ViNewsQA dev (the held-out part) the union holds a relevant chunk for 99% of the questions.
CANDIDATES = 100
# The reader reads the top READ_PASSAGES passages; its best span among them is the answer.
READ_PASSAGES = 3


@dataclass(frozen=True, eq=False)
class Ranked:
    """A question's candidates with their features and ranking scores (what fitting reads too)."""

    query: Query
    candidates: Candidates
    features: np.ndarray
    logits: np.ndarray  # the learned ranker's, whatever the mode
    idf: dict[str, float]


class Searcher:
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
        self.models = models or load_models()
        if reader is None:
            from de06qa.reader import OnnxReader

            reader = OnnxReader(settings)
        self.reader = reader

    @classmethod
    def open(
        cls,
        settings: Settings,
        embedder: Embedder,
        models: Models | None = None,
        reader: Reader | None = None,
    ) -> Searcher:
        return cls(open_backend(settings), embedder, settings, models, reader)

    # -- public API -------------------------------------------------------------------------------
    def document(self, doc_id: str) -> Article:
        return self.backend.article(doc_id)

    def validate(self, query: str) -> str:
        bad = _SURROGATE.search(query)
        if bad:
            # Python keeps bytes that are not UTF-8 (a Latin-1 terminal, a file in another
            # encoding) as lone surrogates; no model can read them.
            raise BadQuery(
                f"the question holds bytes that are not UTF-8 text (character {bad.start() + 1}); "
                "type it again, or convert the file to UTF-8"
            )
        q = nfc(query).strip()
        if not q:
            raise BadQuery(EMPTY_QUESTION)
        if len(q) > self.settings.max_query_chars:
            raise BadQuery(
                f"the question has {len(q)} characters; the limit is {self.settings.max_query_chars}"
            )
        return q

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: str = "hybrid",
        filters: Filters | None = None,
        sort: str = "relevance",
    ) -> SearchResult:
        return self.search_many([query], k, mode, filters, sort)[0]

    def analyse_many(self, queries: list[str]) -> list[Query]:
        """Validate and analyse questions; their embeddings are computed in one call."""
        qs = [self.validate(q) for q in queries]
        vecs = self.embedder.embed_queries(qs) if self.backend.stats.chunks else None
        return [analyse(q, None if vecs is None else vecs[i]) for i, q in enumerate(qs)]

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
        analysed = self.analyse_many(queries)
        t_embed = (time.perf_counter() - t0) * 1000 / max(len(queries), 1)
        staged = [self._retrieve(q, k, mode, filters) for q in analysed]
        t = time.perf_counter()
        chosen = self.read(staged)
        t_read = (time.perf_counter() - t) * 1000 / max(len(queries), 1)
        out = []
        for s, got in zip(staged, chosen):
            t = time.perf_counter()
            answer, confidence = (
                (got[0], float(self.models.confidence.proba(got[1])[0])) if got else (None, 0.0)
            )
            timings = {
                **s.timings,
                "read": t_read,
                "answer": (time.perf_counter() - t) * 1000,
                "embed": t_embed,
            }
            timings["total"] = sum(timings.values())
            answerable = answer is not None and confidence >= self.models.threshold
            passages = _newest_first(s.passages) if sort == "date" else s.passages
            c = s.ranked.candidates if s.ranked is not None else None
            out.append(
                SearchResult(
                    s.query.text,
                    answerable,
                    confidence,
                    answer if answerable else None,
                    passages,
                    timings,
                    filters,
                    sort,
                    _facets(c.view, c.rows) if c is not None else {},
                    s.undated,
                )
            )
        return out

    def rank(self, q: Query, filters: Filters | None = None) -> Ranked:
        """Candidates from the backend, their features and the learned ranker's scores."""
        cands = self.backend.candidates(q, CANDIDATES, filters)
        idf = self.backend.idf(q.terms)
        x = rank_features(q, cands, cands.view, idf)
        return Ranked(q, cands, x, self.models.ranker.logits(x), idf)

    # -- internals --------------------------------------------------------------------------------
    def _retrieve(self, q: Query, k: int, mode: str, filters: Filters) -> _Staged:
        """Candidates, ranking and the top k passages of one question (what the reader reads)."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        undated = self.backend.stats.undated if filters.dated else 0
        if not self.backend.stats.chunks:
            return _Staged(q, None, (), timings, undated)
        r = self.rank(q, filters)
        c = r.candidates
        timings["retrieve"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        if mode == "bm25":
            scores = c.lexical
        elif mode == "dense":
            scores = c.dense
        else:
            scores = sigmoid(r.logits)
        passages = self._passages(r, scores, c.lexical, k)
        timings["rank"] = (time.perf_counter() - t) * 1000
        return _Staged(q, r, passages, timings, undated)

    def _passages(self, r: Ranked, scores: np.ndarray, lexical: np.ndarray, k: int) -> tuple[Passage, ...]:
        """The top k by `scores`, as passages a person wants to read, no two sharing text: a chunk
        that overlaps or touches better ones of its article is merged with them (the passage grows
        to their union, at most two chunks long); past that length, only its sentences that no
        passage shows yet are kept, as a passage of their own."""
        view = r.candidates.view
        chunks = view.chunks
        limit = 2 * self.settings.chunk_chars
        groups: list[_Group] = []
        for pos, i in enumerate(np.argsort(-scores, kind="stable").tolist()):
            if len(groups) == k and pos >= 2 * k:
                break  # far-down neighbours would only pad passages with weak text
            ch = chunks[int(r.candidates.rows[i])]
            same = [g for g in groups if g.doc_id == ch.doc_id]
            near = [g for g in same if ch.start <= g.end and g.start <= ch.end]
            if not near:
                if len(groups) < k:
                    groups.append(_Group(ch.doc_id, ch.start, ch.end, [ch], i))
                continue
            a, b = min(ch.start, *(g.start for g in near)), max(ch.end, *(g.end for g in near))
            others = [g for g in same if g not in near]
            if (
                b - a <= limit
                and not any(g.trimmed for g in near)
                and not any(g.start < b and a < g.end for g in others)
            ):
                first = near[0]  # the best of them: groups are kept in score order
                for g in near[1:]:
                    first.parts += g.parts
                    groups.remove(g)
                first.parts.append(ch)
                first.start, first.end = a, b
            elif len(groups) < k:
                free = _uncovered(ch, same)
                if free:
                    groups.append(_Group(ch.doc_id, free[0].start, free[-1].end, [ch], i, trimmed=True))
        out = []
        for n, g in enumerate(groups):
            chunk = _trimmed(g) if g.trimmed else _merged(g.parts)
            out.append(
                Passage(
                    n + 1, chunk, view.article(chunk.doc_id), float(scores[g.best]), float(lexical[g.best]),
                    float(r.candidates.dense[g.best]), float(r.logits[g.best]),
                )
            )  # fmt: skip
        return tuple(out)

    def read(self, staged: list[_Staged]) -> list[tuple[AnswerSpan, np.ndarray] | None]:
        """The reader over every question's top passages in one batched run: each question's
        answer and its confidence features (None when no passage has a word to read)."""
        found = self.reader.read_many([(s.query.text, passage_texts(s.passages)) for s in staged])
        return [self._answer(s, f) if s.ranked is not None else None for s, f in zip(staged, found)]

    def _answer(self, s: _Staged, found: list[Found | None]) -> tuple[AnswerSpan, np.ndarray] | None:
        """The reader's best span over the top passages (the passage it is surest answers, the
        ranker's score breaking near ties), the sentences that hold it, and the features of the
        confidence that the corpus answers the question at all."""
        assert s.ranked is not None
        read = [(f, p) for f, p in zip(found, s.passages) if f is not None]
        if not read:
            return None
        f, top = max(read, key=lambda fp: choice_score(fp[0], fp[1]))
        inside = [x for x in top.chunk.sentences if x.start < f.end and f.start < x.end]
        a, b = (inside[0].start, inside[-1].end) if inside else (f.start, f.end)
        sentence = top.chunk.text[a - top.chunk.start : b - top.chunk.start]
        start, end = f.start, f.end
        if s.query.kind in self.models.rule_kinds:
            rule = locate(sentence, s.query.text, s.query.kind)
            if rule is not None:
                start, end = a + rule[0], a + rule[1]
        text = top.chunk.text[start - top.chunk.start : end - top.chunk.start]
        answer = AnswerSpan(text, sentence, top.chunk.doc_id, start, end, a, b, top.article.page_at(start))
        return answer, self.confidence_features(s.ranked, s.passages, f, top, max(r.answers for r, _ in read))

    def confidence_features(
        self, r: Ranked, passages: tuple[Passage, ...], f: Found, chosen: Passage, answers_top: float
    ) -> np.ndarray:
        q, view = r.query, r.candidates.view
        logits = sorted((p.logit for p in passages), reverse=True)
        d = view.doc_number[chosen.chunk.doc_id]
        i_top = int(np.argmax(r.logits))
        values = {
            "reader_answers": f.answers,
            "reader_span": f.span,
            "reader_answers_top": answers_top,
            "chosen_rank": float(chosen.rank),
            "passage_prob": float(sigmoid(logits[0])),
            "passage_margin": logits[0] - logits[1] if len(logits) > 1 else 0.0,
            "dense_top": float(r.candidates.dense.max()),
            "bm25_top": float(r.features[:, RANK_FEATURES.index("bm25_folded_log")].max()),
            "idf_cover": float(r.features[i_top, RANK_FEATURES.index("idf_cover")]),
            "known": float(r.features[0, RANK_FEATURES.index("known")]),
            "province_unknown": float(bool(q.provinces) and not (q.provinces & view.corpus_provinces)),
            "province_mismatch": float(bool(q.provinces) and not (q.provinces & view.doc_provinces[d])),
        }
        return np.array([[values[f] for f in CONFIDENCE_FEATURES]], np.float32)


# Which passage's span is the answer: the reader's "answers" logit plus this share of the ranker's
# logit (chosen by answer F1 on the fitting questions: eval/fit_reader.py calibrate).
ANSWER_RANKER_WEIGHT = 0.5


def choice_score(f: Found, p: Passage, weight: float = ANSWER_RANKER_WEIGHT) -> float:
    return f.answers + weight * p.logit


@dataclass(frozen=True, eq=False)
class _Staged:
    """One question between retrieval and reading."""

    query: Query
    ranked: Ranked | None  # None for an empty index
    passages: tuple[Passage, ...]
    timings: dict[str, float]
    undated: int


def passage_texts(passages: tuple[Passage, ...]) -> list[Text]:
    """What the reader reads of a question's passages."""
    return [Text(p.chunk.text, p.chunk.start) for p in passages[:READ_PASSAGES]]


@dataclass(eq=False)
class _Group:
    """Chunks of one article shown as one passage (while `_passages` assembles them)."""

    doc_id: str
    start: int
    end: int
    parts: list[Chunk]
    best: int  # candidate index of the best-scored chunk
    trimmed: bool = False  # only the sentences of parts[0] from start to end


def _uncovered(chunk: Chunk, shown: list[_Group]) -> list[Span]:
    """The longest run of the chunk's sentences that no shown passage of its article overlaps."""
    best: list[Span] = []
    run: list[Span] = []
    for s in chunk.sentences:
        if any(s.start < g.end and g.start < s.end for g in shown):
            run = []
            continue
        run.append(s)
        if len(run) > len(best):
            best = list(run)
    return best


def _trimmed(g: _Group) -> Chunk:
    c = g.parts[0]
    return replace(
        c,
        chunk_id=f"{c.chunk_id}-",  # a part of chunk n
        start=g.start,
        end=g.end,
        text=c.text[g.start - c.start : g.end - c.start],
        sentences=tuple(s for s in c.sentences if g.start <= s.start and s.end <= g.end),
    )


def _merged(parts: list[Chunk]) -> Chunk:
    """One chunk covering several overlapping or adjacent chunks of an article ("doc#3+4"); its
    text is theirs joined (they cover one stretch of the article without a gap)."""
    if len(parts) == 1:
        return parts[0]
    parts = sorted(parts, key=lambda c: c.start)
    start, end = parts[0].start, max(c.end for c in parts)
    text = ""
    for c in parts:
        text += c.text[max(start + len(text) - c.start, 0) :]
    sentences = {(s.start, s.end): s for c in parts for s in c.sentences}
    numbers = "+".join(c.chunk_id.rsplit("#", 1)[-1] for c in parts)
    return Chunk(
        chunk_id=f"{parts[0].doc_id}#{numbers}",
        doc_id=parts[0].doc_id,
        start=start,
        end=end,
        text=text,
        words=tuple(w for c in parts for w in c.words),
        folded=tuple(f for c in parts for f in c.folded),
        sentences=tuple(sentences[k] for k in sorted(sentences)),
    )


def open_backend(settings: Settings) -> Backend:
    """Where the settings say the index lives."""
    if settings.backend == "embedded":
        from de06qa.backends.embedded import EmbeddedBackend

        return EmbeddedBackend.open(settings.index_dir)
    uri = milvus_uri(settings)  # says what is wrong with the settings
    from de06qa.backends.milvus import MilvusBackend

    assert uri is not None
    return MilvusBackend(uri, settings.collection)


def _newest_first(passages: tuple[Passage, ...]) -> tuple[Passage, ...]:
    """The same passages ordered by their article's date, newest first (undated last; equal dates
    keep their relevance order), ranks renumbered in that order."""
    order = sorted(passages, key=lambda p: p.article.date or "", reverse=True)
    order.sort(key=lambda p: p.article.date is None)  # stable: keeps the date order within
    return tuple(replace(p, rank=n) for n, p in enumerate(order, start=1))


def _facets(view: CorpusView, rows: np.ndarray) -> dict[str, dict[str, int]]:
    """Passages the question retrieved (its candidates, within the filters), counted per
    province the article is about and per publication year, largest first."""
    province: Counter[str] = Counter()
    year: Counter[str] = Counter()
    for d in view.chunk_doc[rows].tolist():
        a = view.articles[d]
        province.update(a.provinces)
        year[a.date[:4] if a.date else "undated"] += 1
    years = sorted((y for y in year if y != "undated"), reverse=True) + (
        ["undated"] if "undated" in year else []
    )
    return {"province": dict(province.most_common()), "year": {y: year[y] for y in years}}


def open_searcher(settings: Settings) -> Searcher:
    """Load the index and the model it was built with (the model only if the index exists)."""
    from de06qa.embedding import create_embedder

    backend = open_backend(settings)
    return Searcher(backend, create_embedder(settings), settings)


__all__ = ["SearchResult", "Searcher", "open_searcher"]
