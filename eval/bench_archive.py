"""Archive benchmarks: a build killed (SIGKILL) at given shares of its work and resumed, then
articles added and deleted; every step is `de06qa index` in its own process, as a user runs it.

    .venv/bin/python eval/bench_archive.py --news /tmp/ext/vn/corpus --articles 500 \\
        --vietnews ../shared/eval-data/vietnews_val.jsonl.gz --distractors 750 \\
        --kill-at 0.1,0.5,0.9 --change 250 --work /tmp/archive \\
        [--questions /tmp/ext/vn/questions.heldout.jsonl]

1. The `--articles` news articles alone are indexed (the index users read meanwhile).
2. The distractors are added and the build is killed once `--kill-at` shares of all articles are
   embedded, one kill per share; after each kill the index on disk still loads and still holds
   the old articles, and the next `de06qa index` reports how many articles it took over from
   the batches on disk (compared with what the killed run had finished: none redone).
3. `--change` more VietNews articles are added, then deleted again: seconds each.
4. With `--questions`, `de06qa eval` before step 3 and after it: answers that changed.

Prints each process's wall time and peak RSS (os.wait4), and the index's size on disk.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build import du

DE06QA = [sys.executable, "-m", "de06qa"]


def index(src: Path, idx: Path, kill_at: float | None = None, grand: int = 0) -> dict[str, object]:
    """`de06qa index SRC`; with `kill_at`, SIGKILL once that share of `grand` articles is embedded."""
    t = time.perf_counter()
    p = subprocess.Popen(
        [*DE06QA, "index", str(src), "--index-dir", str(idx)], stderr=subprocess.PIPE, text=True
    )
    assert p.stderr is not None
    resumed, killed, last = 0, False, ""
    for line in p.stderr:
        last = line.strip() or last
        if m := re.match(r"Going on from a stopped build: (\d+) of", line):
            resumed = int(m.group(1))
        m = re.match(r"embedded (\d+)/(\d+) articles", line)
        if kill_at is not None and m and resumed + int(m.group(1)) >= kill_at * grand:
            os.kill(p.pid, signal.SIGKILL)
            killed = True
            break
    _, status, usage = os.wait4(p.pid, 0)
    if not killed and status != 0:
        raise SystemExit(f"de06qa index failed: {last}")
    return {"seconds": time.perf_counter() - t, "rss_mb": usage.ru_maxrss / 1024, "resumed": resumed,
            "killed": killed, "last": last}  # fmt: skip


def finished(idx: Path) -> int:
    """Articles in the finished batches a stopped build left beside the index."""
    parts = idx.parent / f".{idx.name}.parts"
    return sum(len(json.loads(f.read_text())["docs"]) for f in parts.glob("*/part.json"))


def documents(idx: Path) -> int:
    from de06qa import store

    return len(store.load(idx).articles)


def eval_answers(idx: Path, questions: Path, out: Path) -> list[str]:
    subprocess.run(
        [*DE06QA, "eval", "--index-dir", str(idx), "--questions", str(questions), "--modes", "hybrid",
         "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return (out / "answers.jsonl").read_text(encoding="utf-8").splitlines()


def vietnews(path: Path, skip: int, n: int, into: Path) -> list[Path]:
    """Write VietNews articles skip..skip+n into `into` (headline line, then the text)."""
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for i, line in enumerate(lines):
            if i >= skip + n:
                break
            if i >= skip:
                a = json.loads(line)
                f = into / f"{a['id']}.txt"
                f.write_text(f"{a['title']}\n{a['text']}\n", encoding="utf-8")
                out.append(f)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--news", type=Path, default=Path("/tmp/ext/vn/corpus"))
    ap.add_argument("--articles", type=int, default=500)
    ap.add_argument("--vietnews", type=Path, default=Path("../shared/eval-data/vietnews_val.jsonl.gz"))
    ap.add_argument("--distractors", type=int, default=750)
    ap.add_argument("--kill-at", default="0.1,0.5,0.9")
    ap.add_argument("--change", type=int, default=250)
    ap.add_argument("--work", type=Path, default=Path("/tmp/archive"))
    ap.add_argument("--questions", type=Path, default=None)
    args = ap.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    src, idx = args.work / "corpus", args.work / "index"
    src.mkdir(parents=True)
    for f in sorted(args.news.glob("*.txt"))[: args.articles]:
        shutil.copy(f, src / f.name)
    print(f"# de06qa bench_archive  cores={os.cpu_count()}  work={args.work}", flush=True)
    r = index(src, idx)
    print(f"{args.articles} news articles alone: {r['seconds']:.0f} s, peak RSS {r['rss_mb']:.0f} MB")
    vietnews(args.vietnews, 0, args.distractors, src)
    grand = args.distractors  # what the next builds embed (the news articles are kept)
    print(f"+ {args.distractors} distractors, killed at {args.kill_at} of them:", flush=True)
    total, before_kill = 0.0, 0
    for share in [float(s) for s in args.kill_at.split(",")]:
        r = index(src, idx, share, grand)
        total += float(r["seconds"])  # type: ignore[arg-type]
        print(f"  killed at {share:.0%}: {r['seconds']:.0f} s, peak RSS {r['rss_mb']:.0f} MB; took over "
              f"{r['resumed']} articles of the {before_kill} the run before finished; {finished(idx)} "
              f"finished now; the index still has {documents(idx)} articles", flush=True)  # fmt: skip
        before_kill = finished(idx)
    r = index(src, idx)
    total += float(r["seconds"])  # type: ignore[arg-type]
    print(f"  resumed and finished: {r['seconds']:.0f} s, peak RSS {r['rss_mb']:.0f} MB; took over "
          f"{r['resumed']} articles of the {before_kill} the run before finished ({r['last']})")  # fmt: skip
    print(f"  all runs of this build: {total:.0f} s; index on disk {du(idx) / 1e6:,.1f} MB", flush=True)

    before = eval_answers(idx, args.questions, args.work / "before") if args.questions else []
    added = vietnews(args.vietnews, args.distractors, args.change, src)
    r = index(src, idx)
    print(f"adding {args.change} articles: {r['seconds']:.1f} s, peak RSS {r['rss_mb']:.0f} MB", flush=True)
    for f in added:
        f.unlink()
    r = index(src, idx)
    print(f"deleting them again: {r['seconds']:.1f} s, peak RSS {r['rss_mb']:.0f} MB", flush=True)
    if args.questions:
        after = eval_answers(idx, args.questions, args.work / "after")
        same = sum(a == b for a, b in zip(before, after))
        print(f"answers identical before the addition and after the deletion: {same} of {len(before)}")


if __name__ == "__main__":
    main()
