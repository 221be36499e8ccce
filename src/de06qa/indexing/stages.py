"""The steps every build shares, whatever the index is written to: read the folder, chunk and
embed the new articles in batches (segmenting the next batch while this one embeds), the terms
BM25 reads, and the manifest that describes the build."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from de06qa import store
from de06qa.chunking import chunk_articles
from de06qa.config import Settings
from de06qa.documents import Article, Chunk, Skipped
from de06qa.embedding import Embedder
from de06qa.errors import NothingToIndex
from de06qa.formats import supported
from de06qa.ingest import read_folder
from de06qa.ranking import load_models
from de06qa.text import folded_terms, word_terms, words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSummary:
    target: str  # the index folder, or "URI (collection)" in Milvus
    documents: int
    chunks: int
    sentences: int
    skipped: tuple[Skipped, ...]
    seconds: float
    embedded: int = 0  # articles chunked and embedded in this build (new or changed)
    reused: int = 0  # unchanged articles whose vectors were kept
    removed: int = 0  # articles of the previous index no longer in the folder
    changed: bool = True  # False: the index already held exactly this, nothing was written
    stages: tuple[tuple[str, float], ...] = ()  # (stage, seconds), in the order they ran
    resumed: int = 0  # of `embedded`: articles a stopped build had finished (not embedded again)


Report = Callable[[str, int, int], None]
"""Progress of a build: (stage, done, total), called as work advances: "read" (files),
"resumed" (articles a stopped build had finished, of those to embed), "embed" (articles)."""


def context_terms(article: Article) -> tuple[list[str], list[str]]:
    """Lexical terms every chunk of the article inherits: its title and provinces (old and new names).

    A chunk often lacks the words that make it findable ("665 dịch vụ công toàn trình" never says
    "Hà Giang"); the article context supplies them."""
    extra = " ".join([article.context, *article.provinces, *article.provinces_2025])
    return word_terms(words(extra)), folded_terms(extra)


def passage_text(article: Article, chunk: Chunk) -> str:
    """What the embedding model sees for a chunk: the headline gives it the article's context."""
    return chunk.text if chunk.start == 0 else f"{article.context}\n{chunk.text}"


def read_articles(
    settings: Settings, source: Path, report: Report | None, have_index: bool
) -> tuple[list[Article], list[Skipped]]:
    articles, skipped = read_folder(source, settings.max_article_bytes)
    if not articles:
        raise _nothing(source, skipped, have_index)
    if report:
        report("read", len(articles), len(articles) + len(skipped))
    return articles, skipped


def _nothing(source: Path, skipped: list[Skipped], have_index: bool) -> NothingToIndex:
    kept = "the index is unchanged" if have_index else "no index was written"
    if not skipped:
        return NothingToIndex(f"nothing to index: {source} has no article files ({supported()}); {kept}")
    listed = "; ".join(f"{Path(s.path).name} ({s.reason})" for s in skipped[:5])
    more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return NothingToIndex(f"nothing to index in {source}: every file was skipped: {listed}{more}; {kept}")


@dataclass(frozen=True)
class Embedded:
    """New or changed articles chunked and embedded."""

    chunks: list[Chunk]
    vectors: np.ndarray
    sentences: list[tuple[str, int, int]]  # (doc_id, start, end), unique
    sentence_vectors: np.ndarray


class Stages:
    """Seconds a build spent in each stage (reading, segmentation and chunking, embedding, BM25,
    FAISS, writing): `with stages("embed"): …` adds to a stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


# Text per batch of a build: the next batch is segmented and chunked on a second thread while this
# one is embedded (ONNX Runtime releases the GIL while it computes), and progress moves per batch.
BATCH_CHARS = 50_000
CLUSTER_BATCHES = 8


def _chunk_batches(
    articles: list[Article], settings: Settings, stages: Stages, chars: int
) -> Iterator[tuple[list[Article], list[Chunk]]]:
    """The articles in batches of about `chars` characters, each with its chunks (none for no
    articles: an update that only removes never loads the model)."""
    if not articles:
        return
    batches: list[list[Article]] = [[]]
    size = 0
    for a in articles:
        if batches[-1] and size >= chars:
            batches.append([])
            size = 0
        batches[-1].append(a)
        size += len(a.text)

    def chunk(batch: list[Article]) -> list[Chunk]:
        with stages("segment+chunk"):
            return chunk_articles(batch, settings.chunk_chars, settings.chunk_overlap)

    # One batch segmented ahead, not all of them: what waits to be embedded stays one batch.
    pool = ThreadPoolExecutor(1, thread_name_prefix="de06qa-segment")
    try:
        ahead = [(batch, pool.submit(chunk, batch)) for batch in batches[:1]]
        for nxt in [*batches[1:], None]:
            batch, got = ahead.pop()
            if nxt is not None:
                ahead.append((nxt, pool.submit(chunk, nxt)))
            yield batch, got.result()
    finally:  # a build that fails (or is stopped) does not wait for the rest to be segmented
        pool.shutdown(cancel_futures=True)


def embedded_batches(
    articles: list[Article], settings: Settings, embedder: Embedder, report: Report | None, stages: Stages
) -> Iterator[tuple[list[Article], Embedded]]:
    """Chunk the articles and embed their passages and sentences, batch by batch (progress in
    articles): each batch's articles with what they gave."""
    by_id = {a.doc_id: a for a in articles}
    done = 0
    if report:
        report("embed", 0, len(articles))  # the clock of the rate and time left starts here
    # A Dask cluster gets batches several times larger: their passages are cut into partitions
    # (distributed.PARTITION) that keep every worker busy.
    chars = BATCH_CHARS * (CLUSTER_BATCHES if getattr(embedder, "spread", None) is not None else 1)
    for batch, got in _chunk_batches(articles, settings, stages, chars):
        keys = list(dict.fromkeys((c.doc_id, s.start, s.end) for c in got for s in c.sentences))
        if got:
            with stages("embed passages"):
                vecs = embedder.embed_passages([passage_text(by_id[c.doc_id], c) for c in got])
            with stages("embed sentences"):
                sent_vecs = embedder.embed_passages([by_id[d].text[a:b] for d, a, b in keys])
        else:  # (articles with no text to chunk)
            vecs = sent_vecs = np.zeros((0, embedder.dim), np.float32)
        yield batch, Embedded(got, vecs, keys, sent_vecs)
        done += len(batch)
        if report:
            report("embed", done, len(articles))


def embedding_key(settings: Settings, embedder: Embedder) -> dict[str, Any]:
    """What embedded rows depend on: a stopped build's rows are taken over only if it matches."""
    return {
        "model": embedder.model_id,
        "profile": embedder.profile.name,
        "runtime": embedder.runtime,
        "chunk_chars": settings.chunk_chars,
        "chunk_overlap": settings.chunk_overlap,
        "format_version": store.FORMAT_VERSION,
    }


def lexical_docs(articles: list[Article], chunks: list[Chunk]) -> tuple[list[list[str]], list[list[str]]]:
    """What BM25 reads of each chunk: its own terms, then its article's context terms."""
    context = {a.doc_id: context_terms(a) for a in articles}
    return (
        [list(c.words) + context[c.doc_id][0] for c in chunks],
        [list(c.folded) + context[c.doc_id][1] for c in chunks],
    )


def stack(rows: list[np.ndarray], dim: int) -> np.ndarray:
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)


def skipped_list(skipped: list[Skipped]) -> list[dict[str, str]]:
    return [{"path": s.path, "reason": s.reason} for s in skipped]


def manifest_of(
    settings: Settings,
    source: Path,
    info: store.ModelInfo,
    articles: list[Article],
    per_doc: Counter[str],
    sentences: int,
    skipped: list[Skipped],
) -> dict[str, Any]:
    """The manifest; `per_doc`: each article's number of chunks."""
    return {
        "format_version": store.FORMAT_VERSION,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(source),
        "model": {
            "model": info.model,
            "profile": info.profile,
            "dim": info.dim,
            "segmenter": info.segmenter,
            "runtime": info.runtime,
        },
        "settings": {
            "chunk_chars": settings.chunk_chars,
            "chunk_overlap": settings.chunk_overlap,
            "faiss_index": settings.faiss_index,
        },
        "counts": {"documents": len(articles), "chunks": sum(per_doc.values()), "sentences": sentences},
        # The packaged ranking models a search over this index uses (they read its features).
        "ranker": load_models().version,
        "documents": {
            a.doc_id: {
                "content_hash": a.content_hash,
                "source": a.source,
                "title": a.title,
                "date": a.date,
                "provinces": list(a.provinces),
                "provinces_2025": list(a.provinces_2025),
                "chunks": per_doc[a.doc_id],
            }
            for a in articles
        },
        "skipped": skipped_list(skipped),
    }
