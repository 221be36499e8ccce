"""Fit the ranker, the answer-sentence selector and the confidence model on external data, and
write them into the package (`src/de06qa/models/ranker.json`).

Nothing here reads the seeds' question set or a held-out part. Reproduce (≈ 15 min on 2 cores):

    E=../shared/eval-data; D=/tmp/ext
    de06qa convert-squad $E/viquad_train.json --out $D/vqt
    de06qa convert-squad $E/vinewsqa_dev.json --out $D/vn --split 0.3   # train = 30% of the articles
    de06qa index $D/vqt/corpus --index-dir $D/vqt/index
    de06qa index $D/vn/corpus --index-dir $D/vn/index
    .venv/bin/python eval/fit_ranker.py --data $D [--questions 6000]

Fitting data: ViQuAD 1.0 train questions (a sample) and the ViNewsQA dev questions of the train
articles, each against its own collection's index. Positives for ranking: candidates from the gold
article holding a gold answer; for the sentence selector: sentences holding a gold answer; for
confidence: questions asked of their own collection (answerable) against questions asked of the
other collection and of the bundled seed articles (unanswerable there).
Model choice: logistic regression and (when installed) LightGBM LambdaRank are both fitted on 80%
of the fitting questions (split by article) and compared by MRR@10 on the other 20%; the simpler
(logistic regression) is kept unless LightGBM wins by more than 0.005.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from de06qa.config import Settings
from de06qa.embedding import create_embedder
from de06qa.evaluation import Question, load_questions
from de06qa.ranking import (
    CONFIDENCE_FEATURES,
    RANK_FEATURES,
    SENTENCE_FEATURES,
    LinearModel,
    Models,
    load_models,
)
from de06qa.search import Searcher

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "de06qa" / "models" / "ranker.json"
VERSION = "ranker-2026.11-1"


def _linear(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], weight: np.ndarray | None = None) -> LinearModel:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    lr = LogisticRegression(C=1.0, max_iter=2000)
    lr.fit((x - mean) / scale, y, sample_weight=weight)
    return LinearModel(names, mean, scale, lr.coef_[0].astype(np.float32), float(lr.intercept_[0]))


def _held(doc_id: str | None, share: float = 0.2) -> bool:
    """Validation part of the fitting questions: a stable hash of the article, never the same article."""
    return int(hashlib.sha256(str(doc_id).encode()).hexdigest()[:8], 16) / 2**32 < share


def _mrr(groups: list[tuple[np.ndarray, np.ndarray]]) -> float:
    total = 0.0
    for scores, y in groups:
        order = np.argsort(-scores, kind="stable")[:10]
        first = next((r for r, i in enumerate(order, 1) if y[i]), None)
        total += 1.0 / first if first else 0.0
    return total / max(len(groups), 1)


def collect(searcher: Searcher, questions: list[Question]) -> list[tuple[Question, object, np.ndarray]]:
    """(question, Ranked, labels) for each answerable question."""
    by_doc: dict[str, list[tuple[int, str]]] = {}
    for i, c in enumerate(searcher.data.chunks):
        by_doc.setdefault(c.doc_id, []).append((i, c.text))
    out = []
    for n in range(0, len(questions), 64):
        batch = questions[n : n + 64]
        for q, query in zip(batch, searcher.analyse_many([q.question for q in batch])):
            r = searcher.rank(query)
            rel = {i for i, text in by_doc.get(q.doc_id or "", []) if any(a in text for a in q.answers)}
            out.append((q, r, np.array([int(row) in rel for row in r.candidates.rows.tolist()])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--questions", type=int, default=6000, help="ViQuAD train questions sampled")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    base = Settings.from_env()
    embedder = create_embedder(base)
    boot = load_models()
    searchers = {
        name: Searcher.open(base.with_(index_dir=args.data / name / "index"), embedder, boot)
        for name in ("vqt", "vn")
    }
    seeds = Searcher.open(base.with_(index_dir=args.data / "seeds-index"), embedder, boot)
    rng = random.Random(6)
    vqt_q = [q for q in load_questions(args.data / "vqt" / "questions.jsonl") if q.answerable]
    vqt_q = rng.sample(vqt_q, min(args.questions, len(vqt_q)))
    vn_q = [q for q in load_questions(args.data / "vn" / "questions.train.jsonl") if q.answerable]
    fit_sets = {"vqt": vqt_q, "vn": vn_q}
    rows = {name: collect(searchers[name], qs) for name, qs in fit_sets.items()}
    every = [(name, item) for name, items in rows.items() for item in items]
    print(f"collected {len(every)} questions in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    # -- ranker ----------------------------------------------------------------------------------
    def stack(items):  # type: ignore[no-untyped-def]
        x = np.concatenate([r.features for _, (_, r, _) in items])
        y = np.concatenate([lab for _, (_, _, lab) in items]).astype(int)
        # each question weighs the same whatever its number of candidates
        w = np.concatenate([np.full(len(lab), 1.0 / max(len(lab), 1)) for _, (_, _, lab) in items])
        return x, y, w * len(items) / w.sum() * 100

    fit = [it for it in every if not _held(it[1][0].doc_id)]
    val = [it for it in every if _held(it[1][0].doc_id)]
    x, y, w = stack(fit)
    lr = _linear(x, y, RANK_FEATURES, w)
    val_groups = [(lr.logits(r.features), lab) for _, (_, r, lab) in val]
    mrr_lr = _mrr(val_groups)
    report = {"validation_mrr@10": {"logistic": round(mrr_lr, 4)}}
    try:
        import lightgbm as lgb

        ranker = lgb.LGBMRanker(objective="lambdarank", n_estimators=300, learning_rate=0.05, num_leaves=31,
                                min_child_samples=20, verbose=-1)  # fmt: skip
        ranker.fit(x, y, group=[len(lab) for _, (_, _, lab) in fit])
        mrr_gbm = _mrr([(ranker.predict(r.features), lab) for _, (_, r, lab) in val])
        report["validation_mrr@10"]["lightgbm_lambdarank"] = round(mrr_gbm, 4)
    except ImportError:
        mrr_gbm = None
    print(json.dumps(report), file=sys.stderr)
    x_all, y_all, w_all = stack(every)
    ranker_model = _linear(x_all, y_all, RANK_FEATURES, w_all)

    # -- answer sentence -------------------------------------------------------------------------
    models = Models(VERSION, ranker_model, boot.sentence, boot.confidence, 0.5)
    for s in (*searchers.values(), seeds):
        s.models = models
    sx, sy = [], []
    for name, (q, r, _) in every:
        s = searchers[name]
        scores = np.array(r.logits)
        passages = s._passages(r, scores, r.candidates.bm25_folded, 3)
        cands, feats = s.answer_sentences(r, passages)
        labels = [sp.doc_id == q.doc_id and any(a in span.text for a in q.answers) for span, sp in
                  ((span, p.chunk) for span, p in cands)]  # fmt: skip
        if any(labels):
            sx.append(feats)
            sy.extend(labels)
    sentence_model = _linear(np.concatenate(sx), np.array(sy, int), SENTENCE_FEATURES)

    # -- confidence ------------------------------------------------------------------------------
    models = Models(VERSION, ranker_model, sentence_model, boot.confidence, 0.5)
    for s in (*searchers.values(), seeds):
        s.models = models

    def conf_rows(s: Searcher, qs: list[Question]) -> np.ndarray:
        out = []
        for n in range(0, len(qs), 64):
            for query in s.analyse_many([q.question for q in qs[n : n + 64]]):
                r = s.rank(query)
                passages = s._passages(r, r.logits, r.candidates.bm25_folded, 3)
                if not passages:
                    continue
                cands, feats = s.answer_sentences(r, passages)
                p = s.models.sentence.proba(feats)
                b = int(np.argmax(p))
                out.append(s.confidence_features(r, passages, feats[b], float(p[b]))[0])
        return np.array(out, np.float32)

    m = min(len(vn_q), 1500)
    pos = np.concatenate([conf_rows(searchers["vqt"], vqt_q[:m]), conf_rows(searchers["vn"], vn_q[:m])])
    neg = np.concatenate([
        conf_rows(searchers["vn"], vqt_q[:m]), conf_rows(searchers["vqt"], vn_q[:m]),
        conf_rows(seeds, vqt_q[m : m + m // 2]), conf_rows(seeds, vn_q[: m // 2]),
    ])  # fmt: skip
    cx = np.concatenate([pos, neg])
    cy = np.concatenate([np.ones(len(pos), int), np.zeros(len(neg), int)])
    weight = np.where(cy == 1, len(cy) / (2 * len(pos)), len(cy) / (2 * len(neg)))
    confidence_model = _linear(cx, cy, CONFIDENCE_FEATURES, weight)
    pp, pn = confidence_model.proba(pos), confidence_model.proba(neg)
    # The threshold keeps answerable questions answered: at most 3% of the fitting positives flagged.
    threshold = float(min(0.5, np.quantile(pp, 0.03)))
    report["fit_confidence"] = {
        "threshold": round(threshold, 4),
        "answerable_flagged": round(float((pp < threshold).mean()), 4),
        "unanswerable_flagged": round(float((pn < threshold).mean()), 4),
    }
    final = Models(VERSION, ranker_model, sentence_model, confidence_model, threshold)
    meta = {
        "fitted_on": "UIT-ViQuAD 1.0 train (sample) + UIT-ViNewsQA dev, train articles (--split 0.3)",
        "command": "eval/fit_ranker.py --data DIR --questions " + str(args.questions),
        "kind": "logistic regression (scikit-learn), standardised features",
        "report": report,
    }
    args.out.write_text(json.dumps(final.to_dict(meta), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1), file=sys.stderr)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
