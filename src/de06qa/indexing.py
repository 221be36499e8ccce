"""Build an index folder from a folder of articles: ingest → chunk → lexical + dense → store."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from de06qa import store
from de06qa.chunking import chunk_articles
from de06qa.config import Settings
from de06qa.dense import DenseIndex
from de06qa.documents import Article, Chunk, Skipped, Span
from de06qa.embedding import Embedder
from de06qa.errors import De06qaError, IndexMissing, NothingToIndex
from de06qa.formats import supported
from de06qa.ingest import read_folder
from de06qa.lexical import LexicalIndex
from de06qa.ranking import load_models
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
    embedded: int = 0  # articles chunked and embedded in this build (new or changed)
    reused: int = 0  # unchanged articles whose vectors were kept
    removed: int = 0  # articles of the previous index no longer in the folder
    changed: bool = True  # False: the index already held exactly this, nothing was written


def context_terms(article: Article) -> tuple[list[str], list[str]]:
    """Lexical terms every chunk of the article inherits: its title and provinces (old and new names).

    A chunk often lacks the words that make it findable ("665 dịch vụ công toàn trình" never says
    "Hà Giang"); the article context supplies them."""
    extra = " ".join([article.context, *article.provinces, *article.provinces_2025])
    return word_terms(words(extra)), folded_terms(extra)


def passage_text(article: Article, chunk: Chunk) -> str:
    """What the embedding model sees for a chunk: the headline gives it the article's context."""
    return chunk.text if chunk.start == 0 else f"{article.context}\n{chunk.text}"


def model_info(embedder: Embedder, dim: int | None = None) -> store.ModelInfo:
    """What the manifest records of the model. `dim` when already known, so that checking an
    index against the model does not need the model loaded."""
    return store.ModelInfo(
        embedder.model_id,
        embedder.profile.name,
        embedder.dim if dim is None else dim,
        SEGMENTER,
        embedder.runtime,
    )


Report = Callable[[str, int, int], None]
"""Progress of a build: (stage, done, total), called as work advances."""


def _previous(settings: Settings, embedder: Embedder) -> store.IndexData | None:
    """The existing index, if its vectors can be reused: same model, same chunking."""
    try:
        data = store.load(settings.index_dir)
        store.check_model(data.manifest, model_info(embedder, data.dense.dim), settings.index_dir)
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


def build_index(
    settings: Settings,
    source: Path,
    embedder: Embedder,
    report: Report | None = None,
    rebuild: bool = False,
) -> BuildSummary:
    """Index every readable article of `source` into `settings.index_dir`.

    Incremental unless `rebuild`: articles whose content hash is unchanged keep their chunks and
    vectors; new and changed ones are chunked and embedded; deleted ones drop out. BM25 is always
    recomputed over all chunks (cheap), so its statistics are exactly those of a full build."""
    t0 = time.perf_counter()
    with store.build_lock(settings.index_dir):
        articles, skipped = read_folder(source, settings.max_article_bytes)
        if not articles:
            raise _nothing(source, skipped, settings.index_dir)
        if report:
            report("read", len(articles), len(articles) + len(skipped))
        previous = None if rebuild else _previous(settings, embedder)
        old_docs = previous.manifest["documents"] if previous else {}
        old_milvus = _built_with_milvus(settings.index_dir)
        kept = {
            a.doc_id for a in articles if old_docs.get(a.doc_id, {}).get("content_hash") == a.content_hash
        }
        by_id = {a.doc_id: a for a in articles}

        fresh = chunk_articles(
            [a for a in articles if a.doc_id not in kept], settings.chunk_chars, settings.chunk_overlap
        )
        fresh_sents = list(dict.fromkeys((c.doc_id, s.start, s.end) for c in fresh for s in c.sentences))
        total = len(fresh) + len(fresh_sents)
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if report:
                report("embed", done, total)

        removed = set(old_docs) - set(by_id)
        if (
            previous is not None
            and not fresh
            and not removed
            and _same_build(previous.manifest, settings, articles, skipped)
        ):
            # Nothing to do: leave the index (and a server watching it) alone.
            return BuildSummary(
                settings.index_dir, len(articles), len(previous.chunks), len(previous.sentences),
                tuple(skipped), time.perf_counter() - t0, reused=len(kept), changed=False,
            )  # fmt: skip
        # The model is only loaded when something needs embedding.
        dim = embedder.dim if fresh or previous is None else previous.dense.dim
        log.info("embedding %d chunks and %d sentences", len(fresh), len(fresh_sents))
        fresh_vecs, fresh_sent_vecs = (
            embedder.embed_passages(texts, step) if texts else np.zeros((0, dim), np.float32)
            for texts in (
                [passage_text(by_id[c.doc_id], c) for c in fresh],
                [by_id[d].text[a:b] for d, a, b in fresh_sents],
            )
        )

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
        for c, v in zip(fresh, fresh_vecs):
            chunk_rows.setdefault(c.doc_id, []).append((c, v))
        for key, v in zip(fresh_sents, fresh_sent_vecs):
            sent_rows.setdefault(key[0], []).append((key, v))
        order = [a.doc_id for a in articles]
        chunks = [c for d in order for c, _ in chunk_rows.get(d, [])]
        vectors = _stack([v for d in order for _, v in chunk_rows.get(d, [])], dim)
        sent_keys = [k for d in order for k, _ in sent_rows.get(d, [])]
        sentence_vectors = _stack([v for d in order for _, v in sent_rows.get(d, [])], dim)
        sentences = [Span(a, b, by_id[d].text[a:b]) for d, a, b in sent_keys]

        context = {a.doc_id: context_terms(a) for a in articles}
        word_docs = [list(c.words) + context[c.doc_id][0] for c in chunks]
        folded_docs = [list(c.folded) + context[c.doc_id][1] for c in chunks]
        lexical = LexicalIndex.build(word_docs, folded_docs)
        manifest = _manifest(
            settings, source, model_info(embedder, dim), articles, chunks, len(sentences), skipped
        )
        milvus = milvus_uri(settings)
        if milvus:
            from de06qa.backends.milvus import write_collection

            manifest["milvus"] = {
                "uri": milvus,
                "collection": write_collection(
                    milvus, settings.collection, word_docs, folded_docs, vectors,
                    [by_id[c.doc_id].provinces for c in chunks], [by_id[c.doc_id].date for c in chunks],
                ),
            }  # fmt: skip
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
        if milvus:
            from de06qa.backends.milvus import retire

            # The previous folder's collection stays for a server that has not reloaded yet.
            keep = {manifest["milvus"]["collection"], (old_milvus or {}).get("collection", "")}
            retire(milvus, settings.collection, keep)
    return BuildSummary(
        settings.index_dir,
        len(articles),
        len(chunks),
        len(sentences),
        tuple(skipped),
        time.perf_counter() - t0,
        embedded=len(articles) - len(kept),
        reused=len(kept),
        removed=len(removed),
    )


def _nothing(source: Path, skipped: list[Skipped], index_dir: Path) -> NothingToIndex:
    kept = "the index is unchanged" if (index_dir / store.MANIFEST).exists() else "no index was written"
    if not skipped:
        return NothingToIndex(f"nothing to index: {source} has no article files ({supported()}); {kept}")
    listed = "; ".join(f"{Path(s.path).name} ({s.reason})" for s in skipped[:5])
    more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return NothingToIndex(f"nothing to index in {source}: every file was skipped: {listed}{more}; {kept}")


def _same_build(
    manifest: dict[str, Any], settings: Settings, articles: list[Article], skipped: list[Skipped]
) -> bool:
    """Would a build write what the manifest already describes (same files, paths, settings)?"""
    docs = manifest.get("documents", {})
    return (
        (manifest.get("milvus") or {}).get("uri") == milvus_uri(settings)
        and manifest.get("settings", {}).get("faiss_index") == settings.faiss_index
        and list(docs) == [a.doc_id for a in articles]
        and all(docs[a.doc_id].get("source") == a.source for a in articles)
        and manifest.get("skipped") == [{"path": s.path, "reason": s.reason} for s in skipped]
    )


def _built_with_milvus(index_dir: Path) -> dict[str, str] | None:
    """The Milvus collection the current index folder reads (even when a rebuild ignores the rest)."""
    try:
        return store.read_manifest(index_dir).get("milvus")
    except De06qaError:
        return None


def milvus_uri(settings: Settings) -> str | None:
    """Where the Milvus backend writes (None for the embedded backend); a Milvus Lite file is made
    absolute, so that a server started elsewhere finds it."""
    if settings.backend == "embedded":
        return None
    if settings.backend != "milvus":
        raise De06qaError(f"unknown backend {settings.backend!r}; use embedded or milvus")
    if not settings.milvus_uri:
        raise De06qaError(
            "--backend milvus needs --milvus-uri URI (a file such as milvus.db for Milvus Lite, "
            "or http://host:19530); or set DE06QA_MILVUS_URI"
        )
    uri = settings.milvus_uri
    return str(Path(uri).resolve()) if uri.endswith(".db") else uri


def _stack(rows: list[np.ndarray], dim: int) -> np.ndarray:
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)


def _manifest(
    settings: Settings,
    source: Path,
    info: store.ModelInfo,
    articles: list[Article],
    chunks: list[Chunk],
    sentences: int,
    skipped: list[Skipped],
) -> dict[str, Any]:
    per_doc = Counter(c.doc_id for c in chunks)
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
        "counts": {"documents": len(articles), "chunks": len(chunks), "sentences": sentences},
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
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
    }
