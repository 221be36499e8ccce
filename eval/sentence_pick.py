"""What choosing the answer sentence costs: each answerable question's first READ_SENTENCES
sentences (the selector's order, as `search.answers.Answerer.read` ranks them: fit_reader's
`selector_first`) are all read, and the span F1 of the product's pick (selector probability x
reader probability) is set beside the best of them (the oracle) and beside picks fitted on
training questions.

    D=/tmp/ext   # the indexed sets of eval/fit_ranker.py's docstring (and vqt, vnt: fit_reader.py)
    .venv/bin/python eval/sentence_pick.py collect --index $D/vqt/index \
        --questions $D/vqt/questions.jsonl --out /tmp/pick/vqt.npz --limit 2500
    # ... the same for vnt (all), vn (questions.heldout.jsonl), vqd, xq (q.en.jsonl), seeds-index
    .venv/bin/python eval/sentence_pick.py fit --train /tmp/pick/vqt.npz /tmp/pick/vnt.npz \
        --test /tmp/pick/vn.npz /tmp/pick/vqd.npz /tmp/pick/xqen.npz /tmp/pick/seeds.npz

A fitted pick scores w . (log selector probability, log reader probability, span logits / 10),
the weights maximising the expected F1 of a softmax over the candidates (Nelder-Mead: three
weights). Results: eval/RESULTS.md, "Answers".
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from de06qa.config import Settings
from de06qa.evaluation import _span_scores, load_questions
from de06qa.reader import Text
from de06qa.search import READ_SENTENCES, open_searcher
from de06qa.search.answers import _answer_span

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_reader import selector_first

# per candidate: selector probability, reader's "answers" logit, span logits, read (0/1)
FEATURES = 4
PICKS = {"product": [0, 1], "+ span": [0, 1, 2]}


def collect(args: argparse.Namespace) -> None:
    s = open_searcher(replace(Settings.from_env(), index_dir=args.index))
    qs = [q for q in load_questions(args.questions) if q.answerable]
    if args.limit:
        random.Random(7).shuffle(qs)
        qs = qs[: args.limit]
    feats = np.zeros((len(qs), READ_SENTENCES, FEATURES), np.float32)
    f1 = np.zeros((len(qs), READ_SENTENCES), np.float32)
    t0 = time.perf_counter()
    for n in range(0, len(qs), 32):
        part = qs[n : n + 32]
        for i, (q, query) in enumerate(zip(part, s.analyse([q.question for q in part]), strict=True), n):
            first = selector_first(s, query, s.settings.k, "lexical")
            texts = [Text(sent.text, sent.start) for sent, _, _ in first]
            for m, ((sent, p, prob), f) in enumerate(zip(first, s.reader.read([(query.marked, texts)])[0])):
                if f is not None:
                    feats[i, m] = (prob, f.answers, f.span, 1)
                    f1[i, m] = _span_scores(_answer_span(sent, p, f).text, q.answers)[1]
    np.savez(args.out, features=feats, f1=f1)
    print(f"{len(qs)} questions in {time.perf_counter() - t0:.0f} s -> {args.out}")


def _load(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    got = [np.load(p) for p in paths]
    feats = np.concatenate([g["features"] for g in got])
    x = np.stack(
        [np.log(np.clip(feats[..., 0], 1e-6, 1)), -np.logaddexp(0, -feats[..., 1]), feats[..., 2] / 10], -1
    )
    return x, feats[..., 3] > 0, np.concatenate([g["f1"] for g in got])


def _picked_f1(w: np.ndarray, x: np.ndarray, read: np.ndarray, f1: np.ndarray) -> float:
    pick = np.where(read, x @ w, -np.inf).argmax(1)
    return float(f1[np.arange(len(pick)), pick].mean())


def _fitted(x: np.ndarray, read: np.ndarray, f1: np.ndarray, cols: list[int]) -> np.ndarray:
    from scipy.optimize import minimize

    def loss(v: np.ndarray) -> float:
        s = np.where(read, x[..., cols] @ v, -1e9)
        p = np.exp(s - s.max(1, keepdims=True))
        return float(-((p / p.sum(1, keepdims=True)) * f1).sum(1).mean() + 1e-3 * (v**2).sum())

    w = np.zeros(x.shape[-1])
    w[cols] = minimize(loss, np.ones(len(cols)), method="Nelder-Mead", options={"maxiter": 4000}).x
    return w


def fit(args: argparse.Namespace) -> None:
    x, read, f1 = _load(args.train)
    weights = {"product": np.array([1.0, 1.0, 0.0])}
    weights |= {f"fitted {name}": _fitted(x, read, f1, cols) for name, cols in PICKS.items()}
    for name, w in weights.items():
        print(f"{name}: weights {np.round(w, 3).tolist()}")
    for path in [*args.train, *args.test]:
        x, read, f1 = _load([path])
        row = " | ".join(f"{name} {_picked_f1(w, x, read, f1):.4f}" for name, w in weights.items())
        print(
            f"{path.stem} ({len(f1)} q): {row} | first {f1[:, 0].mean():.4f} | oracle {f1.max(1).mean():.4f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--index", type=Path, required=True)
    c.add_argument("--questions", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--limit", type=int, default=0, help="a seeded sample of this many questions")
    f = sub.add_parser("fit")
    f.add_argument("--train", type=Path, nargs="+", required=True)
    f.add_argument("--test", type=Path, nargs="+", default=[])
    args = p.parse_args()
    collect(args) if args.cmd == "collect" else fit(args)


if __name__ == "__main__":
    main()
