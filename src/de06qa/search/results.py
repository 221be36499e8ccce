"""What a search returns: passages, the answer span and the result, with their JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

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
