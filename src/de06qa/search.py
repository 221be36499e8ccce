"""The Searcher: question analysis → backend candidates → learned ranking → answer and confidence.

The CLI, the HTTP service and the evaluation only format what `Searcher.search` returns.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from de06qa import store
from de06qa.accents import with_marks
from de06qa.backends import Backend, Candidates
from de06qa.config import Settings
from de06qa.corpus import CorpusView
from de06qa.dated import FIGURE_KINDS, choose, conflict, newest_first, number_of
from de06qa.documents import Article, Chunk, Span
from de06qa.embedding import Embedder
from de06qa.errors import BadQuery
from de06qa.figures import as_of_in
from de06qa.filters import SORTS, Filters
from de06qa.indexing import milvus_uri, model_info
from de06qa.query import Query, analyse
from de06qa.ranking import (
    CONFIDENCE_FEATURES,
    RANK_FEATURES,
    SENTENCE_FEATURES,
    Models,
    load_models,
    rank_features,
    sentence_features,
    sigmoid,
)
from de06qa.reader import Found, OnnxReader, Reader, Text
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
    as_of: str | None = None  # the date its figure holds for (figures.as_of_in), ISO
    as_of_from: str | None = None  # where that date was read: sentence, paragraph or article
    confidence: float = 0.0
    title: str = ""  # its article's
    others: tuple[AnswerSpan, ...] = ()  # what other articles answer, newest first (dated.py)
    conflict: bool = False  # another article gives a different figure for the same date

    def _cited(self) -> dict[str, Any]:
        """What the answer and each of its others share in the JSON: the span, its sentence, its
        figure and date."""
        return {
            "text": self.text,
            "sentence": self.sentence,
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "sentence_start": self.sentence_start,
            "sentence_end": self.sentence_end,
            "page": self.page,
            "number": number_of(self.text),
            "as_of": self.as_of,
            "as_of_from": self.as_of_from,
        }

    def to_dict(self) -> dict[str, Any]:
        """The answer's part of the search JSON (DESIGN.md)."""
        return {
            **self._cited(),
            "conflict": self.conflict,
            "others": [
                {**o._cited(), "title": o.title, "confidence": round(o.confidence, 4)} for o in self.others
            ],
        }


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
    comparative: bool = False  # the question asks across provinces or over time (compare answers it)
    read_as: str = ""  # the question as the models read it: with marks restored (de06qa.accents)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of one search (see DESIGN.md)."""
        a = self.answer
        return {
            "query": self.query,
            "read_as": self.read_as or self.query,
            "answerable": self.answerable,
            "confidence": round(self.confidence, 4),
            "answer": None if a is None else a.to_dict(),
            "results": [
                {
                    "rank": p.rank,
                    "chunk_id": p.chunk.chunk_id,
                    "doc_id": p.chunk.doc_id,
                    "title": p.article.title,
                    "source": p.article.source,
                    "url": p.article.url or None,
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
            "comparative": self.comparative,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


# Candidates per retrieval side: the top CANDIDATES by BM25 and the top CANDIDATES by cosine. On
# ViNewsQA dev (the held-out part) the union holds a relevant chunk for 99% of the questions.
CANDIDATES = 100
# Sentences of the top ANSWER_PASSAGES passages compete to be the answer sentence; the reader reads
# at most the READ_SENTENCES the selector ranks first, stopping once no unread one can win.
ANSWER_PASSAGES = 3
READ_SENTENCES = 3


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
        self.reader = reader or OnnxReader(settings)  # loads on its first question
        self.settings = settings
        self.models = models or load_models()

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
        """Validate and analyse questions; their embeddings (of the questions with their marks,
        de06qa.accents) are computed in one call."""
        qs = [self.validate(q) for q in queries]
        marked = [with_marks(q) for q in qs] if self.settings.restore_marks else qs
        vecs = self.embedder.embed_queries(marked) if self.backend.stats.chunks else None
        return [analyse(q, None if vecs is None else vecs[i], m) for i, (q, m) in enumerate(zip(qs, marked))]

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
        out = []
        for q in analysed:
            res = self._search_one(q, k, mode, filters, sort)
            res.timings_ms["embed"] = t_embed
            res.timings_ms["total"] += t_embed
            out.append(res)
        return out

    def rank(self, q: Query, filters: Filters | None = None) -> Ranked:
        """Candidates from the backend, their features and the learned ranker's scores."""
        cands = self.backend.candidates(q, CANDIDATES, filters)
        idf = self.backend.idf(q.terms)
        x = rank_features(q, cands, cands.view, idf)
        return Ranked(q, cands, x, self.models.ranker.logits(x), idf)

    # -- internals --------------------------------------------------------------------------------
    def _search_one(self, q: Query, k: int, mode: str, filters: Filters, sort: str) -> SearchResult:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        undated = self.backend.stats.undated if filters.dated else 0
        if not self.backend.stats.chunks:
            return SearchResult(
                q.text, False, 0.0, None, (), {"total": 0.0}, filters, sort, {}, undated, q.comparative,
                q.marked,
            )  # fmt: skip
        r = self.rank(q, filters)
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
        passages = self.passages(r, scores, lexical, k)
        timings["rank"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        answer, confidence = self.answer(r, passages, timings=timings)
        if answer is not None:
            answer = self.dated(r, passages, replace(answer, confidence=confidence))
            confidence = answer.confidence
        timings["answer"] = (time.perf_counter() - t) * 1000
        if sort == "date":
            passages = _newest_first(passages)
        timings["total"] = timings["retrieve"] + timings["rank"] + timings["answer"]  # "read" is in "answer"
        answerable = answer is not None and confidence >= self.models.threshold
        return SearchResult(
            q.text, answerable, confidence, answer if answerable else None, passages, timings,
            filters, sort, _facets(c.view, c.rows), undated, q.comparative, q.marked,
        )  # fmt: skip

    def passages(self, r: Ranked, scores: np.ndarray, lexical: np.ndarray, k: int) -> tuple[Passage, ...]:
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

    def answer_sentences(
        self, r: Ranked, passages: tuple[Passage, ...], limit: int = ANSWER_PASSAGES
    ) -> tuple[list[tuple[Span, Passage]], np.ndarray]:
        """The sentences of the top `limit` passages that may hold the answer, and their features."""
        view = r.candidates.view
        seen: set[tuple[str, int]] = set()
        cands: list[tuple[Span, Passage]] = []
        rows = []
        for p in passages[:limit]:
            d = view.doc_number[p.chunk.doc_id]
            for s in p.chunk.sentences:
                if (p.chunk.doc_id, s.start) in seen:
                    continue
                seen.add((p.chunk.doc_id, s.start))
                vec = view.sentence_vector(p.chunk.doc_id, s.start)
                match = bool(r.query.provinces & view.doc_provinces[d])
                cands.append((s, p))
                rows.append((s, p.rank, p.logit, vec, view.doc_title_terms[d], match))
        return cands, sentence_features(r.query, rows, r.idf)

    def answer(
        self,
        r: Ranked,
        passages: tuple[Passage, ...],
        weigh: Callable[[Span, Passage], float] | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[AnswerSpan | None, float]:
        """The answer among the top passages (`read_answer`) and a calibrated confidence that the
        corpus answers the question at all."""
        got = self.read_answer(r, passages, weigh, timings)
        if got is None:
            return None, 0.0
        answer, features = got
        return answer, float(self.models.confidence.proba(features)[0])

    def read_answer(
        self,
        r: Ranked,
        passages: tuple[Passage, ...],
        weigh: Callable[[Span, Passage], float] | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[AnswerSpan, np.ndarray] | None:
        """The learned selector ranks the top passages' sentences, the reader reads (up to) the
        first READ_SENTENCES and gives each its best span and a probability that it answers; the
        sentence with the highest product of the two probabilities gives the answer. Returns it
        with its confidence features. `weigh` scales each sentence's selector probability, 0
        ruling it out (compare: a figure about the province read). The reader's time goes into
        `timings["read"]`."""
        if not passages:
            return None
        cands, x = self.answer_sentences(r, passages)
        if not cands:
            return None
        probs = self.models.sentence.proba(x)
        chosen = probs if weigh is None else probs * np.array([weigh(s, p) for s, p in cands], np.float32)
        read = [int(i) for i in np.argsort(-chosen, kind="stable")[:READ_SENTENCES] if chosen[i] > 0]
        if not read:
            return None
        # Sentences are read one at a time, best selector first, until no unread one can win: its
        # product is below its selector probability (the reader's is < 1), so once the best product
        # so far reaches the next sentence's selector probability the pick is settled. The answer is
        # the one reading all READ_SENTENCES gives, at a third of the reading for most questions.
        found: list[Found | None] = []
        answers: list[float] = []  # the reader's probability that the sentence answers
        products: list[float] = []
        t = time.perf_counter()
        for i in read:
            if products and max(products) >= chosen[i]:
                break
            f = self.reader.read([(r.query.marked, [Text(cands[i][0].text, cands[i][0].start)])])[0][0]
            found.append(f)
            answers.append(float(sigmoid(f.answers)) if f is not None else 0.0)
            products.append(float(chosen[i]) * answers[-1])
        if timings is not None:
            timings["read"] = (time.perf_counter() - t) * 1000
        pick = int(np.argmax(products))
        best, span = read[pick], found[pick]
        sent, top = cands[best]
        answer = _answer_span(sent, top, span)
        return answer, self.confidence_features(r, passages, x[best], float(probs[best]), answers[pick])

    def dated(self, r: Ranked, passages: tuple[Passage, ...], answer: AnswerSpan) -> AnswerSpan:
        """The answer with the date its figure holds for and, for a question after a figure, the
        answers other articles among the passages give: the newest (or the one for the time the
        question names) is the answer, the others beside it (dated.py)."""
        q = r.query
        answer = _with_as_of(answer, passages)
        if q.comparative or q.kind not in FIGURE_KINDS or answer.confidence < self.models.threshold:
            return answer
        view = r.candidates.view
        others = {
            p.chunk.doc_id
            for p in passages
            if p.chunk.doc_id != answer.doc_id
            and (not q.provinces or q.provinces & view.doc_provinces[view.doc_number[p.chunk.doc_id]])
        }
        if not others:
            return answer
        # The selector's view of every shown passage's sentences: each other article's likeliest
        # sentence holding a number is read if the selector rates it at least half as well as the
        # answer's own (a weaker one would answer another question); one reader run for all.
        cands, x = self.answer_sentences(r, passages, len(passages))
        probs = self.models.sentence.proba(x)
        own = next(
            (float(probs[i]) for i, (s, p) in enumerate(cands)
             if p.chunk.doc_id == answer.doc_id and s.start == answer.sentence_start),
            0.0,
        )  # fmt: skip
        picks: dict[str, int] = {}
        for i in np.argsort(-probs, kind="stable").tolist():
            s, p = cands[i]
            if p.chunk.doc_id in others and p.chunk.doc_id not in picks and _DIGIT.search(s.text):
                if probs[i] < own / 2:
                    break
                picks[p.chunk.doc_id] = i
        if not picks:
            return answer
        read = list(picks.values())
        texts = [Text(cands[i][0].text, cands[i][0].start) for i in read]
        found = self.reader.read([(q.marked, texts)])[0]
        every = [answer]
        for i, f in zip(read, found):
            if f is None:
                continue
            prob = float(sigmoid(f.answers))
            features = self.confidence_features(r, passages, x[i], float(probs[i]), prob)
            confidence = float(self.models.confidence.proba(features)[0])
            if confidence >= self.models.threshold:
                got = _answer_span(*cands[i], f)
                every.append(_with_as_of(replace(got, confidence=confidence), passages))
        if len(every) == 1:
            return answer
        pick = choose(every, q.asked_time)
        rest = tuple(every[i] for i in newest_first(every) if i != pick)
        return replace(every[pick], others=rest, conflict=conflict(every, pick))

    def confidence_features(
        self, r: Ranked, passages: tuple[Passage, ...], sentence_x: np.ndarray, sentence_prob: float,
        reader_prob: float,
    ) -> np.ndarray:  # fmt: skip
        q, top, view = r.query, passages[0], r.candidates.view
        logits = sorted((p.logit for p in passages), reverse=True)
        d = view.doc_number[top.chunk.doc_id]
        col = {name: i for i, name in enumerate(SENTENCE_FEATURES)}
        i_top = int(np.argmax(r.logits))
        values = {
            "passage_prob": float(sigmoid(logits[0])),
            "passage_margin": logits[0] - logits[1] if len(logits) > 1 else 0.0,
            "sentence_prob": sentence_prob,
            "reader_prob": reader_prob,
            "answer_prob": sentence_prob * reader_prob,
            "sentence_cos": float(sentence_x[col["cos"]]),
            "dense_top": float(r.candidates.dense.max()),
            "bm25_top": float(r.features[:, RANK_FEATURES.index("bm25_folded_log")].max()),
            "idf_cover": float(r.features[i_top, RANK_FEATURES.index("idf_cover")]),
            "passage_sentence_idf_cover": float(r.features[i_top, RANK_FEATURES.index("sentence_idf_cover")]),
            "sentence_idf_cover": float(sentence_x[col["idf_cover_ctx"]]),
            "sentence_bigram_cover": float(sentence_x[col["bigram_cover"]]),
            "known": float(r.features[0, RANK_FEATURES.index("known")]),
            "province_unknown": float(bool(q.provinces) and not (q.provinces & view.corpus_provinces)),
            "province_mismatch": float(bool(q.provinces) and not (q.provinces & view.doc_provinces[d])),
        }
        return np.array([[values[f] for f in CONFIDENCE_FEATURES]], np.float32)


_DIGIT = re.compile(r"\d")


def _answer_span(sent: Span, p: Passage, span: Found | None) -> AnswerSpan:
    """The reader's span in `sent` (the whole sentence when it found none) as an answer."""
    a, b = (span.start, span.end) if span is not None else (sent.start, sent.end)
    return AnswerSpan(
        sent.text[a - sent.start : b - sent.start], sent.text, p.chunk.doc_id,
        a, b, sent.start, sent.end, p.article.page_at(a), title=p.article.title,
    )  # fmt: skip


def _with_as_of(answer: AnswerSpan, passages: tuple[Passage, ...]) -> AnswerSpan:
    """`answer` with the date its figure holds for, read as `compare` reads a row's."""
    p = next(
        (p for p in passages
         if p.chunk.doc_id == answer.doc_id and p.chunk.start <= answer.sentence_start < p.chunk.end),
        None,
    )  # fmt: skip
    if p is None:  # not read from the passages (compare's own reading): dated there
        return answer
    sent = Span(answer.sentence_start, answer.sentence_end, answer.sentence)
    when, source = as_of_in(p.chunk, sent, answer.start, p.article.date)
    return replace(answer, as_of=when, as_of_from=source if when else None)


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
