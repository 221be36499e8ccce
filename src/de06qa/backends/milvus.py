"""The Milvus backend: BM25 (over our own tokens) and dense search in a Milvus collection, with
the province and date filters pushed down to Milvus. The only module that imports pymilvus.

One client API for Milvus Lite (a local file), a standalone server and a cluster, chosen by URI.

What lives where in this version: candidate retrieval (both BM25 fields, vectors, filters) runs in
Milvus; the chunk text, sentences and articles that ranking and answers read come from the index
folder built alongside. The folder's manifest names the collection it matches, so the folder's
atomic swap is also the switch to a new collection: a build writes a new collection
(`<name>_<time>`), then the folder, then drops all but the two newest (a server still on the
previous folder keeps working until it reloads). A build killed midway leaves readers on the old
pair; its half-written collection is dropped by the next build.
"""

from __future__ import annotations

import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from de06qa.backends import Candidates
from de06qa.errors import BackendUnavailable, De06qaError, IndexIncompatible
from de06qa.filters import Filters
from de06qa.lexical import LexicalIndex
from de06qa.query import Query

# bm25s's defaults (Lucene's BM25), so that Milvus scores what the ranker was fitted on.
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}
# Our tokens are already made (underthesea words, folded syllables and pairs): split on spaces only.
ANALYZER = {"tokenizer": "whitespace"}
INSERT_BATCH = 2000
# Searches of one question run side by side (pymilvus's client is safe to share between threads).
_POOL = ThreadPoolExecutor(max_workers=6, thread_name_prefix="de06qa-milvus")
MAX_TEXT = 65_535


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


def _chunk_schema(client: Any, dim: int, dense_index: str, array_index: bool = True) -> tuple[Any, Any]:
    from pymilvus import DataType, Function, FunctionType

    s = client.create_schema(auto_id=False)
    s.add_field("row", DataType.INT64, is_primary=True)
    s.add_field(
        "words", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True, analyzer_params=ANALYZER
    )
    s.add_field(
        "folded", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True, analyzer_params=ANALYZER
    )
    s.add_field("words_bm25", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("folded_bm25", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("provinces", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=64, max_length=64)
    s.add_field("date", DataType.VARCHAR, max_length=10)  # "" when unknown
    for field in ("words", "folded"):
        s.add_function(
            Function(
                name=f"{field}_bm25_fn",
                function_type=FunctionType.BM25,
                input_field_names=[field],
                output_field_names=[f"{field}_bm25"],
            )
        )
    idx = client.prepare_index_params()
    for field in ("words_bm25", "folded_bm25"):
        idx.add_index(field, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
    # Milvus Lite takes FLAT / IVF_FLAT / AUTOINDEX only; on a server AUTOINDEX is HNSW.
    params = {"nlist": 1024} if dense_index == "IVF_FLAT" else {}
    idx.add_index("vector", index_type=dense_index, metric_type="IP", params=params)
    # Filters read these: without an index, array_contains_any scans every row's array (Milvus Lite
    # indexes no ARRAY field; a server does).
    idx.add_index("date", index_type="INVERTED")
    if array_index:
        idx.add_index("provinces", index_type="INVERTED")
    return s, idx


def _clip(tokens: list[str]) -> str:
    text = " ".join(tokens)
    if len(text.encode("utf-8")) <= MAX_TEXT:
        return text
    return text.encode("utf-8")[:MAX_TEXT].decode("utf-8", "ignore").rsplit(" ", 1)[0]


def write_collection(
    uri: str,
    name: str,
    words: list[list[str]],
    folded: list[list[str]],
    vectors: np.ndarray,
    provinces: list[tuple[str, ...]],
    dates: list[str | None],
    dense_index: str = "AUTOINDEX",
) -> str:
    """Write a new collection, row i = chunk i of the index folder; returns its name."""
    client = _client(uri)
    try:
        new = f"{name}_{time.strftime('%Y%m%d%H%M%S')}{time.perf_counter_ns() % 1_000_000:06d}"
        try:
            # A Lite file's server writes to our terminal: do not make it log a refusal.
            schema, index = _chunk_schema(client, int(vectors.shape[1]), dense_index, not uri.endswith(".db"))
            client.create_collection(new, schema=schema, index_params=index)
        except Exception:  # Milvus Lite: "invalid parameter" for the index on the ARRAY field
            if client.has_collection(new):
                client.drop_collection(new)
            schema, index = _chunk_schema(client, int(vectors.shape[1]), dense_index, array_index=False)
            client.create_collection(new, schema=schema, index_params=index)
        for lo in range(0, len(words), INSERT_BATCH):
            hi = min(lo + INSERT_BATCH, len(words))
            client.insert(
                new,
                [
                    {
                        "row": i,
                        "words": _clip(words[i]),
                        "folded": _clip(folded[i]),
                        "vector": vectors[i].tolist(),
                        "provinces": list(provinces[i]),
                        "date": dates[i] or "",
                    }
                    for i in range(lo, hi)
                ],
            )
        client.flush(new)
        client.load_collection(new)
        return new
    except De06qaError:
        raise
    except Exception as e:
        raise BackendUnavailable(f"writing to Milvus at {uri} failed ({_reason(e)})") from None
    finally:
        client.close()


def retire(uri: str, name: str, keep: set[str]) -> None:
    """Drop this index's collections other than `keep` (older builds, leftovers of killed ones)."""
    client = _client(uri)
    try:
        for c in client.list_collections():
            if c.startswith(f"{name}_") and c[len(name) + 1 :].isdigit() and c not in keep:
                client.drop_collection(c)
    except Exception as e:
        raise BackendUnavailable(f"cleaning up Milvus at {uri} failed ({_reason(e)})") from None
    finally:
        client.close()


def _expr(filters: Filters | None) -> str:
    if filters is None or not filters.active:
        return ""
    parts = []
    if filters.provinces:
        names = ", ".join(f'"{p}"' for p in sorted(filters.covered))
        parts.append(f"array_contains_any(provinces, [{names}])")
    if filters.since:
        parts.append(f'date >= "{filters.since}"')
    if filters.until:
        parts.append(f'date != "" and date <= "{filters.until}"')
    return " and ".join(parts)


class MilvusBackend:
    """Candidates from Milvus: top `depth` by BM25 of each field and by inner product, and the raw
    scores of every candidate on all three (BM25 0 where a field does not match)."""

    def __init__(self, uri: str, collection: str, lexical: LexicalIndex) -> None:
        self.uri = uri
        self._client = _client(uri)
        try:
            present = self._client.has_collection(collection)
        except Exception as e:
            raise BackendUnavailable(f"cannot read from Milvus at {uri} ({_reason(e)})") from None
        if not present:
            raise IndexIncompatible(
                f"Milvus at {uri} has no collection {collection} (the one the index folder was built with); "
                "rebuild with: de06qa index FOLDER --backend milvus"
            )
        self.collection = collection
        self._lexical = lexical  # idf statistics (the folder's BM25 has the same documents)

    def _search(self, field: str, data: Any, limit: int, expr: str) -> dict[int, float]:
        try:
            hits = self._client.search(
                self.collection,
                data=[data],
                anns_field=field,
                limit=limit,
                filter=expr,
                output_fields=["row"],
            )
        except Exception as e:
            raise BackendUnavailable(f"Milvus at {self.uri} failed to search ({_reason(e)})") from None
        return {int(h["id"]): float(h["distance"]) for h in hits[0]}

    def _cosines(self, rows: list[int], vector: np.ndarray) -> dict[int, float]:
        try:
            got = self._client.query(
                self.collection, filter=f"row in {rows}", output_fields=["row", "vector"]
            )
        except Exception as e:
            raise BackendUnavailable(f"Milvus at {self.uri} failed to read vectors ({_reason(e)})") from None
        return {int(g["row"]): float(np.dot(np.asarray(g["vector"], np.float32), vector)) for g in got}

    def candidates(self, query: Query, depth: int, filters: Filters | None = None) -> Candidates:
        expr = _expr(filters)
        vector = None if query.vector is None else query.vector.tolist()
        asked = {
            "folded": ("folded_bm25", " ".join(query.folded_terms)),
            "words": ("words_bm25", " ".join(query.words) if query.accented else ""),
            "dense": ("vector", vector),
        }
        # The three searches are independent round trips to the server: run them side by side.
        futures = {k: _POOL.submit(self._search, f, d, depth, expr) for k, (f, d) in asked.items() if d}
        scores: dict[str, dict[int, float]] = {k: futures[k].result() if k in futures else {} for k in asked}
        # Lexical top: by the sum of both fields, as the embedded backend picks it.
        lex = {
            r: scores["folded"].get(r, 0.0) + scores["words"].get(r, 0.0)
            for r in {*scores["folded"], *scores["words"]}
        }
        lex_top = sorted(lex, key=lambda r: -lex[r])[:depth]
        rows = np.array(sorted({*lex_top, *scores["dense"]}), dtype=np.int64)
        # Scores the first searches did not return: the same searches restricted to those rows.
        more = {}
        for key, (field, data) in asked.items():
            missing = [int(r) for r in rows if int(r) not in scores[key]]
            if missing and data:
                more[key] = _POOL.submit(self._search, field, data, len(missing), f"row in {missing}")
        for key, future in more.items():
            scores[key].update(future.result())
        # An approximate vector index (IVF) can miss a row even when asked for it: those few
        # cosines come from the stored vectors (reading vectors is slow on Milvus Lite, so only
        # for what the search did not give).
        missing = [int(r) for r in rows if int(r) not in scores["dense"]]
        if missing and vector is not None:
            scores["dense"].update(self._cosines(missing, np.asarray(vector, np.float32)))

        def column(key: str, scale: float = 1.0) -> np.ndarray:
            return np.array([scores[key].get(int(r), 0.0) * scale for r in rows], dtype=np.float32)

        # Milvus's BM25 keeps the classic (k1 + 1) factor that Lucene (and bm25s) dropped: the same
        # ranking, scores (k1 + 1) times larger. The ranker was fitted on bm25s's scale.
        lucene = 1.0 / (1.0 + BM25_PARAMS["bm25_k1"])
        return Candidates(rows, column("words", lucene), column("folded", lucene), column("dense"))

    def idf(self, terms: tuple[str, ...]) -> dict[str, float]:
        return self._lexical.idf("folded", terms)

    def check(self) -> None:
        try:
            self._client.has_collection(self.collection)
        except Exception as e:
            raise BackendUnavailable(f"Milvus at {self.uri} does not answer ({_reason(e)})") from None
