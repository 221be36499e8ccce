"""Recall of an index's HNSW graph against exact search over the same vectors.

    .venv/bin/python eval/hnsw_recall.py --index-dir /tmp/a23/index \
        --questions /tmp/ext/vn/questions.heldout.jsonl [--k 10] [--limit 500]

The questions are embedded as the product embeds them; for each, the exact top-k passages (inner
product over every live vector) are compared with what the graph returns at its efSearch and at
a few others. Prints recall@k (the share of the exact top-k the graph finds) and the median
milliseconds of one graph search, per efSearch.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from de06qa.config import Settings
from de06qa.dense import DenseIndex
from de06qa.embedding import create_embedder
from de06qa.evaluation import load_questions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index-dir", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--limit", type=int, default=500)
    args = ap.parse_args()

    dense = DenseIndex.load(args.index_dir)
    graph = dense._index
    if not hasattr(graph, "hnsw"):
        raise SystemExit(
            f"{args.index_dir} holds an exact index ({dense.size:,} passages): nothing to measure"
        )
    texts = [q.question for q in load_questions(args.questions)][: args.limit]
    queries = create_embedder(Settings.from_env()).embed_queries(texts)
    vectors = dense._reconstruct(dense._id_of(np.arange(dense.size)))  # row order, live rows only
    exact = []
    for q in queries:
        scores = vectors @ q
        top = np.argpartition(-scores, args.k)[: args.k]
        exact.append(set(top.tolist()))
    print(f"# {dense.size:,} passages, {len(texts)} questions, k={args.k}")
    shipped = graph.hnsw.efSearch
    for ef in sorted({32, 64, shipped, 256}):
        graph.hnsw.efSearch = ef
        found, ms = [], []
        for q, want in zip(queries, exact, strict=True):
            t = time.perf_counter()
            got = dense.search(q[None, :], args.k)[0]
            ms.append((time.perf_counter() - t) * 1000)
            found.append(len(want & {row for row, _ in got}) / args.k)
        mark = "  (the index's)" if ef == shipped else ""
        print(
            f"efSearch {ef:4d}: recall@{args.k} {statistics.mean(found):.4f}, median {statistics.median(ms):.2f} ms{mark}"
        )
    print(
        f"rerun: .venv/bin/python eval/hnsw_recall.py --index-dir {args.index_dir} --questions {args.questions}"
    )


if __name__ == "__main__":
    main()
