"""Building an index folder (the embedded backend): reuse what the previous build embedded,
embed the rest, then BM25, FAISS and the folder written whole (store.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from de06qa import store
from de06qa.config import Settings
from de06qa.dense import DenseIndex
from de06qa.documents import Article, Chunk, Skipped, Span
from de06qa.embedding import Embedder, model_info
from de06qa.errors import De06qaError, IndexMissing
from de06qa.indexing.stages import (
    BuildSummary,
    Report,
    Stages,
    embed_articles,
    lexical_docs,
    manifest_of,
    read_articles,
    skipped_list,
    stack,
)
from de06qa.lexical import LexicalIndex

log = logging.getLogger(__name__)


def build_folder(
    settings: Settings, source: Path, embedder: Embedder, report: Report | None, rebuild: bool, t0: float
) -> BuildSummary:
    """The index folder: incremental unless `rebuild` (articles whose content hash is unchanged
    keep their chunks and vectors); BM25 is always recomputed over all chunks (cheap), so its
    statistics are exactly those of a full build."""
    stages = Stages()
    with store.build_lock(settings.index_dir):
        have = (settings.index_dir / store.MANIFEST).exists()
        with stages("read"):
            articles, skipped = read_articles(settings, source, report, have)
        previous = None if rebuild else _previous(settings, embedder)
        old_docs = previous.manifest["documents"] if previous else {}
        kept = {
            a.doc_id for a in articles if old_docs.get(a.doc_id, {}).get("content_hash") == a.content_hash
        }
        by_id = {a.doc_id: a for a in articles}
        removed = set(old_docs) - set(by_id)
        fresh_articles = [a for a in articles if a.doc_id not in kept]
        if (
            previous is not None
            and not fresh_articles
            and not removed
            and _same_build(previous.manifest, settings, articles, skipped)
        ):
            # Nothing to do: leave the index (and a server watching it) alone.
            return BuildSummary(
                str(settings.index_dir), len(articles), len(previous.chunks), len(previous.sentences),
                tuple(skipped), time.perf_counter() - t0, reused=len(kept), changed=False,
            )  # fmt: skip
        new = embed_articles(
            fresh_articles, settings, embedder, report, previous.dense.dim if previous else None, stages
        )
        dim = new.vectors.shape[1]

        # Assemble in article order: reused rows from the previous index, new rows from above.
        chunk_rows: dict[str, list[tuple[Chunk, np.ndarray]]] = {}
        sent_rows: dict[str, list[tuple[tuple[str, int, int], np.ndarray]]] = {}
        if previous is not None and kept:
            old_vecs = previous.dense.vectors()
            for c, v in zip(previous.chunks, old_vecs):
                if c.doc_id in kept:
                    chunk_rows.setdefault(c.doc_id, []).append((c, v))
            for sp, d, v in zip(previous.sentences, previous.sentence_docs, previous.sentence_vectors):
                if d in kept:
                    sent_rows.setdefault(d, []).append(((d, sp.start, sp.end), v))
        for c, v in zip(new.chunks, new.vectors):
            chunk_rows.setdefault(c.doc_id, []).append((c, v))
        for key, v in zip(new.sentences, new.sentence_vectors):
            sent_rows.setdefault(key[0], []).append((key, v))
        order = [a.doc_id for a in articles]
        chunks = [c for d in order for c, _ in chunk_rows.get(d, [])]
        vectors = stack([v for d in order for _, v in chunk_rows.get(d, [])], dim)
        sent_keys = [k for d in order for k, _ in sent_rows.get(d, [])]
        sentence_vectors = stack([v for d in order for _, v in sent_rows.get(d, [])], dim)
        sentences = [Span(a, b, by_id[d].text[a:b]) for d, a, b in sent_keys]

        with stages("bm25"):
            lexical = LexicalIndex.build(*lexical_docs(articles, chunks))
        with stages("faiss"):
            dense = DenseIndex.build(vectors, settings.faiss_index)
        manifest = manifest_of(
            settings, source, model_info(embedder, dim), articles, chunks, len(sentences), skipped
        )
        data = store.IndexData(
            manifest, by_id, chunks, sentences, [d for d, _, _ in sent_keys], sentence_vectors, dense, lexical
        )
        with stages("write"):
            store.save(data, settings.index_dir)
    return BuildSummary(
        str(settings.index_dir), len(articles), len(chunks), len(sentences), tuple(skipped),
        time.perf_counter() - t0, embedded=len(fresh_articles), reused=len(kept), removed=len(removed),
        stages=tuple(stages.seconds.items()),
    )  # fmt: skip


def _previous(settings: Settings, embedder: Embedder) -> store.IndexData | None:
    """The existing index, if its vectors can be reused: same model, same chunking."""
    try:
        data = store.load(settings.index_dir)
        store.check_model(data.manifest, model_info(embedder, data.dense.dim), str(settings.index_dir))
    except De06qaError as e:
        if not isinstance(e, IndexMissing):
            log.warning("full build: the existing index cannot be reused (%s)", e)
        return None
    runtime = data.manifest["model"].get("runtime")
    if runtime != embedder.runtime:
        # Another runtime or precision gives slightly different vectors; mixing them in one index
        # would rank new articles differently from old ones.
        log.warning("full build: the index was embedded with %s, now %s", runtime, embedder.runtime)
        return None
    built = data.manifest.get("settings", {})
    if (built.get("chunk_chars"), built.get("chunk_overlap")) != (
        settings.chunk_chars,
        settings.chunk_overlap,
    ):
        log.warning("full build: chunk settings changed since the last build")
        return None
    return data


def _same_build(
    manifest: dict[str, Any], settings: Settings, articles: list[Article], skipped: list[Skipped]
) -> bool:
    """Would a build write what the manifest already describes (same files, paths, settings)?"""
    docs = manifest.get("documents", {})
    return (
        manifest.get("settings", {}).get("faiss_index") == settings.faiss_index
        and list(docs) == [a.doc_id for a in articles]
        and all(docs[a.doc_id].get("source") == a.source for a in articles)
        and manifest.get("skipped") == skipped_list(skipped)
    )
