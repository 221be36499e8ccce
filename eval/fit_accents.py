"""Fit the accent model: how often each Vietnamese syllable and each pair of adjacent syllables
occurs (lower case, tone marks placed old-style), from general news and the training questions.
`de06qa.accents` gives a question typed without marks its likeliest marks from these counts and
the indexed collection's own.

    .venv/bin/python eval/fit_accents.py --data ../shared/eval-data
    # writes src/de06qa/models/accents-v1.npz; then, on held-out questions, the share of
    # syllables given back their marks exactly (folded questions restored against the originals):
    .venv/bin/python eval/fit_accents.py score --data ../shared/eval-data
    # end to end: a question file with its questions' marks stripped, asked with and without
    # restoring them (DE06QA_RESTORE_MARKS=0), e.g. over the held-out sets eval/fit_ranker.py prepares
    .venv/bin/python eval/fit_accents.py fold --questions $D/vqd/questions.jsonl --out $D/vqd/q.folded.jsonl
    .venv/bin/de06qa eval --index-dir $D/vqd/index --questions $D/vqd/q.folded.jsonl --modes hybrid --out …

Text (../shared/eval-data, its README): vietnews_val.jsonl.gz (22,642 general news articles) and
the questions and paragraphs of the training sets (viquad_train.json, vinewsqa_train2000.json,
vi_squad2_mailong25.json): the news give the vocabulary, the questions the question words
("bao nhiêu", "mấy", "là ai"). Held out: viquad_dev.json and vinewsqa_dev.json, never read here
but by `score`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from de06qa.accents import ACCENTS_FILE, syllables, with_marks, write_counts
from de06qa.text import fold

TRAIN_SQUAD = ("viquad_train.json", "vinewsqa_train2000.json", "vi_squad2_mailong25.json")
HELD_OUT = ("viquad_dev.json", "vinewsqa_dev.json")
MIN_PAIR = 2  # pairs seen once are mostly names and typos; dropping them keeps the file small


def squad_texts(path: Path, contexts: bool = True) -> Iterator[str]:
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            if contexts:
                yield para["context"]
            for qa in para["qas"]:
                yield qa["question"]


def texts(data: Path) -> Iterator[str]:
    with gzip.open(data / "vietnews_val.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            yield row["title"]
            yield row["text"]
    for name in TRAIN_SQUAD:
        yield from squad_texts(data / name)


def fit(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    one: Counter[str] = Counter()
    two: Counter[tuple[str, str]] = Counter()
    for text in texts(args.data):
        for run in syllables(text):
            one.update(run)
            two.update(zip(run, run[1:]))
    pairs = {p: n for p, n in two.items() if n >= MIN_PAIR}
    out = args.out or Path(__file__).resolve().parents[1] / "src" / "de06qa" / "models" / ACCENTS_FILE
    write_counts(out, dict(one), pairs)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {len(one):,} syllables, {len(pairs):,} pairs "
        f"(of {len(two):,}) in {time.perf_counter() - t0:.0f} s"
    )


def score(args: argparse.Namespace) -> None:
    """Held-out questions folded, restored, compared syllable by syllable with what was typed."""
    for name in HELD_OUT:
        right = total = whole = n = 0
        for q in squad_texts(args.data / name, contexts=False):
            restored = with_marks(fold(q))  # as the product reads it
            want = [s for run in syllables(q) for s in run]
            got = [s for run in syllables(restored) for s in run]
            if len(want) != len(got):
                continue
            ok = sum(a == b for a, b in zip(want, got))
            right, total, whole, n = right + ok, total + len(want), whole + (ok == len(want)), n + 1
        print(
            f"{name}: {n} questions, syllables with their marks {right / total:.3f}, whole questions {whole / n:.3f}"
        )


def fold_questions(args: argparse.Namespace) -> None:
    """A question file (eval/README.md's format) with every question's marks stripped."""
    rows = [
        json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    args.out.write_text(
        "".join(json.dumps({**r, "question": fold(r["question"])}, ensure_ascii=False) + "\n" for r in rows),
        encoding="utf-8",
    )
    print(f"wrote {args.out}: {len(rows)} questions without marks")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", nargs="?", default="fit", choices=("fit", "score", "fold"))
    p.add_argument("--data", type=Path, help="fit, score: the eval-data folder")
    p.add_argument("--questions", type=Path, help="fold: the question file")
    p.add_argument("--out", type=Path, default=None, help="fit: default the package's models/ file")
    args = p.parse_args()
    need = {"fit": ("data",), "score": ("data",), "fold": ("questions", "out")}[args.cmd]
    if missing := [n for n in need if getattr(args, n) is None]:
        p.error(f"{args.cmd} needs --{' --'.join(missing)}")
    {"fit": fit, "score": score, "fold": fold_questions}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
