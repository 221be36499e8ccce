"""Confidence on held-out data: abstention on cross-collection questions and a reliability diagram.

    .venv/bin/python eval/calibration.py --data /tmp/ext [--plot eval/reliability.png]

`--data` holds the converted and indexed sets of `eval/fit_ranker.py`'s docstring plus
`vqd/` (ViQuAD 1.0 dev, converted and indexed) and `seeds-index/` (`de06qa index seeds`). Only
held-out questions are asked: ViNewsQA dev's held-out articles and ViQuAD dev. Answerable: each set
against its own index. Unanswerable (cross-collection): each set against the other set's index and
against the seed articles; plus the seeds' own unanswerable questions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from de06qa.config import Settings
from de06qa.embedding import create_embedder
from de06qa.evaluation import load_questions
from de06qa.reader import OnnxReader
from de06qa.search import Searcher

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--plot", type=Path, default=ROOT / "eval" / "reliability.png")
    args = ap.parse_args()
    base = Settings.from_env()
    emb = create_embedder(base)
    idx = {
        "vn": args.data / "vn" / "index",
        "vqd": args.data / "vqd" / "index",
        "seeds": args.data / "seeds-index",
    }
    reader = OnnxReader(base)
    searchers = {k: Searcher.open(base.with_(index_dir=v), emb, reader=reader) for k, v in idx.items()}
    qs = {
        "vn": [q.question for q in load_questions(args.data / "vn" / "questions.heldout.jsonl")],
        "vqd": [q.question for q in load_questions(args.data / "vqd" / "questions.jsonl")],
        "seeds": [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl") if not q.answerable],
    }
    runs = {  # (questions, index, answerable there)
        "ViNewsQA held-out → ViNewsQA": ("vn", "vn", True),
        "ViQuAD dev → ViQuAD dev": ("vqd", "vqd", True),
        "ViQuAD dev → ViNewsQA": ("vqd", "vn", False),
        "ViNewsQA held-out → ViQuAD dev": ("vn", "vqd", False),
        "ViQuAD dev → seeds": ("vqd", "seeds", False),
        "ViNewsQA held-out → seeds": ("vn", "seeds", False),
        "seeds' own unanswerable → seeds": ("seeds", "seeds", False),
    }
    conf: list[float] = []
    truth: list[bool] = []
    report = {}
    for name, (q, i, answerable) in runs.items():
        res = searchers[i].search_many(qs[q], 5)
        flagged = float(np.mean([not r.answerable for r in res]))
        report[name] = {"questions": len(res), "flagged_unanswerable": round(flagged, 4)}
        conf += [r.confidence for r in res]
        truth += [answerable] * len(res)
        print(f"{name:36s} {len(res):5d} questions   flagged unanswerable {flagged:.3f}")
    c, t = np.array(conf), np.array(truth)
    flagged = c < searchers["vn"].models.threshold
    report["abstention"] = {
        "precision": round(float((~t[flagged]).mean()), 4),
        "recall": round(float(flagged[~t].mean()), 4),
        "answerable_flagged": round(float(flagged[t].mean()), 4),
    }
    bins = np.linspace(0, 1, 11)
    which = np.clip(np.digitize(c, bins) - 1, 0, 9)
    table = [(float(c[which == b].mean()), float(t[which == b].mean()), int((which == b).sum()))
             for b in range(10) if (which == b).any()]  # fmt: skip
    report["reliability"] = [
        {"mean_confidence": round(a, 3), "answerable": round(b, 3), "n": n} for a, b, n in table
    ]
    print(json.dumps(report, indent=1, ensure_ascii=False))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", label="perfectly calibrated")
    ax.plot([a for a, _, _ in table], [b for _, b, _ in table], marker="o", label="de06qa confidence")
    for a, b, n in table:
        ax.annotate(str(n), (a, b), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.axvline(searchers["vn"].models.threshold, c="red", lw=0.8, label="answer threshold")
    ax.set_xlabel("confidence")
    ax.set_ylabel("share of questions the collection answers")
    ax.set_title("Reliability on held-out questions (n per point)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"wrote {args.plot}\nrerun: .venv/bin/python eval/calibration.py --data {args.data}")


if __name__ == "__main__":
    main()
