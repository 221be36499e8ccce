"""Build an index folder from a folder of articles: ingest → chunk → lexical + dense → store."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from de06qa import store
from de06qa.backends import milvus_uri
from de06qa.chunking import chunk_articles
from de06qa.config import Settings
from de06qa.corpus import positions
from de06qa.dense import DenseIndex
from de06qa.documents import Article, Chunk, Skipped, Span
from de06qa.embedding import Embedder, model_info
from de06qa.errors import De06qaError, IndexMissing, NothingToIndex
from de06qa.formats import supported
from de06qa.ingest import read_folder
from de06qa.lexical import LexicalIndex
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


def context_terms(article: Article) -> tuple[list[str], list[str]]:
    """Lexical terms every chunk of the article inherits: its title and provinces (old and new names).

    A chunk often lacks the words that make it findable ("665 dịch vụ công toàn trình" never says
    "Hà Giang"); the article context supplies them."""
    extra = " ".join([article.context, *article.provinces, *article.provinces_2025])
    return word_terms(words(extra)), folded_terms(extra)


def passage_text(article: Article, chunk: Chunk) -> str:
    """What the embedding model sees for a chunk: the headline gives it the article's context."""
    return chunk.text if chunk.start == 0 else f"{article.context}\n{chunk.text}"


# Text per share of a build spread over Dask workers that write into Milvus themselves.
SHARE_CHARS = 100_000

Report = Callable[[str, int, int], None]
"""Progress of a build: (stage, done, total), called as work advances."""


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


def _read(
    settings: Settings, source: Path, report: Report | None, have_index: bool
) -> tuple[list[Article], list[Skipped]]:
    articles, skipped = read_folder(source, settings.max_article_bytes)
    if not articles:
        raise _nothing(source, skipped, have_index)
    if report:
        report("read", len(articles), len(articles) + len(skipped))
    return articles, skipped


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


def _chunk_batches(
    articles: list[Article], settings: Settings, stages: Stages, whole: bool
) -> Iterator[tuple[list[Article], list[Chunk]]]:
    """The articles in batches of about BATCH_CHARS (one batch if `whole`), each with its chunks."""
    batches: list[list[Article]] = [[]]
    size = 0
    for a in articles:
        if batches[-1] and not whole and size >= BATCH_CHARS:
            batches.append([])
            size = 0
        batches[-1].append(a)
        size += len(a.text)

    def chunk(batch: list[Article]) -> list[Chunk]:
        with stages("segment+chunk"):
            return chunk_articles(batch, settings.chunk_chars, settings.chunk_overlap)

    pool = ThreadPoolExecutor(1, thread_name_prefix="de06qa-segment")
    try:
        yield from zip(batches, pool.map(chunk, batches))
    finally:  # a build that fails (or is stopped) does not wait for the rest to be segmented
        pool.shutdown(cancel_futures=True)


def _embed(
    articles: list[Article], settings: Settings, embedder: Embedder, report: Report | None, dim: int | None,
    stages: Stages,
) -> Embedded:  # fmt: skip
    """Chunk the articles and embed their passages and sentences, batch by batch (progress in
    articles). `dim` when known: the model is only loaded when something needs embedding."""
    by_id = {a.doc_id: a for a in articles}
    chunks: list[Chunk] = []
    sents: list[tuple[str, int, int]] = []
    vecs: list[np.ndarray] = []
    sent_vecs: list[np.ndarray] = []
    done = 0
    if report:
        report("embed", 0, len(articles))  # the clock of the rate and time left starts here
    # A Dask cluster gets everything at once: its workers share the passages out among themselves.
    whole = getattr(embedder, "spread", None) is not None
    for batch, got in _chunk_batches(articles, settings, stages, whole):
        keys = list(dict.fromkeys((c.doc_id, s.start, s.end) for c in got for s in c.sentences))
        if got:
            with stages("embed passages"):
                vecs.append(embedder.embed_passages([passage_text(by_id[c.doc_id], c) for c in got]))
            with stages("embed sentences"):
                sent_vecs.append(embedder.embed_passages([by_id[d].text[a:b] for d, a, b in keys]))
        chunks += got
        sents += keys
        done += len(batch)
        if report:
            report("embed", done, len(articles))
    log.info("embedded %d chunks and %d sentences", len(chunks), len(sents))
    if not chunks:
        empty = np.zeros((0, embedder.dim if dim is None else dim), np.float32)
        return Embedded(chunks, empty, sents, empty)
    return Embedded(chunks, np.concatenate(vecs), sents, np.concatenate(sent_vecs))


def build_index(
    settings: Settings,
    source: Path,
    embedder: Embedder,
    report: Report | None = None,
    rebuild: bool = False,
) -> BuildSummary:
    """Index every readable article of `source` into `settings.index_dir`, or into Milvus with
    the Milvus backend.

    Incremental unless `rebuild`: articles whose content hash is unchanged keep their chunks and
    vectors; new and changed ones are chunked and embedded; deleted ones drop out. BM25 is always
    recomputed over all chunks (cheap), so its statistics are exactly those of a full build."""
    t0 = time.perf_counter()
    uri = milvus_uri(settings)
    if uri:
        return _build_milvus(settings, uri, source, embedder, report, rebuild, t0)
    stages = Stages()
    with store.build_lock(settings.index_dir):
        have = (settings.index_dir / store.MANIFEST).exists()
        with stages("read"):
            articles, skipped = _read(settings, source, report, have)
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
        new = _embed(
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
        vectors = _stack([v for d in order for _, v in chunk_rows.get(d, [])], dim)
        sent_keys = [k for d in order for k, _ in sent_rows.get(d, [])]
        sentence_vectors = _stack([v for d in order for _, v in sent_rows.get(d, [])], dim)
        sentences = [Span(a, b, by_id[d].text[a:b]) for d, a, b in sent_keys]

        with stages("bm25"):
            lexical = LexicalIndex.build(*_lexical_docs(articles, chunks))
        with stages("faiss"):
            dense = DenseIndex.build(vectors, settings.faiss_index)
        manifest = _manifest(
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


def _lexical_docs(articles: list[Article], chunks: list[Chunk]) -> tuple[list[list[str]], list[list[str]]]:
    """What BM25 reads of each chunk: its own terms, then its article's context terms."""
    context = {a.doc_id: context_terms(a) for a in articles}
    return (
        [list(c.words) + context[c.doc_id][0] for c in chunks],
        [list(c.folded) + context[c.doc_id][1] for c in chunks],
    )


def _build_milvus(
    settings: Settings, uri: str, source: Path, embedder: Embedder, report: Report | None, rebuild: bool,
    t0: float,
) -> BuildSummary:  # fmt: skip
    """The index in Milvus. With the same model and settings as the live generation, an update
    in place by content hash: new and changed articles' chunks upserted, those of changed and
    vanished articles deleted, term statistics adjusted. Otherwise (or with `rebuild`) a new
    generation, published by moving the index's pointer once it is complete."""
    from de06qa.backends.milvus import MilvusIndex

    where = f"{uri} ({settings.collection})"
    index = MilvusIndex(uri, settings.collection)
    try:
        with index.lock():
            current = index.current()
            articles, skipped = _read(settings, source, report, current is not None)
            live = None if rebuild or current is None else _reusable(current, settings, embedder)
            old = index.documents(live) if live else {}
            kept = {
                a.doc_id
                for a in articles
                if (old.get(a.doc_id, {}).get("content_hash"), old.get(a.doc_id, {}).get("source"))
                == (a.content_hash, a.source)
            }
            by_id = {a.doc_id: a for a in articles}
            removed = set(old) - set(by_id)
            fresh_articles = [a for a in articles if a.doc_id not in kept]
            manifest = current["manifest"] if live and current else {}
            if live and not fresh_articles and not removed and manifest.get("skipped") == _skipped(skipped):
                counts = manifest["counts"]
                return BuildSummary(
                    where, len(articles), counts["chunks"], counts["sentences"],
                    tuple(skipped), time.perf_counter() - t0, reused=len(kept), changed=False,
                )  # fmt: skip
            dim = int(manifest["model"]["dim"]) if live else embedder.dim
            if live:
                gen, previous = live, current.get("previous", "") if current else ""
                old_chunks, old_df, old_parts = index.stored(gen, sorted(set(old) - kept))
            else:
                previous = current["generation"] if current else ""
                gen = index.new_generation(dim)
            # Upserts first (the same chunk ids are replaced), then what is left of the old.
            written = _write_articles(uri, gen, settings, embedder, fresh_articles, report, new=not live)
            if live:
                index.delete(
                    gen,
                    sorted(set(old_chunks) - written.chunk_keys),
                    sorted(set(old_parts) - written.part_keys),
                )
                written.df.subtract(old_df)
            index.add_terms(gen, written.df, new=not live)
            m = _manifest(settings, source, model_info(embedder, dim), articles, [], 0, skipped)
            del m["documents"]
            m["counts"]["chunks"] = sum(old[d]["chunks"] for d in kept) + written.chunks
            m["counts"]["sentences"] = sum(old[d]["sentences"] for d in kept) + written.sentences
            m["stats"] = {
                "provinces": sorted({p for a in articles for p in a.provinces}),
                "undated": sum(a.date is None for a in articles),
            }
            m["milvus"] = {"uri": uri, "collection": settings.collection, "dense_index": "AUTOINDEX"}
            index.publish(gen, m, previous)
            index.retire({gen, previous})
    finally:
        index.close()
    return BuildSummary(
        where, len(articles), m["counts"]["chunks"], m["counts"]["sentences"], tuple(skipped),
        time.perf_counter() - t0, embedded=len(fresh_articles), reused=len(kept), removed=len(removed),
    )  # fmt: skip


@dataclass(frozen=True)
class Written:
    """What a share of the articles added to a Milvus generation."""

    chunk_keys: set[int]
    part_keys: set[int]
    df: Counter[str]  # documents (chunks) each folded term occurs in
    chunks: int
    sentences: int

    def __add__(self, o: Written) -> Written:
        return Written(
            self.chunk_keys | o.chunk_keys, self.part_keys | o.part_keys, self.df + o.df,
            self.chunks + o.chunks, self.sentences + o.sentences,
        )  # fmt: skip


def write_share(
    uri: str, gen: str, settings: Settings, new: bool, embedder: Embedder, articles: list[Article],
    report: Report | None = None,
) -> Written:  # fmt: skip
    """Chunk, embed and write these articles into the generation (on a Dask worker, or here)."""
    from de06qa.backends.milvus import ChunkRow, MilvusIndex

    if not articles:
        return Written(set(), set(), Counter(), 0, 0)
    by_id = {a.doc_id: a for a in articles}
    e = _embed(articles, settings, embedder, report, None, Stages())
    dim = int(e.vectors.shape[1])
    sent_vec = dict(zip(e.sentences, e.sentence_vectors))
    position = positions(e.chunks)
    words, folded = _lexical_docs(articles, e.chunks)
    rows = [
        ChunkRow(
            c,
            by_id[c.doc_id],
            words[i],
            folded[i],
            e.vectors[i],
            _stack([sent_vec[(c.doc_id, s.start, s.end)] for s in c.sentences], dim),
            float(position[i]),
        )
        for i, c in enumerate(e.chunks)
    ]
    df: Counter[str] = Counter()
    for f in folded:
        df.update(set(f))
    index = MilvusIndex(uri, settings.collection)
    try:
        chunk_keys, part_keys = index.write(gen, rows, articles, new)
    finally:
        index.close()
    return Written(chunk_keys, part_keys, df, len(e.chunks), len(e.sentences))


def _write_articles(
    uri: str, gen: str, settings: Settings, embedder: Embedder, articles: list[Article], report: Report | None,
    new: bool,
) -> Written:  # fmt: skip
    """Write the articles into the generation: on the Dask cluster's workers when the build has
    one and Milvus is a server they can reach (a Milvus Lite file belongs to this process), else
    here."""
    spread = getattr(embedder, "spread", None)
    if spread is None or uri.endswith(".db") or not articles:
        return write_share(uri, gen, settings, new, embedder, articles, report)
    # Shares of about SHARE_CHARS of text: a few hundred passages per task.
    shares: list[list[Article]] = [[]]
    for a in articles:
        if sum(len(x.text) for x in shares[-1]) > SHARE_CHARS:
            shares.append([])
        shares[-1].append(a)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if report:
            report("embed", done, len(shares))

    results: list[Written] = spread(partial(write_share, uri, gen, settings, new), shares, None, step)
    return sum(results[1:], results[0])


def _reusable(current: dict[str, Any], settings: Settings, embedder: Embedder) -> str | None:
    """The live generation when an update can change it in place (same model, runtime and
    chunking), else None (a new generation is built)."""
    m = current["manifest"]
    try:
        store.check_model(m, model_info(embedder, m["model"]["dim"]), settings.collection)
    except De06qaError as e:
        log.warning("full build: the index in Milvus cannot be updated in place (%s)", e)
        return None
    built = m.get("settings", {})
    if m["model"].get("runtime") != embedder.runtime or (built.get("chunk_chars"), built.get("chunk_overlap")) != (
        settings.chunk_chars, settings.chunk_overlap,
    ):  # fmt: skip
        log.warning("full build: the runtime or chunk settings changed since the last build")
        return None
    return str(current["generation"])


def _skipped(skipped: list[Skipped]) -> list[dict[str, str]]:
    return [{"path": s.path, "reason": s.reason} for s in skipped]


def _nothing(source: Path, skipped: list[Skipped], have_index: bool) -> NothingToIndex:
    kept = "the index is unchanged" if have_index else "no index was written"
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
        manifest.get("settings", {}).get("faiss_index") == settings.faiss_index
        and list(docs) == [a.doc_id for a in articles]
        and all(docs[a.doc_id].get("source") == a.source for a in articles)
        and manifest.get("skipped") == _skipped(skipped)
    )


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
        "skipped": _skipped(skipped),
    }
