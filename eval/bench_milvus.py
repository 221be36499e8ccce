"""The Milvus backend at scale: insert/index time, hybrid candidate search and whole-search
latency with and without filters, and the memory of a serving replica, on up to 1M passages of
real Vietnamese news text.

    .venv/bin/python eval/bench_milvus.py [--passages 1000000] [--db /tmp/bench-milvus.db] [--runs 100]

Passages: the articles of ../shared/eval-data/vietnews_val.jsonl.gz cut into ~450-character
windows of whole sentences (repeated when more are asked for than the text gives), stored as de06qa
stores them (MilvusIndex: text, offsets, sentence spans and vectors, article metadata, both BM25
fields, term statistics). The folded field is exactly de06qa's (folded syllables and pairs); the
words field holds the lower-cased syllables (underthesea's word segmentation of a million passages
would take hours here and changes only which tokens are joined). Vectors are cheap synthetic ones
(random, normalised; the question's too): latency does not depend on their meaning. Provinces come
from each article's text (the gazetteer), dates are spread over 2019-2025.

A Milvus Lite server on 127.0.0.1 holds the data (one process; the clients reach it by HTTP).
Measured: insert + flush + load time; MilvusBackend.candidates (top 100 by BM25 of each field and
by inner product, every candidate's three scores, and the candidates' rows fetched for ranking)
p50/p95, question embedding excluded, with a province filter and a date range; Searcher.search
(candidates + ranking + answer) p50/p95 the same way; a `de06qa serve --backend milvus` replica
answering real questions (its own ONNX model): RSS before and after 200 questions. Beside it:
FAISS flat over the same vectors in this process and the memory it takes.
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


def private_mb(pid: int | str = "self") -> float:
    """Memory of the process alone: RSS less the file pages it maps (shared libraries, the
    model's weights), which the machine's page cache shares between processes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write(
    uri: str,
    n: int,
    base: list[str],
    owner: list[int],
    articles: list[str],
    provinces: list,
    dates: list,
    dense_index: str,
) -> None:  # type: ignore[type-arg]
    """Write an index named "bench" as `de06qa index --backend milvus` would, in batches."""
    from collections import Counter

    from de06qa import store
    from de06qa.backends.milvus import ChunkRow, MilvusIndex
    from de06qa.config import DEFAULT_MODEL
    from de06qa.documents import Article, Chunk, Span
    from de06qa.text import SEGMENTER, folded_terms

    dim = 384
    rng = np.random.default_rng(1)
    docs = [
        Article(
            f"news/{i}",
            f"news/{i}.txt",
            a.split("\n", 1)[0][:200],
            a,
            dates[i],
            tuple(provinces[i]),
            content_hash=str(i),
        )
        for i, a in enumerate(articles)
    ]
    # offsets of each base passage in its article (the windows were cut from it in order)
    pieces = []
    cursor: dict[int, int] = {}
    for text, o in zip(base, owner):
        sents = [s for s in _SENT.split(text) if s]
        pieces.append((sents, cursor.get(o, 0)))
        cursor[o] = cursor.get(o, 0) + len(text) + 1
    pool = rng.normal(size=(200_000, dim)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    index = MilvusIndex(uri, "bench")
    gen = index.new_generation(dim, dense_index)
    tokens = [(re.findall(r"\w+", text.lower()), folded_terms(text)) for text in base]
    df: Counter[str] = Counter()
    for _, folded in tokens:
        df.update(set(folded))
    written_docs: set[int] = set()
    batch = 20_000
    for lo in range(0, n, batch):
        rows = []
        for i in range(lo, min(lo + batch, n)):
            b = i % len(base)
            sents, start = pieces[b]
            spans, at = [], start
            for s in sents:
                spans.append(Span(at, at + len(s), s))
                at += len(s) + 1
            text = base[b]
            words, folded = tokens[b]
            chunk = Chunk(f"news/{owner[b]}#{i}", f"news/{owner[b]}", start, start + len(text), text,
                          tuple(words), tuple(folded), tuple(spans))  # fmt: skip
            vec = pool[rng.integers(0, len(pool), 1 + len(spans))]
            rows.append(ChunkRow(chunk, docs[owner[b]], words, folded, vec[0], vec[1:], 0.5))
        fresh = sorted({owner[r % len(base)] for r in range(lo, min(lo + batch, n))} - written_docs)
        written_docs.update(fresh)
        index.write(gen, rows, [docs[d] for d in fresh], new=True)
        print(f"  written {min(lo + batch, n):,}/{n:,}", flush=True)
    reps = n / len(base)
    index.add_terms(gen, Counter({t: max(1, round(c * reps)) for t, c in df.items()}), new=True)
    manifest = {
        "format_version": store.FORMAT_VERSION, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": {"model": DEFAULT_MODEL, "profile": "e5", "dim": dim, "segmenter": SEGMENTER, "runtime": "onnx-fp32"},
        "settings": {"chunk_chars": 450, "chunk_overlap": 1, "faiss_index": "flat"},
        "counts": {"documents": len(docs), "chunks": n, "sentences": 0},
        "stats": {"provinces": sorted({p for ps in provinces for p in ps}), "undated": 0},
        "milvus": {"uri": uri, "collection": "bench", "dense_index": dense_index},
    }  # fmt: skip
    index.publish(gen, manifest)
    index.retire({gen})
    index.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=1_000_000)
    ap.add_argument(
        "--db", default="/tmp/bench-milvus.db", help="Milvus Lite data file (served on 127.0.0.1)"
    )
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument(
        "--dense-index",
        default="AUTOINDEX",
        help="Milvus index of the vectors (Lite: AUTOINDEX, FLAT, IVF_FLAT)",
    )
    ap.add_argument("--reuse", action="store_true", help="search the index already at --db (no insert)")
    args = ap.parse_args()

    from milvus_lite.server import Server

    from de06qa.backends.milvus import MilvusBackend
    from de06qa.config import DEFAULT_MODEL, Settings
    from de06qa.embedding import E5
    from de06qa.filters import parse_filters
    from de06qa.ingest import article_provinces
    from de06qa.query import analyse
    from de06qa.search import Searcher

    port = free_port()
    server = Server(args.db, address=f"127.0.0.1:{port}")
    assert server.start()
    uri = f"http://127.0.0.1:{port}"
    time.sleep(3)
    try:
        t = time.perf_counter()
        base, owner, articles = passages(args.passages)
        provinces = [article_provinces(a) for a in articles]
        n = args.passages
        print(f"# de06qa milvus bench  cores={os.cpu_count()} passages={n:,} (from {len(base):,} real ones, "
              f"{len(articles):,} articles) db={args.db} dense index={args.dense_index}", flush=True)  # fmt: skip
        dates = [f"{2019 + i % 7}-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(len(articles))]
        t = time.perf_counter()
        if not args.reuse:
            write(uri, n, base, owner, articles, provinces, dates, args.dense_index)
            print(f"insert + flush + load of {n:,} passages: {time.perf_counter() - t:.0f} s", flush=True)
        else:  # load the collections again (and name the dense index in the pointer)
            from de06qa.backends.milvus import MilvusIndex

            index = MilvusIndex(uri, "bench")
            current = index.current()
            assert current is not None, f"no bench index in {args.db}"
            manifest = current["manifest"]
            manifest["milvus"] = {"uri": uri, "collection": "bench", "dense_index": args.dense_index}
            index.publish(current["generation"], manifest)
            index.close()
        backend = MilvusBackend(uri, "bench")
        print(
            f"opened (loaded) in {time.perf_counter() - t:.0f} s; Lite server RSS {rss_mb(server._p.pid) if hasattr(server, '_p') else float('nan'):.0f} MB",
            flush=True,
        )
        dim = 384
        rng = np.random.default_rng(0)
        squad = json.loads(
            (ROOT.parent / "shared" / "eval-data" / "vinewsqa_dev.json").read_text(encoding="utf-8")
        )
        questions = [q["question"] for doc in squad["data"] for p in doc["paragraphs"] for q in p["qas"]]
        asked = questions[: args.runs]
        qvecs = rng.normal(size=(len(asked), dim)).astype(np.float32)
        qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
        queries = [analyse(q, qvecs[i]) for i, q in enumerate(asked)]

        class Vectors:
            """The question vectors above, in the place of the model (embedding is not measured)."""

            model_id, profile, runtime, dim = DEFAULT_MODEL, E5, "onnx-fp32", 384

            def embed_queries(self, texts: list[str]) -> np.ndarray:
                return qvecs[[asked.index(t) for t in texts]]

        searcher = Searcher(backend, Vectors(), Settings(backend="milvus"))  # type: ignore[arg-type]
        top_province = max(
            set(p for ps in provinces for p in ps), key=lambda p: sum(p in ps for ps in provinces)
        )
        for label, f in (
            ("no filter", None),
            (f"province={top_province}", parse_filters([top_province])),
            ("since=2024-01-01", parse_filters((), "2024-01-01")),
        ):
            backend.candidates(queries[0], 100, f)
            xs, ys = [], []
            for q in queries:
                t = time.perf_counter()
                backend.candidates(q, 100, f)
                xs.append((time.perf_counter() - t) * 1000)
            for q in asked:
                t = time.perf_counter()
                searcher.search(q, 5, filters=f)
                ys.append((time.perf_counter() - t) * 1000)
            print(f"hybrid candidates, {label:24s} (ms) {stats(xs)}", flush=True)
            print(f"whole search,      {label:24s} (ms) {stats(ys)}", flush=True)

        # A serving replica: its own process, the real model, real questions over HTTP.
        import subprocess
        import urllib.request
        from urllib.parse import quote

        sport = free_port()
        exe = str(Path(sys.executable).with_name("de06qa"))
        env = {
            **os.environ,
            "DE06QA_BACKEND": "milvus",
            "DE06QA_MILVUS_URI": uri,
            "DE06QA_COLLECTION": "bench",
        }
        proc = subprocess.Popen([exe, "serve", "--port", str(sport), "--host", "127.0.0.1"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.time() + 300
            while time.time() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{sport}/health", timeout=5)
                    break
                except Exception:
                    time.sleep(1)
            before = rss_mb(proc.pid)
            lat = []
            for q in questions[1000:1200]:
                t = time.perf_counter()
                urllib.request.urlopen(f"http://127.0.0.1:{sport}/search?q={quote(q)}", timeout=60).read()
                lat.append((time.perf_counter() - t) * 1000)
            print(f"replica `de06qa serve --backend milvus`: RSS {before:.0f} MB after start, "
                  f"{rss_mb(proc.pid):.0f} MB (private {private_mb(proc.pid):.0f} MB) after 200 questions; "
                  f"/search incl. embedding (ms) {stats(lat)}", flush=True)  # fmt: skip
        finally:
            proc.terminate()
            proc.wait()
    finally:
        server.stop()

    import faiss

    vectors = rng.normal(size=(n, dim)).astype(np.float32)
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
        f"rerun: {sys.executable} eval/bench_milvus.py --passages {args.passages} --db {args.db} --runs {args.runs} --dense-index {args.dense_index}"
    )


if __name__ == "__main__":
    main()
