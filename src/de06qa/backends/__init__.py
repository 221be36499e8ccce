"""The backend seam: where an index lives. A backend returns, for one analysed question, the top
lexical and the top dense chunks with their raw scores and the corpus view ranking reads around
them; it also serves articles and the build's manifest. Everything above it (ranking, answers,
the JSON contract) is shared by every backend.

  embedded  an index folder loaded into this process (bm25s + FAISS), the default
  milvus    collections in Milvus (Lite file, server or cluster): a serving process holds no corpus
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from de06qa.config import Settings
from de06qa.corpus import CorpusView
from de06qa.documents import Article, Chunk
from de06qa.errors import De06qaError
from de06qa.filters import Filters
from de06qa.query import Query


@dataclass(frozen=True, eq=False)
class Candidates:
    """Parallel arrays, one entry per candidate chunk; `rows` index `view.chunks`."""

    rows: np.ndarray  # int64 chunk rows
    bm25_words: np.ndarray  # BM25 of the accented words field (0 for a question typed without marks)
    bm25_folded: np.ndarray  # BM25 of the folded syllables field
    dense: np.ndarray  # cosine of the question and the chunk's vector
    view: CorpusView

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def lexical(self) -> np.ndarray:
        """The BM25 score the `bm25` mode ranks by: the accented words field plus half the folded
        one (a folded match alone may be a coincidence, dê/dế)."""
        return np.asarray(self.bm25_folded * 0.5 + self.bm25_words, np.float32)


@dataclass(frozen=True)
class Stats:
    """Corpus-wide facts a search reads without touching the corpus."""

    documents: int
    chunks: int
    undated: int  # articles without a date (what a date filter leaves out)


class Backend(Protocol):
    @property
    def manifest(self) -> dict[str, Any]:
        """The build's manifest: format, model, settings, counts, built_at."""
        ...

    @property
    def stats(self) -> Stats: ...

    def candidates(self, query: Query, depth: int, filters: Filters | None = None) -> Candidates:
        """The union of the top-`depth` chunks by BM25 and the top-`depth` by cosine, among the
        chunks of articles that pass `filters`."""
        ...

    def idf(self, terms: tuple[str, ...]) -> dict[str, float]:
        """Inverse document frequency of folded terms over the chunks (0 for unknown terms)."""
        ...

    def article(self, doc_id: str) -> Article:
        """One article with its text; UnknownDocument when there is none."""
        ...

    def documents(self) -> list[tuple[Article, int]]:
        """Every article with the length of its text (the Milvus backend's articles carry only
        their metadata here: `article()` reads one whole)."""
        ...

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk (the evaluation judges passages by them)."""
        ...

    def check(self) -> None:
        """Raise BackendUnavailable when the backend cannot answer now (for /health)."""
        ...

    @property
    def loaded(self) -> object:
        """`stamp()` of the index this backend read."""
        ...

    def stamp(self) -> object:
        """Changes when the index is rebuilt or updated (the server reloads then); None when it
        cannot be read now."""
        ...


def milvus_uri(settings: Settings) -> str | None:
    """Where the Milvus backend writes (None for the embedded backend); a Milvus Lite file is made
    absolute, so that a server started elsewhere finds it."""
    if settings.backend == "embedded":
        return None
    if not settings.milvus_uri:
        raise De06qaError(
            "--backend milvus needs --milvus-uri URI (a file such as milvus.db for Milvus Lite, "
            "or http://host:19530); or set DE06QA_MILVUS_URI"
        )
    uri = settings.milvus_uri
    return str(Path(uri).resolve()) if uri.endswith(".db") else uri


def open_backend(settings: Settings) -> Backend:
    """Where the settings say the index lives."""
    if settings.backend == "embedded":
        from de06qa.backends.embedded import EmbeddedBackend

        return EmbeddedBackend.open(settings.index_dir)
    uri = milvus_uri(settings)  # says what is wrong with the settings
    from de06qa.backends.milvus import MilvusBackend

    assert uri is not None
    return MilvusBackend(uri, settings.collection)
