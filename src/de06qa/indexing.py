"""Build an index folder from a folder of articles: ingest → chunk → lexical + dense → store."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from de06qa import store
from de06qa.chunking import chunk_articles
from de06qa.config import Settings
from de06qa.dense import DenseIndex
from de06qa.documents import Article, Chunk, Skipped, Span
from de06qa.embedding import Embedder
from de06qa.ingest import read_folder
from de06qa.lexical import LexicalIndex
from de06qa.text import SEGMENTER, folded_terms, word_terms, words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSummary:
    index_dir: Path
    documents: int
    chunks: int
    sentences: int
    skipped: tuple[Skipped, ...]
    seconds: float


def context_terms(article: Article) -> tuple[list[str], list[str]]:
    """Lexical terms every chunk of the article inherits: its title and provinces (old and new names).

    A chunk often lacks the words that make it findable ("665 dịch vụ công toàn trình" never says
    "Hà Giang"); the article context supplies them."""
    extra = " ".join([article.title, *article.provinces, *article.provinces_2025])
    return word_terms(words(extra)), folded_terms(extra)


def passage_text(article: Article, chunk: Chunk) -> str:
    """What the embedding model sees for a chunk: the headline gives it the article's context."""
    return chunk.text if chunk.start == 0 else f"{article.title}\n{chunk.text}"


def model_info(embedder: Embedder) -> store.ModelInfo:
    return store.ModelInfo(embedder.model_id, embedder.profile.name, embedder.dim, SEGMENTER)


def build_index(settings: Settings, source: Path, embedder: Embedder, progress: bool = False) -> BuildSummary:
    t0 = time.perf_counter()
    articles, skipped = read_folder(source)
    chunks = chunk_articles(articles, settings.chunk_chars, settings.chunk_overlap)
    by_id = {a.doc_id: a for a in articles}
    context = {a.doc_id: context_terms(a) for a in articles}
    lexical = LexicalIndex.build(
        [list(c.words) + context[c.doc_id][0] for c in chunks],
        [list(c.folded) + context[c.doc_id][1] for c in chunks],
    )
    log.info("embedding %d chunks", len(chunks))
    vectors = embedder.embed_passages([passage_text(by_id[c.doc_id], c) for c in chunks], progress=progress)
    sent_keys = list(dict.fromkeys((c.doc_id, s.start, s.end) for c in chunks for s in c.sentences))
    sentences = [Span(a, b, by_id[d].text[a:b]) for d, a, b in sent_keys]
    sentence_vectors = embedder.embed_passages([s.text for s in sentences], progress=progress)
    info = model_info(embedder)
    manifest = {
        "format_version": store.FORMAT_VERSION,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(source),
        "model": {"model": info.model, "profile": info.profile, "dim": info.dim, "segmenter": info.segmenter},
        "settings": {
            "chunk_chars": settings.chunk_chars,
            "chunk_overlap": settings.chunk_overlap,
            "faiss_index": settings.faiss_index,
        },
        "counts": {"documents": len(articles), "chunks": len(chunks), "sentences": len(sentences)},
        "documents": {
            a.doc_id: {
                "content_hash": a.content_hash,
                "source": a.source,
                "title": a.title,
                "date": a.date,
                "provinces": list(a.provinces),
                "provinces_2025": list(a.provinces_2025),
                "chunks": sum(1 for c in chunks if c.doc_id == a.doc_id),
            }
            for a in articles
        },
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
    }
    data = store.IndexData(
        manifest,
        by_id,
        chunks,
        sentences,
        [d for d, _, _ in sent_keys],
        sentence_vectors,
        DenseIndex.build(vectors, settings.faiss_index),
        lexical,
    )
    store.save(data, settings.index_dir)
    return BuildSummary(
        settings.index_dir,
        len(articles),
        len(chunks),
        len(sentences),
        tuple(skipped),
        time.perf_counter() - t0,
    )
