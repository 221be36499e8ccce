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


class DenseIndex:
    """Inner-product search over L2-normalised float32 vectors; row i is chunk i of the store."""

    def __init__(self, index: faiss.Index) -> None:
        self._index = index

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat", hnsw_m: int = 32) -> DenseIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        if kind == "auto":
            kind = "hnsw" if len(vectors) >= HNSW_FROM else "flat"
        if kind == "flat":
            index: faiss.Index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 200
            index.hnsw.efSearch = 128
        else:
            raise ValueError(f"unknown FAISS index kind {kind!r}; use 'auto', 'flat' or 'hnsw'")
        index.add(vectors)
        return cls(index)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k (row, score) per query. FAISS pads with id -1 when k exceeds the index; dropped."""
        if self.size == 0:
            return [[] for _ in range(len(queries))]
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.size))
        return [
            [(int(i), float(s)) for i, s in zip(row_i, row_s) if i >= 0] for row_i, row_s in zip(ids, scores)
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
            scores, ids = self._index.search(q, min(k, self.size))
        elif len(allowed) <= EXACT_FILTERED:
            # A narrow filter: scoring its rows exactly is cheaper than a filtered index walk and
            # never misses (a filtered HNSW search can, when few of a node's neighbours pass).
            sims = self.score(q[0], allowed)
            top = np.argsort(-sims, kind="stable")[:k]
            return allowed[top].astype(np.int64), sims[top]
        else:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            # (faiss's bundled type stubs lack the search-parameter classes)
            params = (
                faiss.SearchParametersHNSW(sel=sel, efSearch=self._index.hnsw.efSearch)  # type: ignore[attr-defined]
                if isinstance(self._index, faiss.IndexHNSW)
                else faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
            )
            scores, ids = self._index.search(q, min(k, len(allowed)), params=params)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def score(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosine of the query with the given rows (flat and HNSW-flat keep the vectors)."""
        if len(rows) == 0:
            return np.zeros(0, np.float32)
        vecs = self._index.reconstruct_batch(np.ascontiguousarray(rows, dtype=np.int64))
        return np.asarray(vecs @ query, dtype=np.float32)

    def vectors(self) -> np.ndarray:
        """The stored vectors in row order (flat and HNSW-flat both keep them), for incremental builds."""
        if self.size == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._index.reconstruct_n(0, self.size), dtype=np.float32)

    def save(self, folder: Path) -> None:
        faiss.write_index(self._index, str(folder / INDEX_FILE))

    @classmethod
    def load(cls, folder: Path) -> DenseIndex:
        try:
            return cls(faiss.read_index(str(folder / INDEX_FILE)))
        except RuntimeError as e:  # faiss reports truncated/missing files as RuntimeError
            raise IndexDamaged(
                f"{folder / INDEX_FILE} is missing or damaged; rebuild with: de06qa index --rebuild"
            ) from e
