"""How search scales with the corpus, and what HNSW buys: prints a table, writes a PNG plot.

    .venv/bin/python eval/bench_scaling.py [--sizes 1000,10000,100000] [--runs 40]

Two measurements:
1. HNSW recall@10 against exact (flat) search on *real* e5 embeddings: ~2,500 passages cut from
   the seeds (sentences, sentence pairs, 8-word windows), queried with the 101 questions of
   eval/questions.jsonl.
2. A synthetic corpus of N chunks (1k, 10k, 100k): the seeds' real chunks replicated into N chunks
   (same words, so BM25 does real work), each with a vector made from real chunk vectors mixed and
   perturbed (so the vectors keep e5's distribution). For each N: whole-search latency p50/p95 with
   its breakdown, flat vs HNSW dense latency and recall@10, index size on disk, memory of the
   loaded index.
Thread settings come from the environment (OMP_NUM_THREADS) before start.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))
from bench import stats  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def recall_at_10(exact: list[list[tuple[int, float]]], approx: list[list[tuple[int, float]]]) -> float:
    return statistics.mean(
        len({i for i, _ in a} & {i for i, _ in e}) / max(len(e), 1) for a, e in zip(approx, exact)
    )


def dense_latency(index, qvecs: np.ndarray, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(runs):
        t = time.perf_counter()
        index.search(qvecs[i % len(qvecs)][None, :], 10)
        out.append((time.perf_counter() - t) * 1000)
    return out


def real_passages(articles) -> list[str]:  # type: ignore[no-untyped-def]
    from de06qa.text import sentences

    texts = []
    for a in articles:
        sents = [s.text for s in sentences(a.text)]
        texts += sents + [f"{x} {y}" for x, y in zip(sents, sents[1:])]
        w = a.text.split()
        texts += [" ".join(w[i : i + 8]) for i in range(0, max(len(w) - 8, 1), 3)]
    return list(dict.fromkeys(texts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--plot", default=str(ROOT / "eval" / "scaling.png"))
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]

    from de06qa import store
    from de06qa.backends.embedded import EmbeddedBackend
    from de06qa.config import Settings
    from de06qa.dense import DenseIndex
    from de06qa.embedding import create_embedder
    from de06qa.evaluation import load_questions
    from de06qa.filters import parse_filters
    from de06qa.indexing import build_index, context_terms
    from de06qa.lexical import LexicalIndex
    from de06qa.search import Searcher

    tmp = Path(tempfile.mkdtemp())
    settings = Settings.from_env().with_(index_dir=tmp / "seeds")
    emb = create_embedder(settings)
    build_index(settings, ROOT / "seeds", emb)
    seeds = store.load(settings.index_dir)
    queries = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl")]
    qvecs = emb.embed_queries(queries)
    print(f"# de06qa scaling bench  OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '<unset>')}")

    # 1. HNSW vs flat on real embeddings.
    texts = real_passages(seeds.articles.values())
    t = time.perf_counter()
    real = emb.embed_passages(texts)
    print(f"real passages embedded: {len(real)} in {time.perf_counter() - t:.1f} s")
    flat, hnsw = DenseIndex.build(real, "flat"), DenseIndex.build(real, "hnsw")
    rec = recall_at_10(flat.search(qvecs, 10), hnsw.search(qvecs, 10))
    print(f"real embeddings (n={len(real)}): HNSW recall@10 vs flat = {rec:.4f}; "
          f"flat {stats(dense_latency(flat, qvecs, args.runs))}; hnsw {stats(dense_latency(hnsw, qvecs, args.runs))}")  # fmt: skip

    # 2. Synthetic corpora.
    rng = np.random.default_rng(0)
    base_vecs = seeds.dense.vectors()
    rows = []
    for n in sizes:
        reps = -(-n // len(seeds.chunks))
        articles, chunks = {}, []
        for r in range(reps):
            for a in seeds.articles.values():
                articles[f"{a.doc_id}~{r}"] = replace(a, doc_id=f"{a.doc_id}~{r}")
            chunks += [
                replace(c, chunk_id=f"{c.doc_id}~{r}#{i}", doc_id=f"{c.doc_id}~{r}")
                for i, c in enumerate(seeds.chunks)
            ]
        chunks = chunks[:n]
        a_idx, b_idx = rng.integers(0, len(base_vecs), n), rng.integers(0, len(base_vecs), n)
        mix = base_vecs[a_idx] + rng.uniform(0.2, 0.6, (n, 1)).astype(np.float32) * base_vecs[b_idx]
        mix += rng.normal(0, 0.01, mix.shape).astype(np.float32)
        vecs = (mix / np.linalg.norm(mix, axis=1, keepdims=True)).astype(np.float32)
        keep = {c.doc_id for c in chunks}
        articles = {d: a for d, a in articles.items() if d in keep}
        sent_docs = [f"{d}~{r}" for r in range(reps) for d in seeds.sentence_docs if f"{d}~{r}" in keep]
        sents = [
            s for r in range(reps) for s, d in zip(seeds.sentences, seeds.sentence_docs) if f"{d}~{r}" in keep
        ]
        svecs = np.tile(seeds.sentence_vectors, (reps, 1))[: len(sents)]
        ctx = {d: context_terms(a) for d, a in articles.items()}
        t = time.perf_counter()
        lexical = LexicalIndex.build([list(c.words) + ctx[c.doc_id][0] for c in chunks],
                                     [list(c.folded) + ctx[c.doc_id][1] for c in chunks])  # fmt: skip
        flat = DenseIndex.build(vecs, "flat")
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        hnsw = DenseIndex.build(vecs, "hnsw")
        hnsw_s = time.perf_counter() - t
        rec = recall_at_10(flat.search(qvecs, 10), hnsw.search(qvecs, 10))
        fl, hn = dense_latency(flat, qvecs, args.runs), dense_latency(hnsw, qvecs, args.runs)
        manifest = {
            **seeds.manifest,
            "counts": {"documents": len(articles), "chunks": n, "sentences": len(sents)},
        }
        folder = tmp / f"n{n}"
        store.save(
            store.IndexData(manifest, articles, chunks, sents, sent_docs, svecs, flat, lexical), folder
        )
        size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
        # Memory of the index as a server holds it: loaded from disk into a searcher.
        del articles, chunks, sents, sent_docs, svecs, flat, hnsw, lexical, vecs, mix, ctx
        gc.collect()
        rss0 = rss_mb()
        t = time.perf_counter()
        searcher = Searcher(EmbeddedBackend.open(folder), emb, settings)
        load_s = time.perf_counter() - t
        mem = rss_mb() - rss0
        parts: dict[str, list[float]] = {}
        for i in range(args.runs):
            res = searcher.search(queries[i % len(queries)])
            for k, v in res.timings_ms.items():
                parts.setdefault(k, []).append(v)
        # Filters apply before ranking: a province (a fifth of the corpus here) and a year.
        filtered: dict[str, list[float]] = {}
        for label, f in (
            ("province", parse_filters(["Hà Giang"])),
            ("2024, by date", parse_filters((), "2024", "2024")),
        ):
            for i in range(args.runs):
                res = searcher.search(
                    queries[i % len(queries)], filters=f, sort="date" if "date" in label else "relevance"
                )
                filtered.setdefault(label, []).append(res.timings_ms["total"] - res.timings_ms["embed"])
        print(f"n={n:>7}: filtered search without embedding (ms): "
              + "; ".join(f"{k} {stats(v)}" for k, v in filtered.items()), flush=True)  # fmt: skip
        row = {
            "n": n, "total": parts["total"], "embed": parts["embed"], "retrieve": parts["retrieve"],
            "answer": parts["answer"], "rank": parts["rank"], "flat": fl, "hnsw": hn, "recall": rec,
            "size": size_mb, "mem": mem, "build": build_s, "hnsw_build": hnsw_s, "load": load_s,
        }  # fmt: skip
        rows.append(row)
        print(f"n={n:>7}: search {stats(parts['total'])} | candidates p50 {statistics.median(parts['retrieve']):.2f} "
              f"ranking {statistics.median(parts['rank']):.2f} answer {statistics.median(parts['answer']):.2f} ms | "
              f"dense flat p50 {statistics.median(fl):.3f} ms, hnsw p50 {statistics.median(hn):.3f} ms, "
              f"recall@10 {rec:.4f} | disk {size_mb:.0f} MB, memory +{mem:.0f} MB | "
              f"build lexical+flat {build_s:.1f} s, hnsw {hnsw_s:.1f} s, load {load_s:.1f} s", flush=True)  # fmt: skip
        del searcher

    print(
        "\n| chunks | search p50 / p95 (ms) | candidates+features p50 | ranking p50 | flat p50 | HNSW p50 | HNSW recall@10 | disk | memory |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        p95 = sorted(r["total"])[int(0.95 * (len(r["total"]) - 1))]
        print(f"| {r['n']:,} | {statistics.median(r['total']):.1f} / {p95:.1f} | {statistics.median(r['retrieve']):.2f} | "
              f"{statistics.median(r['rank']):.2f} | {statistics.median(r['flat']):.3f} | {statistics.median(r['hnsw']):.3f} | "
              f"{r['recall']:.4f} | {r['size']:.0f} MB | +{r['mem']:.0f} MB |")  # fmt: skip
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install -e '.[dev]')")
    else:
        ns = [r["n"] for r in rows]
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for key, label in (("total", "whole search"), ("embed", "query embedding"), ("retrieve", "candidates + features"),
                           ("rank", "ranking"), ("flat", "FAISS flat"), ("hnsw", "FAISS HNSW")):  # fmt: skip
            ax.plot(ns, [statistics.median(r[key]) for r in rows], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("chunks in the index")
        ax.set_ylabel("median latency per query (ms)")
        ax.set_title("de06qa search latency vs corpus size (2 cores, CPU)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")
    print(
        f"rerun: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '<unset>')} {sys.executable} eval/bench_scaling.py --sizes {args.sizes} --runs {args.runs}"
    )


if __name__ == "__main__":
    main()
