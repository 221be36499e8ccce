"""What a search returns: passages, the answer span and the result, with their JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from de06qa.dated import number_of
from de06qa.documents import Article, Chunk
from de06qa.filters import Filters


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
