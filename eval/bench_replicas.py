"""Two `de06qa serve` processes answering from one Milvus server, under 8 concurrent clients.

    .venv/bin/python eval/bench_replicas.py [--requests 400] [--clients 8] [--db FILE --collection NAME]

Starts a Milvus Lite server on 127.0.0.1, indexes the seeds into it (--backend milvus) or serves an
index already in --db (e.g. eval/bench_milvus.py's million passages, --collection bench), starts two
API replicas on 127.0.0.1 (stateless: both read the same collections, nothing else), and sends
the seeds' questions from 8 client threads, alternating between the replicas. Prints latency
p50/p95, throughput and each replica's memory (RSS, and the part of it that is private to the
process); everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))
from bench import stats  # noqa: E402
from bench_milvus import private_mb, rss_mb  # noqa: E402

EXE = str(Path(sys.executable).with_name("de06qa"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--db", help="a Milvus Lite file that already holds the index (default: index the seeds)")
    ap.add_argument("--collection", default="de06qa")
    args = ap.parse_args()
    from milvus_lite.server import Server

    from de06qa.evaluation import load_questions

    tmp = Path(tempfile.mkdtemp())
    port = free_port()
    server = Server(args.db or str(tmp / "milvus.db"), address=f"127.0.0.1:{port}")
    assert server.start()
    uri = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DE06QA_INDEX_DIR": str(tmp / "index"),
        "DE06QA_BACKEND": "milvus",
        "DE06QA_MILVUS_URI": uri,
        "DE06QA_COLLECTION": args.collection,
    }
    replicas = []
    try:
        time.sleep(2)
        if not args.db:
            subprocess.run([EXE, "index", str(ROOT / "seeds")], env=env, check=True, capture_output=True)
        bases = []
        for _ in range(2):
            p = free_port()
            replicas.append(
                subprocess.Popen(
                    [EXE, "serve", "--port", str(p)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            bases.append(f"http://127.0.0.1:{p}")
        for base in bases:
            for _ in range(3000):
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        questions = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl")]
        latencies: list[float] = []
        lock = threading.Lock()
        per_client = args.requests // args.clients

        def client(i: int) -> None:
            with httpx.Client(timeout=60) as c:
                for j in range(per_client):
                    base = bases[(i + j) % 2]
                    t = time.perf_counter()
                    r = c.get(
                        base + "/search", params={"q": questions[(i * per_client + j) % len(questions)]}
                    )
                    ms = (time.perf_counter() - t) * 1000
                    assert r.status_code == 200, r.text
                    with lock:
                        latencies.append(ms)

        t = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        print(
            f"# 2 replicas, 1 Milvus Lite server, {args.clients} clients, {len(latencies)} requests, cores={os.cpu_count()}"
        )
        print(f"/search latency (ms) {stats(latencies)}; throughput {len(latencies) / wall:.1f} req/s")
        for n, r in enumerate(replicas):
            print(f"replica {n + 1} RSS {rss_mb(r.pid):.0f} MB, private {private_mb(r.pid):.0f} MB")
        print(f"median {statistics.median(latencies):.1f} ms")
        print(
            f"rerun: {sys.executable} eval/bench_replicas.py --requests {args.requests} --clients {args.clients}"
            + (f" --db {args.db} --collection {args.collection}" if args.db else "")
        )
    finally:
        for r in replicas:
            r.terminate()
            r.wait(timeout=20)
        server.stop()


if __name__ == "__main__":
    main()
