"""Building the index in Milvus: a new generation published by moving the index's pointer (a
stopped build's unpublished generation is gone on with: the articles it wrote whole are not
embedded again), or an update of the live one in place by content hash; the articles' shares
written here or by the Dask cluster's workers (`write_share`)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from de06qa import store
from de06qa.config import Settings
from de06qa.corpus import positions
from de06qa.documents import Article
from de06qa.embedding import Embedder, model_info
from de06qa.errors import De06qaError
from de06qa.indexing import stages as steps
from de06qa.indexing.stages import BuildSummary, Report

if TYPE_CHECKING:
    from de06qa.backends.milvus import MilvusIndex

log = logging.getLogger(__name__)


# Text per share of a build spread over Dask workers that write into Milvus themselves.
SHARE_CHARS = 100_000


def build_milvus(
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
            articles, skipped = steps.read_articles(settings, source, report, current is not None)
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
            if (
                live
                and not fresh_articles
                and not removed
                and manifest.get("skipped") == steps.skipped_list(skipped)
            ):
                counts = manifest["counts"]
                return BuildSummary(
                    where, len(articles), counts["chunks"], counts["sentences"],
                    tuple(skipped), time.perf_counter() - t0, reused=len(kept), changed=False,
                )  # fmt: skip
            dim = int(manifest["model"]["dim"]) if live else embedder.dim
            resumed: set[str] = set()
            taken = Written(set(), set(), Counter(), 0, 0)
            if live:
                gen, previous = live, current.get("previous", "") if current else ""
                old_chunks, old_df, old_parts = index.stored(gen, sorted(set(old) - kept))
            else:
                previous = current["generation"] if current else ""
                gen, going_on = index.generation_for(dim, steps.embedding_key(settings, embedder))
                if going_on:
                    resumed, taken = _take_over(index, gen, fresh_articles)
                    if resumed and report:
                        report("resumed", len(resumed), len(fresh_articles))
            todo = [a for a in fresh_articles if a.doc_id not in resumed]
            # Upserts first (the same chunk ids are replaced), then what is left of the old.
            written = _write_articles(uri, gen, settings, embedder, todo, report, new=not live) + taken
            if live:
                index.delete(
                    gen,
                    sorted(set(old_chunks) - written.chunk_keys),
                    sorted(set(old_parts) - written.part_keys),
                )
                written.df.subtract(old_df)
            index.add_terms(gen, written.df, new=not live)
            m = steps.manifest_of(
                settings, source, model_info(embedder, dim), articles, Counter(), 0, skipped
            )
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
        resumed=len(resumed),
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


def _take_over(index: MilvusIndex, gen: str, articles: list[Article]) -> tuple[set[str], Written]:
    """What a stopped build left in the generation it was writing: the articles it wrote whole,
    unchanged since, are kept (their term statistics read back from their chunks); the rows of
    any other (half written, changed or gone since) are deleted, and the term statistics, written
    last, are written again."""
    want = {a.doc_id: (a.content_hash, a.source) for a in articles}
    held = index.documents(gen)
    whole = {d for d, m in held.items() if want.get(d) == (m.get("content_hash"), m.get("source"))}
    stale = sorted(index.doc_ids(gen) - whole)
    if stale:
        chunk_keys, _, doc_keys = index.stored(gen, stale)
        index.delete(gen, chunk_keys, doc_keys)
    index.clear_terms(gen)
    chunk_keys, df, doc_keys = index.stored(gen, sorted(whole))
    return whole, Written(
        set(chunk_keys), set(doc_keys), df,
        sum(held[d]["chunks"] for d in whole), sum(held[d]["sentences"] for d in whole),
    )  # fmt: skip


def write_share(
    uri: str, gen: str, settings: Settings, new: bool, embedder: Embedder, articles: list[Article],
    report: Report | None = None,
) -> Written:  # fmt: skip
    """Chunk, embed and write these articles into the generation (on a Dask worker, or here),
    batch by batch as a folder build does: memory holds one batch's passages and vectors."""
    from de06qa.backends.milvus import MilvusIndex

    written = Written(set(), set(), Counter(), 0, 0)
    if not articles:
        return written
    index = MilvusIndex(uri, settings.collection)
    try:
        for batch, e in steps.embedded_batches(articles, settings, embedder, report, steps.Stages()):
            written = written + _write_batch(index, gen, new, batch, e)
    finally:
        index.close()
    return written


def _write_batch(
    index: MilvusIndex, gen: str, new: bool, articles: list[Article], e: steps.Embedded
) -> Written:
    """One batch of whole articles, embedded, as rows of the generation."""
    from de06qa.backends.milvus import ChunkRow

    by_id = {a.doc_id: a for a in articles}
    dim = int(e.vectors.shape[1])
    sent_vec = dict(zip(e.sentences, e.sentence_vectors))
    position = positions(e.chunks)
    words, folded = steps.lexical_docs(articles, e.chunks)
    rows = [
        ChunkRow(
            c,
            by_id[c.doc_id],
            words[i],
            folded[i],
            e.vectors[i],
            steps.stack([sent_vec[(c.doc_id, s.start, s.end)] for s in c.sentences], dim),
            float(position[i]),
        )
        for i, c in enumerate(e.chunks)
    ]
    df: Counter[str] = Counter()
    for f in folded:
        df.update(set(f))
    chunk_keys, part_keys = index.write(gen, rows, articles, new)
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
