"""Dense vector search. The only module that imports faiss."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from de06qa.errors import IndexDamaged

INDEX_FILE = "vectors.faiss"
# A filter that leaves at most this many chunks is searched by exact scoring of those rows.
EXACT_FILTERED = 20_000
# `kind="auto"` builds HNSW from this many vectors on: at 50k passages exact search took 12 ms of a
# 42 ms search, HNSW 0.3 ms, with the same ViNewsQA Hit@1 among 5,000 distractor articles (.745
# against .744; eval/RESULTS.md); below it exact search costs a few ms and needs no build time.
HNSW_FROM = 20_000


IDS_FILE = "vector_ids.npy"
# An incremental build keeps an HNSW graph and marks the rows of removed articles dead while they
# are at most this share of it (rebuilding the graph of 200k passages takes minutes, marking
# rows none); beyond it the graph is rebuilt from the live vectors.
DEAD_AT_MOST = 0.25


def resolve_kind(kind: str, n: int) -> str:
    if kind == "auto":
        return "hnsw" if n >= HNSW_FROM else "flat"
    if kind not in ("flat", "hnsw"):
        raise ValueError(f"unknown FAISS index kind {kind!r}; use 'auto', 'flat' or 'hnsw'")
    return kind


class DenseIndex:
    """Inner-product search over L2-normalised float32 vectors; row i is chunk i of the store.

    Row i is FAISS id `ids[i]` when an incremental build left dead entries in the graph
    (`ids` None: row i is id i)."""

    def __init__(self, index: faiss.Index, ids: np.ndarray | None = None) -> None:
        self._index = index
        self._ids = ids
        self._rows: np.ndarray | None = None  # FAISS id -> row, -1 when dead
        self._live: faiss.IDSelector | None = None
        if ids is not None:
            self._rows = np.full(index.ntotal, -1, np.int64)
            self._rows[ids] = np.arange(len(ids))
            dead = np.flatnonzero(self._rows < 0)
            if len(dead):
                self._dead = faiss.IDSelectorBatch(dead)  # (kept: the Not selector points into it)
                self._live = faiss.IDSelectorNot(self._dead)

    @classmethod
    def empty(cls, dim: int, kind: str, hnsw_m: int = 32) -> DenseIndex:
        """An index of `kind` ("flat" or "hnsw") to `add` vectors to."""
        if kind == "flat":
            return cls(faiss.IndexFlatIP(dim))
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.hnsw.efSearch = 128
        return cls(index)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat", hnsw_m: int = 32) -> DenseIndex:
        index = cls.empty(vectors.shape[1], resolve_kind(kind, len(vectors)), hnsw_m)
        index.add(vectors)
        return index

    def add(self, vectors: np.ndarray) -> None:
        """Append rows (at the end, in order)."""
        first = self._index.ntotal
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        if self._ids is not None:
            new = np.arange(first, self._index.ntotal)
            self._ids = np.concatenate([self._ids, new])
            assert self._rows is not None
            self._rows = np.concatenate([self._rows, np.arange(len(self._ids) - len(new), len(self._ids))])

    def keeping(self, rows: np.ndarray, kind: str, total: int) -> DenseIndex:
        """An index of these rows (in this order), to which `total - len(rows)` rows will be added:
        this graph with the other rows marked dead where that is cheaper and searches as well,
        else a new index of the kept vectors."""
        kind = resolve_kind(kind, total)
        dead = self._index.ntotal - len(rows)
        if (
            kind == "hnsw"
            and isinstance(self._index, faiss.IndexHNSW)
            and dead <= DEAD_AT_MOST * (total + dead)
        ):
            return DenseIndex(self._index, self._id_of(np.asarray(rows, np.int64)))
        index = DenseIndex.empty(self.dim, kind)
        for lo in range(0, len(rows), 50_000):
            index.add(self._reconstruct(self._id_of(rows[lo : lo + 50_000])))
        return index

    @property
    def size(self) -> int:
        return int(self._index.ntotal) if self._ids is None else len(self._ids)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def _id_of(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows, np.int64) if self._ids is None else self._ids[rows]

    def _row_of(self, ids: np.ndarray) -> np.ndarray:
        return ids if self._rows is None else np.where(ids >= 0, self._rows[np.maximum(ids, 0)], -1)

    def _reconstruct(self, ids: np.ndarray) -> np.ndarray:
        if len(ids) == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(
            self._index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64)), np.float32
        )

    def _params(self, sel: faiss.IDSelector | None) -> faiss.SearchParameters | None:
        if sel is None:
            return None
        # (faiss's bundled type stubs lack the search-parameter classes)
        if isinstance(self._index, faiss.IndexHNSW):
            hnsw = faiss.SearchParametersHNSW  # type: ignore[attr-defined]
            params: faiss.SearchParameters = hnsw(sel=sel, efSearch=self._index.hnsw.efSearch)
            return params
        return faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]

    def _search(self, q: np.ndarray, k: int, sel: faiss.IDSelector | None) -> tuple[np.ndarray, np.ndarray]:
        params = self._params(sel)
        if params is None:
            scores, ids = self._index.search(q, k)
        else:
            scores, ids = self._index.search(q, k, params=params)
        return scores, self._row_of(ids)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k (row, score) per query. FAISS pads with id -1 when k exceeds the index; dropped."""
        if self.size == 0:
            return [[] for _ in range(len(queries))]
        q = np.ascontiguousarray(queries, dtype=np.float32)
        scores, rows = self._search(q, min(k, self.size), self._live)
        return [
            [(int(i), float(s)) for i, s in zip(row_i, row_s) if i >= 0] for row_i, row_s in zip(rows, scores)
        ]

    def search_arrays(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the top-k for one query, best first, as arrays (-1 padding dropped).
        With `allowed` (sorted rows), only those rows are searched."""
        if self.size == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if allowed is None:
            scores, rows = self._search(q, min(k, self.size), self._live)
        elif len(allowed) <= EXACT_FILTERED:
            # A narrow filter: scoring its rows exactly is cheaper than a filtered index walk and
            # never misses (a filtered HNSW search can, when few of a node's neighbours pass).
            sims = self.score(q[0], allowed)
            top = np.argsort(-sims, kind="stable")[:k]
            return allowed[top].astype(np.int64), sims[top]
        else:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(self._id_of(allowed), dtype=np.int64))
            scores, rows = self._search(q, min(k, len(allowed)), sel)
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep]

    def score(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosine of the query with the given rows (flat and HNSW-flat keep the vectors)."""
        if len(rows) == 0:
            return np.zeros(0, np.float32)
        return np.asarray(self._reconstruct(self._id_of(rows)) @ query, dtype=np.float32)

    def vectors(self) -> np.ndarray:
        """The stored vectors in row order (flat and HNSW-flat both keep them)."""
        return self._reconstruct(self._id_of(np.arange(self.size)))

    def save(self, folder: Path) -> None:
        faiss.write_index(self._index, str(folder / INDEX_FILE))
        if self._ids is not None:
            np.save(folder / IDS_FILE, self._ids)

    @classmethod
    def load(cls, folder: Path) -> DenseIndex:
        try:
            index = faiss.read_index(str(folder / INDEX_FILE))
            ids = np.load(folder / IDS_FILE) if (folder / IDS_FILE).exists() else None
        # faiss reports truncated or missing files as RuntimeError; numpy a bad ids file as ValueError
        except (RuntimeError, ValueError, OSError) as e:
            raise IndexDamaged(
                f"{folder / INDEX_FILE} is missing or damaged; rebuild with: de06qa index --rebuild"
            ) from e
        if ids is not None and (ids.ndim != 1 or (len(ids) and (ids.min() < 0 or ids.max() >= index.ntotal))):
            raise IndexDamaged(f"{folder / IDS_FILE} is damaged; rebuild with: de06qa index --rebuild")
        return cls(index, ids)
