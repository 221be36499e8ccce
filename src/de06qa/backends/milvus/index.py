"""Writing an index in Milvus: its generations, the build lock, rows written, term statistics, the
pointer published."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from de06qa.backends.milvus.common import (
    INSERT_BATCH,
    MAX_TERM,
    MAX_TEXT,
    ChunkRow,
    _chunk_record,
    _chunk_schema,
    _client,
    _create,
    _doc_records,
    _failing_as,
    _iterate,
    _quote,
    _stored_df,
    _tiny_schema,
)
from de06qa.documents import Article
from de06qa.errors import De06qaError, IndexBusy

# A build refreshes its lock this often; a lock not refreshed for LOCK_TTL_S is a dead build's.
LOCK_BEAT_S, LOCK_TTL_S = 10.0, 60.0


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
    def generation_for(self, dim: int, key: dict[str, Any]) -> tuple[str, bool]:
        """The generation a new build writes: the one a stopped build with the same `key` (model,
        runtime, chunking) left unpublished, to go on with (True), or a new one (False)."""
        held = self._get("building")
        current = self.current() or {}
        if held and held.get("key") == key and held.get("generation") != current.get("generation"):
            gen = str(held["generation"])
            with _failing_as("open the stopped build's collections", self.uri):
                whole = all(self.client.has_collection(c) for c in (gen, f"{gen}_docs", f"{gen}_terms"))
            if whole:
                return gen, True
        gen = self.new_generation(dim)
        self._put("building", {"generation": gen, "key": key})
        return gen, False

    def doc_ids(self, gen: str) -> set[str]:
        """Every article with a row in the generation, written whole or not."""
        out: set[str] = set()
        with _failing_as("read articles", self.uri):
            for coll in (gen, f"{gen}_docs"):
                for batch in _iterate(self.client, coll, 'doc_id != ""', ["doc_id"]):
                    out.update(r["doc_id"] for r in batch)
        return out

    def clear_terms(self, gen: str) -> None:
        with _failing_as("write term statistics", self.uri):
            self.client.delete(f"{gen}_terms", filter="df >= 0")

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
        goes last: its content hash says its chunks and its text are complete."""
        chunks = Counter(r.chunk.doc_id for r in rows)
        sentences: dict[str, set[int]] = {}
        for r in rows:
            sentences.setdefault(r.chunk.doc_id, set()).update(s.start for s in r.chunk.sentences)
        per_doc = {
            d: (chunks[d], len(sentences.get(d, ()))) for d in {*chunks, *(a.doc_id for a in articles)}
        }
        records = [_chunk_record(r, per_doc) for r in rows]
        # each article's first part (the one with its metadata) last: it says the rest are there
        docs = [rec for a in articles for rec in reversed(_doc_records(a, per_doc[a.doc_id]))]
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
        with _failing_as("publish the index", self.uri):
            self.client.delete(self.meta, filter='key == "building"')

    def retire(self, keep: set[str]) -> None:
        """Drop this index's generations other than `keep` (older builds, leftovers of killed ones)."""
        prefix = f"{self.name}_"
        with _failing_as("clean up old collections", self.uri):
            for c in self.client.list_collections():
                stamp = c[len(prefix) :].split("_", 1)[0] if c.startswith(prefix) else ""
                if stamp.isdigit() and f"{prefix}{stamp}" not in keep:
                    self.client.drop_collection(c)
