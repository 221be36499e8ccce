"""The read and confidence stages: the learned selector ranks the top passages' sentences, the
answer reader (reader/) reads the likeliest, and a calibrated model says how sure the answer is;
for a question after a figure, the answers other articles give, by date (dated.py)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from de06qa.dated import FIGURE_KINDS, choose, conflict, newest_first
from de06qa.documents import Span
from de06qa.figures import as_of_in
from de06qa.ranking import (
    CONFIDENCE_FEATURES,
    RANK_FEATURES,
    SENTENCE_FEATURES,
    Models,
    sentence_features,
    sigmoid,
)
from de06qa.reader import Found, Reader, Text
from de06qa.search.results import AnswerSpan, Passage
from de06qa.search.retrieval import Ranked

# Sentences of the top ANSWER_PASSAGES passages compete to be the answer sentence; the reader reads
# at most the READ_SENTENCES the selector ranks first, stopping once no unread one can win.
ANSWER_PASSAGES = 3
READ_SENTENCES = 3


@dataclass(frozen=True, eq=False)
class Answerer:
    """The fitted models (selector, confidence, threshold) and the reader, answering from passages."""

    models: Models
    reader: Reader

    def sentences(
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
        """The answer among the top passages (`read`) and a calibrated confidence that the corpus
        answers the question at all."""
        got = self.read(r, passages, weigh, timings)
        if got is None:
            return None, 0.0
        answer, features = got
        return answer, self.confidence(features)

    def confidence(self, features: np.ndarray) -> float:
        """The calibrated probability that the corpus answers, from `confidence_features`."""
        return float(self.models.confidence.proba(features)[0])

    def read(
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
        cands, x = self.sentences(r, passages)
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
        cands, x = self.sentences(r, passages, len(passages))
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
            confidence = self.confidence(features)
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
