"""Building an index folder (the embedded backend), streamed: new and changed articles are
embedded batch by batch and each finished batch goes to disk (parts.py), so a stopped build goes
on where it stopped; then the folder is assembled from the previous index's unchanged rows and the
batches, a chunk at a time (BM25 from streamed counts, sentence vectors straight to their file),
and swapped in whole. Memory stays bounded by a batch, the vectors FAISS holds and BM25's counts."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from de06qa import store
from de06qa.config import Settings
from de06qa.dense import DenseIndex, resolve_kind
from de06qa.documents import Article, Skipped
from de06qa.embedding import Embedder, model_info
from de06qa.errors import De06qaError, IndexMissing, IndexUnwritable
from de06qa.indexing.parts import Part, Parts
from de06qa.indexing.stages import (
    BuildSummary,
    Report,
    Stages,
    context_terms,
    embedded_batches,
    embedding_key,
    manifest_of,
    read_articles,
    skipped_list,
)
from de06qa.lexical import LexicalCounts, LexicalIndex
from de06qa.termsets import TermSets, TermSetsBuilder

log = logging.getLogger(__name__)

# Vectors handed to FAISS at a time: HNSW inserts a batch in parallel, and a few batches' worth
# is all a build holds besides the index itself.
_ADD_ROWS = 20_000


def build_folder(
    settings: Settings, source: Path, embedder: Embedder, report: Report | None, rebuild: bool, t0: float
) -> BuildSummary:
    """The index folder: incremental unless `rebuild` (articles whose content hash is unchanged
    keep their chunks and vectors); BM25 is always recomputed over all chunks (from counts), so its
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
        fresh = [a for a in articles if a.doc_id not in kept]
        if (
            previous is not None
            and not fresh
            and not removed
            and _same_build(previous.manifest, settings, articles, skipped)
            and previous.term_sets is not None  # (else stored now, nothing re-embedded)
        ):
            # Nothing to do: leave the index (and a server watching it) alone.
            counts = previous.manifest.get("counts", {})
            return BuildSummary(
                str(settings.index_dir), len(articles), counts.get("chunks", 0), counts.get("sentences", 0),
                tuple(skipped), time.perf_counter() - t0, reused=len(kept), changed=False,
            )  # fmt: skip

        parts = Parts.open(settings.index_dir, embedding_key(settings, embedder))
        # Batches a stopped build finished for articles still as they were then are not redone.
        fresh_hash = {a.doc_id: a.content_hash for a in fresh}
        done = [p for p in parts.finished() if all(fresh_hash.get(d) == h for d, h in p.docs.items())]
        parts.keep_only(done)
        resumed = {d for p in done for d in p.docs}
        if resumed and report:
            report("resumed", len(resumed), len(fresh))
        todo = [a for a in fresh if a.doc_id not in resumed]
        try:
            for batch, e in embedded_batches(todo, settings, embedder, report, stages):
                records = [store.chunk_record(c) for c in e.chunks]
                done.append(parts.write(batch, records, e.sentences, e.vectors, e.sentence_vectors))
            chunks, sentences = _assemble(
                settings, source, embedder, articles, skipped, previous, kept, done, stages
            )
        except IndexUnwritable as e:
            held = parts.size()
            if not held:
                parts.clear()
                raise
            raise IndexUnwritable(
                f"{e}; the {held / 1e6:.1f} MB of articles already embedded stay in {parts.folder} for "
                "the next run to go on from (delete that folder to free the space instead)"
            ) from e
        parts.clear()
    return BuildSummary(
        str(settings.index_dir), len(articles), chunks, sentences, tuple(skipped),
        time.perf_counter() - t0, embedded=len(fresh), reused=len(kept), removed=len(removed),
        stages=tuple(stages.seconds.items()), resumed=len(resumed),
    )  # fmt: skip


def _assemble(
    settings: Settings,
    source: Path,
    embedder: Embedder,
    articles: list[Article],
    skipped: list[Skipped],
    previous: Previous | None,
    kept: set[str],
    parts: list[Part],
    stages: Stages,
) -> tuple[int, int]:
    """Write the new folder: the previous index's rows of unchanged articles, then each batch's
    rows, streamed. Returns (chunks, sentences)."""
    old = settings.index_dir
    if parts:
        dim = int(parts[0].vectors().shape[1])
    else:
        dim = previous.dense.dim if previous else embedder.dim
    stored = store.article_contexts(old) if previous is not None else {}
    context = {
        a.doc_id: stored[a.doc_id] if a.doc_id in kept and a.doc_id in stored else context_terms(a)
        for a in articles
    }
    # Term sets use the ids of the folded BM25 field (the sentences' own terms join its vocabulary:
    # with no postings, they change no score). An update keeps the previous ids, so unchanged
    # articles' term sets are copied, not recomputed.
    old_sets = previous.term_sets if previous is not None else None
    lexical = LexicalCounts(LexicalIndex.saved_vocab(old, "folded") if old_sets is not None else None)
    term_sets = TermSetsBuilder(lexical.fields["folded"].vocab)
    by_id = {a.doc_id: a for a in articles}
    per_doc: Counter[str] = Counter()
    kept_rows: list[int] = []
    kept_sentences: list[int] = []
    with store.writing(old, needed=12 * sum(len(a.text) for a in articles)) as out:
        with stages("write"):
            out.articles(articles, context)

        def chunk(record: dict[str, Any], terms: bool = True, line: str | None = None) -> None:
            out.chunk(record, line)
            words, folded = context[record["doc_id"]]
            lexical.add(record["words"] + words, record["folded"] + folded)
            if terms:
                text = by_id[record["doc_id"]].text
                term_sets.add(record["text"], record["folded"], [text[a:b] for a, b in record["sentences"]])
            per_doc[record["doc_id"]] += 1

        with stages("bm25+terms"):  # (the chunks are written as they are counted)
            if previous is not None:
                for i, (line, r) in enumerate(store.chunk_lines(old)):
                    if r["doc_id"] in kept:
                        chunk(r, terms=old_sets is None, line=line)
                        kept_rows.append(i)
            kept_row_array = np.array(kept_rows, np.int64)
            if old_sets is not None:
                term_sets.copy(old_sets, kept_row_array)
            for p in parts:
                for r in p.chunk_records():
                    chunk(r)
        with stages("write"):
            if previous is not None:
                for i, r in enumerate(store.sentence_records(old)):
                    if r["doc_id"] in kept:
                        out.sentence(r["doc_id"], r["start"], r["end"])
                        kept_sentences.append(i)
            for p in parts:
                for r in p.sentence_records():
                    out.sentence(r["doc_id"], r["start"], r["end"])
            n_sentences = len(kept_sentences) + sum(p.sentences for p in parts)
            # Streamed through memory a block at a time: a mapping of either file would keep
            # every page it touched resident (~1.5 KB a sentence each) until the end.
            out.start_sentence_vectors(n_sentences, dim)
            for lo in range(0, len(kept_sentences), _ADD_ROWS):
                out.sentence_vector_rows(store.sentence_vectors(old)[kept_sentences[lo : lo + _ADD_ROWS]])
            for p in parts:
                out.sentence_vector_rows(p.sentence_vectors())
            out.end_sentence_vectors()
        with stages("faiss"):
            total = len(kept_rows) + sum(p.chunks for p in parts)
            if previous is not None:
                dense = previous.dense.keeping(kept_row_array, settings.faiss_index, total)
            else:
                dense = DenseIndex.empty(dim, resolve_kind(settings.faiss_index, total))
            pending: list[np.ndarray] = []
            for p in parts:
                pending.append(p.vectors())
                if sum(map(len, pending)) >= _ADD_ROWS or p is parts[-1]:
                    dense.add(np.concatenate(pending))
                    pending = []
        with stages("bm25+terms"):
            index = lexical.index()
        manifest = manifest_of(
            settings, source, model_info(embedder, dim), articles, per_doc, n_sentences, skipped
        )
        with stages("write"):
            out.finish(manifest, dense, index, term_sets.done())
    return total, n_sentences


@dataclass(frozen=True)
class Previous:
    """The index being updated: what it holds, and its vectors."""

    manifest: dict[str, Any]
    dense: DenseIndex
    term_sets: TermSets | None  # None: built before they were stored (computed anew, not copied)


def _previous(settings: Settings, embedder: Embedder) -> Previous | None:
    """The existing index, if its vectors can be reused: same model, same chunking."""
    try:
        manifest = store.read_manifest(settings.index_dir)
        store.check_model(manifest, model_info(embedder, manifest["model"]["dim"]), str(settings.index_dir))
        dense, term_sets = store.check_complete(settings.index_dir, manifest)
    except (De06qaError, KeyError, TypeError) as e:
        if not isinstance(e, IndexMissing):
            log.warning("full build: the existing index cannot be reused (%s)", e)
        return None
    runtime = manifest["model"].get("runtime")
    if runtime != embedder.runtime:
        # Another runtime or precision gives slightly different vectors; mixing them in one index
        # would rank new articles differently from old ones.
        log.warning("full build: the index was embedded with %s, now %s", runtime, embedder.runtime)
        return None
    built = manifest.get("settings", {})
    if (built.get("chunk_chars"), built.get("chunk_overlap")) != (
        settings.chunk_chars,
        settings.chunk_overlap,
    ):
        log.warning("full build: chunk settings changed since the last build")
        return None
    return Previous(manifest, dense, term_sets)


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
