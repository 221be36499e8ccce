"""The Milvus backend at scale: insert/index time and hybrid candidate search latency, with and
without filters, on up to 1M passages of real Vietnamese news text.

    .venv/bin/python eval/bench_milvus.py [--passages 1000000] [--uri /tmp/bench-milvus.db] [--runs 100]

Passages: the articles of ../shared/eval-data/vietnews_val.jsonl.gz cut into ~450-character
windows of whole sentences (repeated when more are asked for than the text gives). Both BM25 fields
hold real tokens: the folded field exactly as de06qa indexes it (folded syllables and pairs); the
words field holds the lower-cased syllables (underthesea's word segmentation of a million passages
would take hours here and changes only which tokens are joined). Vectors are cheap synthetic ones
(random, normalised; the question's too): latency does not depend on their meaning. Provinces come
from each article's text (the gazetteer), dates are spread over 2019-2025.

Measured: insert + flush + index load time, and MilvusBackend.candidates (top 100 by BM25 of each
field and by inner product, then every candidate's three scores) p50/p95, question embedding
excluded; with a province filter and with a date range. Beside it: FAISS flat over the same
vectors in this process (the embedded backend's dense search) and the memory it takes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))
from bench import stats  # noqa: E402

NEWS = ROOT.parent / "shared" / "eval-data" / "vietnews_val.jsonl.gz"
_SENT = re.compile(r"(?<=[.!?])\s+")


def passages(limit: int) -> tuple[list[str], list[int], list[str]]:
    """Passage texts, their article number, and the articles' texts."""
    texts: list[str] = []
    owner: list[int] = []
    articles: list[str] = []
    with gzip.open(NEWS, "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            body = f"{doc.get('title', '')}\n{doc.get('text', '')}"
            articles.append(body)
            window = ""
            for sent in (s for para in body.split("\n") for s in _SENT.split(para) if s.strip()):
                if window and len(window) + len(sent) > 450:
                    texts.append(window)
                    owner.append(len(articles) - 1)
                    window = ""
                window = f"{window} {sent}".strip()
            if window:
                texts.append(window)
                owner.append(len(articles) - 1)
            if len(texts) >= limit:
                break
    return texts, owner, articles


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=1_000_000)
    ap.add_argument("--uri", default="/tmp/bench-milvus.db")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument(
        "--dense-index",
        default="AUTOINDEX",
        help="Milvus index of the vectors (Lite: AUTOINDEX, FLAT, IVF_FLAT)",
    )
    ap.add_argument("--reuse", action="store_true", help="search the newest bench collection at --uri (no insert)")
    args = ap.parse_args()

    from de06qa.backends.milvus import MilvusBackend, write_collection
    from de06qa.filters import parse_filters
    from de06qa.ingest import article_provinces
    from de06qa.query import analyse
    from de06qa.text import fold, folded_terms

    t = time.perf_counter()
    base, owner, articles = passages(args.passages)
    provinces = [article_provinces(a) for a in articles]
    reps = -(-args.passages // len(base))
    n = min(args.passages, len(base) * reps)
    print(f"# de06qa milvus bench  cores={os.cpu_count()} passages={n:,} (from {len(base):,} real ones, "
          f"{len(articles):,} articles) uri={args.uri} dense index={args.dense_index}", flush=True)  # fmt: skip
    folded = [folded_terms(x) for x in base]
    words = [re.findall(r"\w+", x.lower()) for x in base]
    print(f"tokens for {len(base):,} passages: {time.perf_counter() - t:.1f} s", flush=True)
    rng = np.random.default_rng(0)
    dim = 384
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    dates = [f"{2019 + i % 7}-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(len(articles))]
    idx = [i % len(base) for i in range(n)]
    t = time.perf_counter()
    if args.reuse:
        from pymilvus import MilvusClient

        client = MilvusClient(args.uri)
        collection = max(c for c in client.list_collections() if c.startswith("bench_"))
        client.load_collection(collection)
        print(f"reusing {collection} (loaded in {time.perf_counter() - t:.0f} s)", flush=True)
    else:
        collection = write_collection(
            args.uri, "bench", [words[i] for i in idx], [folded[i] for i in idx], vectors,
            [provinces[owner[i]] for i in idx], [dates[owner[i]] for i in idx], dense_index=args.dense_index,
        )  # fmt: skip
        print(f"insert + flush + load of {n:,} passages: {time.perf_counter() - t:.0f} s", flush=True)

    backend = MilvusBackend(args.uri, collection, None)  # type: ignore[arg-type]  # idf is not measured
    squad = json.loads(
        (ROOT.parent / "shared" / "eval-data" / "vinewsqa_dev.json").read_text(encoding="utf-8")
    )
    questions = [q["question"] for doc in squad["data"] for p in doc["paragraphs"] for q in p["qas"]][
        : args.runs
    ]
    qvecs = rng.normal(size=(len(questions), dim)).astype(np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    queries = [analyse(q, qvecs[i]) for i, q in enumerate(questions)]
    top_province = max(set(p for ps in provinces for p in ps), key=lambda p: sum(p in ps for ps in provinces))
    for label, f in (
        ("no filter", None),
        (f"province={top_province}", parse_filters([top_province])),
        ("since=2024-01-01", parse_filters((), "2024-01-01")),
    ):
        backend.candidates(queries[0], 100, f)
        xs = []
        for q in queries:
            t = time.perf_counter()
            backend.candidates(q, 100, f)
            xs.append((time.perf_counter() - t) * 1000)
        print(f"hybrid candidates, {label:24s} (ms) {stats(xs)}", flush=True)
    print(
        f"this process (client) RSS {rss_mb():.0f} MB; folded terms of a question e.g. {fold(questions[0])!r}"
    )

    import faiss

    rss0 = rss_mb()
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    print(f"FAISS flat in process: +{rss_mb() - rss0:.0f} MB", flush=True)
    xs = []
    for q in qvecs:
        t = time.perf_counter()
        flat.search(q[None, :], 100)
        xs.append((time.perf_counter() - t) * 1000)
    print(f"FAISS flat top-100 (ms)                  {stats(xs)}")
    print(
        f"rerun: {sys.executable} eval/bench_milvus.py --passages {args.passages} --uri {args.uri} --runs {args.runs} --dense-index {args.dense_index}"
    )


if __name__ == "__main__":
    main()
