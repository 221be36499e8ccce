"""The Milvus backend: the whole index lives in Milvus, so serving processes are stateless replicas.
The only module that imports pymilvus. One client API for Milvus Lite (a local file), a standalone
server and a cluster, chosen by URI.

An index named NAME is a few collections:
  NAME_meta              pointer rows: "current" (the live generation and the build's manifest),
                         "lock" (the build writing now)
  NAME_<time>            chunks: both BM25 fields (our own tokens, Milvus's BM25), the vector,
                         provinces and date for filters, and everything ranking and answers read
                         (text, offsets, sentence spans and vectors, the article's metadata)
  NAME_<time>_docs       article texts (in parts under Milvus's 64 KB VARCHAR) for /documents
  NAME_<time>_terms      document frequency of each folded term (features weigh terms by idf)

A rebuild writes a new generation and then moves the "current" pointer: one row upserted, so
readers switch at once (Milvus Lite implements no aliases; this works on Lite, a server and a
cluster alike). An update with the same model and settings changes the live generation in place
by content hash: new and changed articles' chunks upserted, vanished ones deleted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from de06qa.backends import Candidates, Stats
from de06qa.corpus import build_view
from de06qa.documents import Article, Chunk, Span
from de06qa.errors import BackendUnavailable, De06qaError, IndexBusy, IndexMissing, UnknownDocument
from de06qa.filters import Filters
from de06qa.query import Query

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
# A build refreshes its lock this often; a lock not refreshed for LOCK_TTL_S is a dead build's.
LOCK_BEAT_S, LOCK_TTL_S = 10.0, 60.0
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


# -- writing ---------------------------------------------------------------------------------------


class MilvusIndex:
    """Writes and maintains one named index in Milvus (a build holds it for its duration)."""

    def __init__(self, uri: str, name: str, create: bool = True) -> None:
        """`create`: make the index's meta collection when there is none (a build); a reader
        leaves Milvus as it is and finds no pointer."""
        self.uri, self.name = uri, name
        self.client = _client(uri)
        self.meta = f"{name}_meta"
        with _failing_as("open the index", uri):
            self.exists = bool(self.client.has_collection(self.meta))
            if not self.exists and create:
                from pymilvus import DataType

                s, i = _tiny_schema(
                    self.client, ("key", DataType.VARCHAR, {"max_length": 64}),
                    [("value", DataType.JSON, {})],
                )  # fmt: skip
                _create(self.client, self.meta, s, i)
                self.exists = True
            if self.exists:
                self.client.load_collection(self.meta)

    def close(self) -> None:
        self.client.close()

    # pointer and lock rows
    def _get(self, key: str) -> dict[str, Any] | None:
        if not self.exists:
            return None
        with _failing_as("read the index's pointer", self.uri):
            got = self.client.query(self.meta, filter=f"key == {_quote(key)}", output_fields=["value"])
        return dict(got[0]["value"]) if got else None

    def _put(self, key: str, value: dict[str, Any]) -> None:
        with _failing_as("write the index's pointer", self.uri):
            self.client.upsert(self.meta, [{"key": key, "value": value, "v": [0.0, 0.0]}])

    def current(self) -> dict[str, Any] | None:
        """{"generation": collection, "manifest": {...}} of the live index, None before a first build."""
        return self._get("current")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One build at a time per index name, whichever machine it runs on. Milvus has no
        compare-and-set: a build writes its claim, waits, and reads it back; the later of two
        simultaneous claims wins and the other refuses. The claim is refreshed while the build
        runs, so a killed build's lock expires by itself."""
        me = f"{socket.gethostname()} pid {os.getpid()} #{time.monotonic_ns() % 10**9}"
        held = self._get("lock")
        if held and held.get("holder") != me and time.time() - float(held.get("beat", 0)) < LOCK_TTL_S:
            raise self._busy(held)
        since = time.time()
        self._put("lock", {"holder": me, "since": since, "beat": since})
        time.sleep(0.5)
        held = self._get("lock")
        if not held or held.get("holder") != me:
            raise self._busy(held or {})
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(LOCK_BEAT_S):
                try:
                    self._put("lock", {"holder": me, "since": since, "beat": time.time()})
                except De06qaError:
                    pass  # Milvus is away: the build's own next call says so

        t = threading.Thread(target=beat, name="de06qa-milvus-lock", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(timeout=5)
            held = self._get("lock")
            if held and held.get("holder") == me:
                with _failing_as("release the build lock", self.uri):
                    self.client.delete(self.meta, filter='key == "lock"')

    def _busy(self, held: dict[str, Any]) -> IndexBusy:
        since = time.strftime("%H:%M:%S", time.localtime(float(held.get("since", time.time()))))
        return IndexBusy(
            f"another de06qa index ({held.get('holder', '?')}, since {since}) is writing {self.name} in "
            f"Milvus at {self.uri}; wait for it to finish, then run again (the lock of a killed build "
            f"expires {LOCK_TTL_S:.0f} s after its last sign of life)"
        )

    # a generation's collections
    def new_generation(self, dim: int, dense_index: str = "AUTOINDEX") -> str:
        from pymilvus import DataType

        gen = f"{self.name}_{time.strftime('%Y%m%d%H%M%S')}{time.perf_counter_ns() % 1_000_000:06d}"
        with _failing_as("create collections", self.uri):
            try:
                # A Lite file's server writes to our terminal: do not make it log a refusal.
                schema, index = _chunk_schema(self.client, dim, dense_index, not self.uri.endswith(".db"))
                _create(self.client, gen, schema, index)
            except Exception:  # Milvus Lite: "invalid parameter" for the index on the ARRAY field
                if self.client.has_collection(gen):
                    self.client.drop_collection(gen)
                schema, index = _chunk_schema(self.client, dim, dense_index, array_index=False)
                _create(self.client, gen, schema, index)
            s, i = _tiny_schema(
                self.client, ("key", DataType.INT64, {}),
                [("doc_id", DataType.VARCHAR, {"max_length": 2048}), ("part", DataType.INT64, {}),
                 ("text", DataType.VARCHAR, {"max_length": MAX_TEXT}), ("doc", DataType.JSON, {})],
            )  # fmt: skip
            i.add_index("doc_id", index_type="INVERTED")
            _create(self.client, f"{gen}_docs", s, i)
            s, i = _tiny_schema(
                self.client,
                ("term", DataType.VARCHAR, {"max_length": MAX_TERM}),
                [("df", DataType.INT64, {})],
            )
            _create(self.client, f"{gen}_terms", s, i)
        return gen

    def write(
        self, gen: str, rows: list[ChunkRow], articles: list[Article], new: bool = False
    ) -> tuple[set[int], set[int]]:
        """Upsert chunks, then their articles (replacing rows of the same keys; plain inserts into
        a `new` generation); returns the chunk and article-part keys written. An article's row
        goes last: its content hash says its chunks are complete."""
        chunks = Counter(r.chunk.doc_id for r in rows)
        sentences: dict[str, set[int]] = {}
        for r in rows:
            sentences.setdefault(r.chunk.doc_id, set()).update(s.start for s in r.chunk.sentences)
        per_doc = {
            d: (chunks[d], len(sentences.get(d, ()))) for d in {*chunks, *(a.doc_id for a in articles)}
        }
        records = [_chunk_record(r, per_doc) for r in rows]
        docs = [rec for a in articles for rec in _doc_records(a, per_doc[a.doc_id])]
        put = self.client.insert if new else self.client.upsert
        with _failing_as("write chunks", self.uri):
            for lo in range(0, len(records), INSERT_BATCH):
                put(gen, records[lo : lo + INSERT_BATCH])
            for lo in range(0, len(docs), INSERT_BATCH):
                put(f"{gen}_docs", docs[lo : lo + INSERT_BATCH])
        return {r["pk"] for r in records}, {d["key"] for d in docs}

    def stored(self, gen: str, doc_ids: list[str]) -> tuple[list[int], Counter[str], list[int]]:
        """What the generation holds of these articles: chunk keys, the document frequency their
        chunks add to each term, and article-part keys."""
        chunk_keys: list[int] = []
        doc_keys: list[int] = []
        df: Counter[str] = Counter()
        with _failing_as("read chunks", self.uri):
            for lo in range(0, len(doc_ids), 200):
                expr = f"doc_id in [{', '.join(map(_quote, doc_ids[lo : lo + 200]))}]"
                for batch in _iterate(self.client, gen, expr, ["pk", "folded"]):
                    for r in batch:
                        chunk_keys.append(int(r["pk"]))
                        df.update(set(r["folded"].split()))
                for batch in _iterate(self.client, f"{gen}_docs", expr, ["key"]):
                    doc_keys += [int(r["key"]) for r in batch]
        return chunk_keys, df, doc_keys

    def delete(self, gen: str, chunk_keys: list[int], doc_keys: list[int]) -> None:
        with _failing_as("delete chunks", self.uri):
            for coll, keys, field in ((gen, chunk_keys, "pk"), (f"{gen}_docs", doc_keys, "key")):
                for lo in range(0, len(keys), 5000):
                    self.client.delete(coll, filter=f"{field} in {keys[lo : lo + 5000]}")

    def add_terms(self, gen: str, delta: Counter[str], new: bool = False) -> None:
        """Apply document-frequency changes to the terms collection (of a `new` generation:
        nothing stored yet to read)."""
        terms = [t for t in delta if delta[t] and 0 < len(t.encode("utf-8")) <= MAX_TERM]
        coll = f"{gen}_terms"
        with _failing_as("write term statistics", self.uri):
            for lo in range(0, len(terms), 2000):
                part = terms[lo : lo + 2000]
                old = {} if new else _stored_df(self.client, coll, part)
                new_df = {t: old.get(t, 0) + delta[t] for t in part}
                gone = [t for t, v in new_df.items() if v <= 0 and t in old]
                keep = [{"term": t, "df": v, "v": [0.0, 0.0]} for t, v in new_df.items() if v > 0]
                if keep:
                    self.client.upsert(coll, keep)
                if gone:
                    self.client.delete(coll, filter=f"term in [{', '.join(map(_quote, gone))}]")

    def documents(self, gen: str) -> dict[str, dict[str, Any]]:
        """doc_id -> metadata (content hash, source, chunk and sentence counts …) of every article
        of the generation."""
        out: dict[str, dict[str, Any]] = {}
        with _failing_as("read articles", self.uri):
            for batch in _iterate(self.client, f"{gen}_docs", "part == 0", ["doc_id", "doc"]):
                out.update({r["doc_id"]: r["doc"] for r in batch})
        return out

    def publish(self, gen: str, manifest: dict[str, Any], previous: str = "") -> None:
        """Make `gen` (flushed and loaded) what readers search, with this manifest; `previous`
        is kept for servers that have not switched yet."""
        with _failing_as("publish the index", self.uri):
            for c in (gen, f"{gen}_docs", f"{gen}_terms"):
                self.client.flush(c)
                self.client.load_collection(c)
        self._put("current", {"generation": gen, "previous": previous, "manifest": manifest})

    def retire(self, keep: set[str]) -> None:
        """Drop this index's generations other than `keep` (older builds, leftovers of killed ones)."""
        prefix = f"{self.name}_"
        with _failing_as("clean up old collections", self.uri):
            for c in self.client.list_collections():
                stamp = c[len(prefix) :].split("_", 1)[0] if c.startswith(prefix) else ""
                if stamp.isdigit() and f"{prefix}{stamp}" not in keep:
                    self.client.drop_collection(c)


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


# -- reading ---------------------------------------------------------------------------------------


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
    """Candidates from Milvus: top `depth` by BM25 of each field and by inner product, with the
    raw scores of every candidate on all three (BM25 0 where a field does not match), and the
    candidates' chunks, articles and sentence vectors fetched for the question's corpus view."""

    def __init__(self, uri: str, name: str) -> None:
        self.uri, self.name = uri, name
        self._index = MilvusIndex(uri, name, create=False)
        self._client = self._index.client
        current = self._index.current()
        if current is None:
            raise IndexMissing(
                f"Milvus at {uri} holds no index named {name!r}; build it with: "
                f"de06qa index FOLDER --backend milvus --milvus-uri {uri} --collection {name}"
            )
        self.collection: str = current["generation"]
        self._manifest: dict[str, Any] = current["manifest"]
        self.loaded: object = (self.collection, self._manifest.get("built_at"))
        s = self._manifest.get("stats", {})
        counts = self._manifest.get("counts", {})
        self._stats = Stats(counts.get("documents", 0), counts.get("chunks", 0), s.get("undated", 0))
        self._provinces = frozenset(s.get("provinces", ()))
        self._dim = int(self._manifest["model"]["dim"])
        # An IVF index probes every list in the searches restricted to a few rows (see _fetch).
        ivf = self._manifest.get("milvus", {}).get("dense_index") == "IVF_FLAT"
        self._probe_all: dict[str, Any] = {"params": {"nprobe": IVF_LISTS}} if ivf else {}
        self._idf_ahead: dict[tuple[str, ...], Future[dict[str, float]]] = {}

    @property
    def manifest(self) -> dict[str, Any]:
        return self._manifest

    @property
    def stats(self) -> Stats:
        return self._stats

    def _search(self, field: str, data: Any, limit: int, expr: str) -> dict[int, float]:
        with _failing_as("search", self.uri):
            hits = self._client.search(
                self.collection, data=[data], anns_field=field, limit=limit, filter=expr, output_fields=[]
            )
        return {int(h["id"]): float(h["distance"]) for h in hits[0]}

    def _fetch(self, keys: list[int], vector: list[float] | None) -> dict[int, dict[str, Any]]:
        """The rows of these chunks, each with its cosine to the question ("distance"). Milvus Lite
        answers a vector search restricted to these keys in ~20 ms at 1M rows where a query with
        the same filter takes ~300 ms (it scans), so rows are read through such a search (an IVF
        index is told to probe every list: the filter keeps the work small); rows it still
        misses, and all of them without a question vector, through a query."""
        got: dict[int, dict[str, Any]] = {}
        with _failing_as("read chunks", self.uri):
            if vector is not None:
                hits = self._client.search(
                    self.collection, data=[vector], anns_field="vector", limit=len(keys),
                    filter=f"pk in {keys}", output_fields=_CHUNK_FIELDS, search_params=self._probe_all,
                )  # fmt: skip
                got = {int(h["id"]): {**h["entity"], "pk": h["id"], "cos": h["distance"]} for h in hits[0]}
            rest = [k for k in keys if k not in got]
            if rest:
                rows = self._client.query(
                    self.collection, filter=f"pk in {rest}", output_fields=[*_CHUNK_FIELDS, "vector"]
                )
                for r in rows:
                    if vector is not None:
                        r["cos"] = float(
                            np.asarray(r.pop("vector"), np.float32) @ np.asarray(vector, np.float32)
                        )
                    got[int(r["pk"])] = r
        return got

    def candidates(self, query: Query, depth: int, filters: Filters | None = None) -> Candidates:
        # The ranker asks for the question's idf next: fetch it alongside the searches.
        if len(self._idf_ahead) > 64:
            self._idf_ahead.clear()
        self._idf_ahead[query.terms] = _POOL.submit(self._idf, query.terms)
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
        keys = sorted({*sorted(lex, key=lambda r: -lex[r])[:depth], *scores["dense"]})
        if not keys:  # nothing matches (a filter no article passes)
            empty = np.zeros(0, np.float32)
            return Candidates(np.zeros(0, np.int64), empty, empty, empty, self._view([]))
        # The candidates' rows, and the scores the first searches did not return (the same
        # searches restricted to those rows), fetched side by side.
        rows = _POOL.submit(self._fetch, keys, vector)
        more = {}
        for key, (field, data) in asked.items():
            missing = [k for k in keys if k not in scores[key]]
            if missing and data and key != "dense":  # the rows come with their cosines
                more[key] = _POOL.submit(self._search, field, data, len(missing), f"pk in {missing}")
        for key, future in more.items():
            scores[key].update(future.result())
        got = rows.result()
        keys = [k for k in keys if k in got]  # a row deleted by an update since the search
        if vector is not None:
            scores["dense"].update({k: float(got[k]["cos"]) for k in keys})

        def column(key: str, scale: float = 1.0) -> np.ndarray:
            return np.array([scores[key].get(k, 0.0) * scale for k in keys], dtype=np.float32)

        # Milvus's BM25 keeps the classic (k1 + 1) factor that Lucene (and bm25s) dropped: the same
        # ranking, scores (k1 + 1) times larger. The ranker was fitted on bm25s's scale.
        lucene = 1.0 / (1.0 + BM25_PARAMS["bm25_k1"])
        return Candidates(
            np.arange(len(keys), dtype=np.int64), column("words", lucene), column("folded", lucene),
            column("dense"), self._view([got[k] for k in keys]),
        )  # fmt: skip

    def _view(self, rows: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
        articles: dict[str, Article] = {}
        chunks: list[Chunk] = []
        position: list[float] = []
        keys: list[tuple[str, int]] = []
        vecs: list[np.ndarray] = []
        ranges: list[tuple[int, int]] = []
        for r in rows:
            doc_id, info = r["doc_id"], r["info"]
            if doc_id not in articles:
                articles[doc_id] = _article(doc_id, r["doc"])
            text, start = r["text"], int(info["start"])
            sentences = tuple(Span(a, b, text[a - start : b - start]) for a, b in info["sentences"])
            n_words, n_folded = info["own"]
            chunks.append(
                Chunk(
                    r["chunk_id"], doc_id, start, int(info["end"]), text,
                    tuple(r["words"].split()[:n_words]), tuple(r["folded"].split()[:n_folded]), sentences,
                )
            )  # fmt: skip
            position.append(float(info["position"]))
            ranges.append((len(keys), len(keys) + len(sentences)))
            for s, v in zip(sentences, _unpack(r["sentvecs"], self._dim)):
                keys.append((doc_id, s.start))
                vecs.append(v)
        vectors = np.stack(vecs) if vecs else np.zeros((0, self._dim), np.float32)
        return build_view(
            list(articles.values()), chunks, np.array(position, np.float32), keys, vectors, self._provinces,
            np.array(ranges, np.int64).reshape(-1, 2),
        )  # fmt: skip

    def _dfs(self, terms: tuple[str, ...]) -> dict[str, int]:
        asked = [t for t in terms if 0 < len(t.encode("utf-8")) <= MAX_TERM]
        out = dict.fromkeys(terms, 0)
        if asked:
            with _failing_as("read term statistics", self.uri):
                out.update(_stored_df(self._client, f"{self.collection}_terms", asked))
        return out

    def idf(self, terms: tuple[str, ...]) -> dict[str, float]:
        """BM25's idf from the stored document frequencies (one query for the question's terms)."""
        ahead = self._idf_ahead.pop(terms, None)
        return ahead.result() if ahead is not None else self._idf(terms)

    def _idf(self, terms: tuple[str, ...]) -> dict[str, float]:
        dfs = self._dfs(tuple(dict.fromkeys(terms)))
        n = self._stats.chunks
        return {t: float(np.log1p((n - df + 0.5) / (df + 0.5))) if df else 0.0 for t, df in dfs.items()}

    def article(self, doc_id: str) -> Article:
        with _failing_as("read an article", self.uri):
            hits = self._client.search(
                f"{self.collection}_docs", data=[[0.0, 0.0]], anns_field="v", limit=1000,
                filter=f"doc_id == {_quote(doc_id)}", output_fields=["part", "text", "doc"],
            )  # fmt: skip
        parts = [h["entity"] for h in hits[0]]
        if not parts:
            raise UnknownDocument(f"no article {doc_id!r}; GET /documents lists the doc_ids")
        parts.sort(key=lambda p: int(p["part"]))
        return _article(doc_id, parts[0]["doc"], "".join(p["text"] for p in parts))

    def documents(self) -> list[tuple[Article, int]]:
        out = []
        with _failing_as("list articles", self.uri):
            for batch in _iterate(self._client, f"{self.collection}_docs", "part == 0", ["doc_id", "doc"]):
                out += [(_article(r["doc_id"], r["doc"]), int(r["doc"].get("chars", 0))) for r in batch]
        return out

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk (the evaluation judges passages by them), in no particular order."""
        with _failing_as("read chunks", self.uri):
            for batch in _iterate(self._client, self.collection, "", _CHUNK_FIELDS):
                yield from self._view(batch).chunks

    def check(self) -> None:
        with _failing_as("answer", self.uri):
            self._client.has_collection(self.collection)

    def stamp(self) -> object:
        try:
            current = self._index.current()
        except De06qaError:
            return None
        return None if current is None else (current["generation"], current["manifest"].get("built_at"))
