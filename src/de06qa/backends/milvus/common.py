"""What writing and reading an index in Milvus share: the client (the only place pymilvus is
imported), errors as BackendUnavailable, keys, the collections' schemas and the rows written."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from de06qa.documents import Article, Chunk
from de06qa.errors import BackendUnavailable, De06qaError

# bm25s's defaults (Lucene's BM25), so that Milvus scores what the ranker was fitted on.
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}
# Our tokens are already made (underthesea words, folded syllables and pairs): split on spaces only.
ANALYZER = {"tokenizer": "whitespace"}
INSERT_BATCH = 500
MAX_TEXT = 65_535
TEXT_PART = 16_000  # characters: at most 64 KB of UTF-8
MAX_TERM = 256
IVF_LISTS = 1024
# Searches of one question run side by side (pymilvus's client is safe to share between threads).
_POOL = ThreadPoolExecutor(max_workers=6, thread_name_prefix="de06qa-milvus")
_ARTICLE_KEYS = ("source", "title", "date", "content_hash", "file", "lead_title", "url")
_CHUNK_FIELDS = ["pk", "chunk_id", "doc_id", "text", "words", "folded", "info", "doc", "sentvecs"]


def _client(uri: str) -> Any:
    # milvus-lite 2.5 imports pkg_resources, which warns on import; the user can do nothing about it.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    try:
        from pymilvus import MilvusClient

        # pymilvus sets up its own logging on import and logs every failed call at ERROR; the
        # user gets our one line instead.
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    except ImportError:
        raise BackendUnavailable("the Milvus backend needs pymilvus: pip install 'de06qa[milvus]'") from None
    try:
        return MilvusClient(uri, timeout=10)
    except Exception as e:
        raise BackendUnavailable(f"cannot reach Milvus at {uri} ({_reason(e)}); is it running?") from None


def _reason(e: Exception) -> str:
    return " ".join(str(getattr(e, "message", None) or e).split())[:200]


@contextmanager
def _failing_as(what: str, uri: str) -> Iterator[None]:
    """Any pymilvus error becomes one actionable line."""
    try:
        yield
    except De06qaError:
        raise
    except Exception as e:
        raise BackendUnavailable(f"Milvus at {uri} failed to {what} ({_reason(e)})") from None


def pk(key: str) -> int:
    """A stable signed 64-bit primary key for a chunk id (integer keys make `pk in [...]` filters
    cheap and need no escaping; a collision needs ~4e9 chunks to become likely)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _pack(vectors: np.ndarray) -> str:
    """Sentence vectors as base64 float16 (half the bytes to fetch per candidate; cosines move
    by < 1e-3)."""
    return base64.b64encode(np.asarray(vectors, np.float16).tobytes()).decode("ascii")


def _unpack(text: str, dim: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.float16).reshape(-1, dim).astype(np.float32)


def _clip(tokens: Iterable[str]) -> str:
    text = " ".join(tokens)
    if len(text.encode("utf-8")) <= MAX_TEXT:
        return text
    return text.encode("utf-8")[:MAX_TEXT].decode("utf-8", "ignore").rsplit(" ", 1)[0]


# -- schemas ------------------------------------------------------------------------------------


def _tiny_schema(client: Any, key: Any, fields: list[tuple[str, Any, dict[str, Any]]]) -> tuple[Any, Any]:
    """A collection that holds rows, not vectors; Milvus wants a vector field in each, so a 2-d
    zero one."""
    from pymilvus import DataType

    s = client.create_schema(auto_id=False)
    s.add_field(*key[:2], is_primary=True, **key[2])
    for name, dtype, kw in fields:
        s.add_field(name, dtype, **kw)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    idx = client.prepare_index_params()
    idx.add_index("v", index_type="FLAT", metric_type="L2")
    return s, idx


def _chunk_schema(client: Any, dim: int, dense_index: str, array_index: bool) -> tuple[Any, Any]:
    from pymilvus import DataType, Function, FunctionType

    s = client.create_schema(auto_id=False)
    s.add_field("pk", DataType.INT64, is_primary=True)
    s.add_field("chunk_id", DataType.VARCHAR, max_length=2048)
    s.add_field("doc_id", DataType.VARCHAR, max_length=2048)
    for field in ("words", "folded"):
        s.add_field(
            field, DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True, analyzer_params=ANALYZER
        )
        s.add_field(f"{field}_bm25", DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(
            Function(
                name=f"{field}_bm25_fn",
                function_type=FunctionType.BM25,
                input_field_names=[field],
                output_field_names=[f"{field}_bm25"],
            )
        )
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("provinces", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=64, max_length=64)
    s.add_field("date", DataType.VARCHAR, max_length=10)  # "" when unknown
    s.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)
    s.add_field("info", DataType.JSON)  # offsets, sentence spans, position, own token counts
    s.add_field("doc", DataType.JSON)  # the article's metadata
    s.add_field("sentvecs", DataType.VARCHAR, max_length=MAX_TEXT)
    idx = client.prepare_index_params()
    for field in ("words_bm25", "folded_bm25"):
        idx.add_index(field, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
    # Milvus Lite takes FLAT / IVF_FLAT / AUTOINDEX only; on a server AUTOINDEX is HNSW.
    params = {"nlist": IVF_LISTS} if dense_index == "IVF_FLAT" else {}
    idx.add_index("vector", index_type=dense_index, metric_type="IP", params=params)
    # Filters read these: without an index, array_contains_any scans every row's array (Milvus Lite
    # indexes no ARRAY field; a server does).
    idx.add_index("date", index_type="INVERTED")
    idx.add_index("doc_id", index_type="INVERTED")
    if array_index:
        idx.add_index("provinces", index_type="INVERTED")
    return s, idx


def _create(client: Any, name: str, schema: Any, index: Any) -> None:
    # Strong: a reader that follows the pointer right after a build sees every row of it.
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")


# -- what a build hands over ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkRow:
    """One chunk as stored: what `indexing` gives the writer."""

    chunk: Chunk
    article: Article
    words: list[str]  # the chunk's tokens and then its article's context terms (what BM25 reads)
    folded: list[str]
    vector: np.ndarray
    sentence_vectors: np.ndarray  # one per `chunk.sentences`, in order
    position: float


def _doc_meta(a: Article, counts: tuple[int, int]) -> dict[str, Any]:
    return {
        **{k: getattr(a, k) for k in _ARTICLE_KEYS},
        "provinces": list(a.provinces),
        "provinces_2025": list(a.provinces_2025),
        "pages": list(a.pages),
        "chars": len(a.text),
        "chunks": counts[0],
        "sentences": counts[1],
    }


def _article(doc_id: str, meta: dict[str, Any], text: str = "") -> Article:
    return Article(
        doc_id=doc_id,
        source=meta["source"],
        title=meta["title"],
        text=text,
        date=meta.get("date"),
        provinces=tuple(meta.get("provinces", ())),
        provinces_2025=tuple(meta.get("provinces_2025", ())),
        content_hash=meta.get("content_hash", ""),
        pages=tuple(meta.get("pages", ())),
        file=meta.get("file", ""),
        lead_title=meta.get("lead_title", ""),
        url=meta.get("url") or "",
    )


def _chunk_record(r: ChunkRow, per_doc: dict[str, tuple[int, int]]) -> dict[str, Any]:
    c = r.chunk
    return {
        "pk": pk(c.chunk_id),
        "chunk_id": c.chunk_id,
        "doc_id": c.doc_id,
        "words": _clip(r.words),
        "folded": _clip(r.folded),
        "vector": np.asarray(r.vector, np.float32).tolist(),
        "provinces": list(r.article.provinces),
        "date": r.article.date or "",
        "text": c.text,
        "info": {
            "start": c.start,
            "end": c.end,
            "sentences": [[s.start, s.end] for s in c.sentences],
            "position": r.position,
            "own": [len(c.words), len(c.folded)],
        },
        "doc": _doc_meta(r.article, per_doc[c.doc_id]),
        "sentvecs": _pack(r.sentence_vectors),
    }


def _doc_records(a: Article, counts: tuple[int, int]) -> list[dict[str, Any]]:
    parts = [a.text[i : i + TEXT_PART] for i in range(0, len(a.text), TEXT_PART)] or [""]
    return [
        {
            "key": pk(f"{a.doc_id}\x1f{n}"),
            "doc_id": a.doc_id,
            "part": n,
            "text": part,
            "doc": _doc_meta(a, counts) if n == 0 else {},
            "v": [0.0, 0.0],
        }
        for n, part in enumerate(parts)
    ]


def _stored_df(client: Any, coll: str, terms: list[str]) -> dict[str, int]:
    """Stored document frequencies of these terms (absent ones left out), read through a search
    on the placeholder vector: Milvus Lite answers it in ms where a query scans (MilvusBackend._fetch)."""
    hits = client.search(
        coll, data=[[0.0, 0.0]], anns_field="v", limit=len(terms),
        filter=f"term in [{', '.join(map(_quote, terms))}]", output_fields=["df"],
    )  # fmt: skip
    return {str(h["id"]): int(h["entity"]["df"]) for h in hits[0]}


def _iterate(client: Any, coll: str, expr: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
    it = client.query_iterator(coll, batch_size=1000, filter=expr, output_fields=fields)
    try:
        while batch := it.next():
            yield batch
    finally:
        it.close()
