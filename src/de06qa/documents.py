"""Frozen dataclasses passed between modules. Offsets are character offsets into `Article.text`."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A piece of the document text: `text == article.text[start:end]`."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Article:
    doc_id: str
    source: str  # path as given to ingest, e.g. "seeds/002_….txt"
    title: str
    text: str  # cleaned NFC text; every offset in the system points into it
    date: str | None = None  # ISO yyyy-mm-dd
    url: str = ""  # a web page's address (de06qa fetch, or the page's canonical link)
    provinces: tuple[str, ...] = ()  # provinces the article is about (pre-2025 names)
    provinces_2025: tuple[str, ...] = ()  # the same, as named after the 2025 mergers
    content_hash: str = ""
    # Paged sources (PDF): the offset in `text` where each page starts (page 1 at 0); else empty.
    pages: tuple[int, ...] = ()
    file: str = ""  # absolute path of the original file (served by GET /documents/{doc_id}/source)
    # What retrieval reads as the article's title when it differs from the displayed one: for an
    # article without a headline, its lead's first sentence (what the ranker was fitted with),
    # while `title` is the shorter readable form.
    lead_title: str = ""
    dropped_lines: tuple[str, ...] = field(default=(), compare=False)

    @property
    def context(self) -> str:
        """The title as retrieval context (chunk embeddings, BM25 context terms, title features)."""
        return self.lead_title or self.title

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding `offset`, None for a source without pages."""
        return bisect_right(self.pages, offset) if self.pages else None


@dataclass(frozen=True)
class Chunk:
    chunk_id: str  # "<doc_id>#<n>", stable across rebuilds of unchanged text
    doc_id: str
    start: int
    end: int
    text: str
    words: tuple[str, ...]  # underthesea words, tone-normalised, lowercased, syllables joined by "_"
    folded: tuple[str, ...]  # accent-folded syllables
    sentences: tuple[Span, ...]  # sentence spans inside the chunk (document offsets)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str
