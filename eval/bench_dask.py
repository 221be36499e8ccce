"""Build throughput with embedding spread over Dask workers (LocalCluster on 127.0.0.1).

    .venv/bin/python eval/bench_dask.py [--workers 1,2] [--passages 2000] [--runs 3]

Passages are the seeds' chunks (as the index embeds them), repeated to --passages. For each worker
count: passages embedded per second, median and p95 of --runs runs, after a warm-up run that loads
the model in every worker (cluster start and model load are reported apart). The local line is the
same embedding in this process, without Dask.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))
from bench import stats  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from de06qa.chunking import chunk_articles
    from de06qa.config import Settings
    from de06qa.distributed import cluster_embedder
    from de06qa.embedding import create_embedder
    from de06qa.indexing import passage_text
    from de06qa.ingest import read_folder

    settings = Settings.from_env()
    arts, _ = read_folder(ROOT / "seeds")
    by_id = {a.doc_id: a for a in arts}
    base = [passage_text(by_id[c.doc_id], c) for c in chunk_articles(arts)]
    texts = (base * (args.passages // len(base) + 1))[: args.passages]
    print(f"# de06qa dask bench  cores={os.cpu_count()} passages={len(texts)} precision={settings.precision}")
    local = create_embedder(settings)
    local.embed_passages(texts[:64])

    def rate(embed) -> list[float]:  # type: ignore[no-untyped-def]
        out = []
        for _ in range(args.runs):
            t = time.perf_counter()
            embed(texts)
            out.append(len(texts) / (time.perf_counter() - t))
        return out

    print(f"local, no Dask        passages/s {stats(rate(local.embed_passages))}")
    for n in (int(x) for x in args.workers.split(",")):
        t = time.perf_counter()
        with cluster_embedder(local, settings, workers=n) as spread:
            started = time.perf_counter() - t
            t = time.perf_counter()
            spread.embed_passages(texts[: 256 * n])  # every worker loads the model
            warm = time.perf_counter() - t
            print(f"{n} worker(s)           passages/s {stats(rate(spread.embed_passages))}   "
                  f"(cluster start {started:.1f} s, model load in workers {warm:.1f} s)", flush=True)  # fmt: skip
    print(
        f"rerun: {sys.executable} eval/bench_dask.py --workers {args.workers} --passages {args.passages} --runs {args.runs}"
    )


if __name__ == "__main__":
    main()
