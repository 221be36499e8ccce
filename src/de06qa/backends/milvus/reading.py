"""Reading an index in Milvus: the backend a search asks for candidates, articles and chunks."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np

from de06qa.backends import Candidates, Stats
from de06qa.backends.milvus.common import (
    _CHUNK_FIELDS,
    _POOL,
    BM25_PARAMS,
    IVF_LISTS,
    MAX_TERM,
    _article,
    _failing_as,
    _iterate,
    _quote,
    _stored_df,
    _unpack,
)
from de06qa.backends.milvus.index import (
    MilvusIndex,
)
from de06qa.corpus import build_view
from de06qa.documents import Article, Chunk, Span
from de06qa.errors import De06qaError, IndexMissing, UnknownDocument
from de06qa.filters import Filters
from de06qa.query import Query


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
