"""Fit the ranker, the answer-sentence selector and the confidence model on external data, and
write them into the package (`src/de06qa/models/ranker.json`).

Nothing here reads the seeds' question set or a held-out part. Reproduce (≈ 15 min on 2 cores):

    E=../shared/eval-data; D=/tmp/ext
    de06qa convert-squad $E/viquad_train.json --out $D/vqt
    de06qa convert-squad $E/vinewsqa_dev.json --out $D/vn --split 0.3   # train = 30% of the articles
    de06qa convert-squad $E/xquad_vi_en_fit.json --out $D/xq --split 0.3  # English and Vietnamese
    de06qa index $D/vqt/corpus --index-dir $D/vqt/index
    de06qa index $D/vn/corpus --index-dir $D/vn/index
    de06qa index $D/xq/corpus --index-dir $D/xq/index
    de06qa index seeds --index-dir $D/seeds-index      # only as a collection to ask others' questions of
    .venv/bin/python eval/fit_ranker.py --data $D [--questions 6000] [--crowded DIR]
    .venv/bin/python eval/fit_ranker.py --data $D --only-confidence   # after a new reader (~10 min)
    .venv/bin/python eval/fit_ranker.py --data $D --crowded DIR --only-ranker   # the shipped ranker (~8 min)

Fitting data: ViQuAD 1.0 train questions (a sample), the ViNewsQA dev questions of the train
articles and the XQuAD questions (each in Vietnamese and in English) of the train articles, each
against its own collection's index; with `--crowded DIR`, also DIR/questions.jsonl asked of
DIR/index, an index where their articles sit among thousands of others (the ranker then learns
what tells the asked article from others on the same topic; eval/RESULTS.md, "Ranking among
distractors", says how the shipped one's was made). Positives for ranking: candidates from the gold
article holding a gold answer; for the sentence selector: sentences holding a gold answer; for
confidence: questions asked of their own collection (answerable) against questions asked of the
other collection and of the bundled seed articles (unanswerable there); its features come from the
answer path as the product runs it (selector, then reader), so a new reader needs the confidence
refitted: `--only-confidence` keeps the shipped ranker and selector and refits only it
(`--rows FILE.npz` keeps the confidence's rows, ~10 min to collect, for a refit in seconds);
`--only-ranker` refits only the ranker and keeps the shipped selector and confidence (how the
shipped ranker-2026.12-1 was made: a full refit with the crowded questions lost answers).
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
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from de06qa.accents import counts_file
from de06qa.config import Settings
from de06qa.embedding import create_embedder
from de06qa.evaluation import Question, load_questions
from de06qa.query import Query
from de06qa.ranking import (
    CONFIDENCE_FEATURES,
    RANK_FEATURES,
    SENTENCE_FEATURES,
    LinearModel,
    Models,
    TreeModel,
    load_models,
)
from de06qa.reader import READER_FILE, OnnxReader, weights_file
from de06qa.search import Searcher
from de06qa.search.answers import Answerer
from de06qa.search.passages import top_passages
from de06qa.search.retrieval import rank
from de06qa.text import fold

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "de06qa" / "models" / "ranker.json"
VERSION = "ranker-2026.12-1"
THRESHOLD_QUANTILE = 0.03  # the product's bound: at most 3% of answerable questions flagged
AUGMENT = 0.25  # share of questions also asked without diacritics, and as if in another language
LGBM = {"objective": "lambdarank", "n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31,
        "min_child_samples": 20, "verbose": -1, "random_state": 6, "deterministic": True}  # fmt: skip


def _linear(
    x: np.ndarray, y: np.ndarray, names: tuple[str, ...], weight: np.ndarray | None = None
) -> LinearModel:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    lr = LogisticRegression(C=1.0, max_iter=2000)
    lr.fit((x - mean) / scale, y, sample_weight=weight)
    return LinearModel(names, mean, scale, lr.coef_[0].astype(np.float32), float(lr.intercept_[0]))


def _pairwise(items, rng: random.Random, per_query: int = 30) -> LinearModel:  # type: ignore[no-untyped-def]
    """A linear ranker fitted on pairs (RankSVM-style, with a logistic loss): for each question, the
    feature difference of a relevant and an irrelevant candidate, both ways round. What a linear
    model gets from this is the ordering inside one question, not the score level across them."""
    diffs = []
    for _, (_, r, lab) in items:
        pos, neg = np.flatnonzero(lab), np.flatnonzero(~lab)
        if not len(pos) or not len(neg):
            continue
        # the hardest negatives (highest first-stage scores) and a few random ones
        hard = neg[np.argsort(-(r.features[neg, 1] + r.features[neg, 4]))[: per_query // 2]]
        pick = np.concatenate([hard, rng.sample(list(neg), min(len(neg), per_query // 2))])
        for j in pick:
            diffs.append(r.features[rng.choice(list(pos))] - r.features[j])
    d = np.array(diffs, np.float32)
    scale = d.std(axis=0)
    scale[scale < 1e-6] = 1.0
    x = np.concatenate([d / scale, -d / scale])
    y = np.concatenate([np.ones(len(d), int), np.zeros(len(d), int)])
    lr = LogisticRegression(C=1.0, max_iter=3000, fit_intercept=False).fit(x, y)
    return LinearModel(RANK_FEATURES, np.zeros(d.shape[1], np.float32), scale.astype(np.float32),
                       lr.coef_[0].astype(np.float32), 0.0)  # fmt: skip


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


def _foreign(query: Query, rng: random.Random) -> Query:
    """The question as if asked in another language: most topic syllables become words the corpus
    has never seen (the embedding, multilingual, stays). Users ask in English; the fitting data has
    no such questions, and without this the models would take "the corpus knows none of these
    words" for "the corpus does not answer this"."""
    gone = {t for t in query.terms if rng.random() < rng.uniform(0.5, 1.0)}
    if not gone:
        return query
    keep = lambda term: not (set(term.split("_")) & gone)  # noqa: E731
    return replace(
        query,
        terms=tuple(t if t not in gone else f"zq{i}x" for i, t in enumerate(query.terms)),
        words=tuple(w for w in query.words if keep(fold(w).lower())),
        folded_terms=tuple(t for t in query.folded_terms if keep(t)),
        accented=False,
    )


def queries_for(
    searcher: Searcher, questions: list[Question], rng: random.Random
) -> list[tuple[Question, Query]]:
    """Each question as analysed, plus, for a share of them, the forms users also type: without
    diacritics (really re-analysed and re-embedded) and in another language (`_foreign`)."""
    out: list[tuple[Question, Query]] = []
    for n in range(0, len(questions), 64):
        batch = questions[n : n + 64]
        analysed = list(zip(batch, searcher.analyse([q.question for q in batch])))
        plain = [q for q in batch if rng.random() < AUGMENT]
        out += analysed
        if plain:
            out += zip(plain, searcher.analyse([fold(q.question) for q in plain]))
        out += [(q, _foreign(query, rng)) for q, query in analysed if rng.random() < AUGMENT]
    return out


def collect(
    searcher: Searcher, questions: list[Question], rng: random.Random
) -> list[tuple[Question, object, np.ndarray]]:
    """(question, Ranked, labels) for each answerable question and its augmented forms."""
    by_doc: dict[str, list[tuple[int, str]]] = {}
    for i, c in enumerate(searcher.backend.data.chunks):
        by_doc.setdefault(c.doc_id, []).append((i, c.text))
    out = []
    for q, query in queries_for(searcher, questions, rng):
        r = rank(searcher.backend, searcher.models.ranker, query)
        rel = {i for i, text in by_doc.get(q.doc_id or "", []) if any(a in text for a in q.answers)}
        out.append((q, r, np.array([int(row) in rel for row in r.candidates.rows.tolist()])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--questions", type=int, default=6000, help="ViQuAD train questions sampled")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--only-confidence", action="store_true", help="keep the shipped ranker and selector")
    ap.add_argument("--only-ranker", action="store_true", help="keep the shipped selector and confidence")
    ap.add_argument("--rows", type=Path, default=None, help="cache of the confidence's rows (.npz)")
    ap.add_argument("--crowded", type=Path, default=None, help="DIR with index/ and questions.jsonl")
    args = ap.parse_args()
    t0 = time.perf_counter()
    base = Settings.from_env()
    embedder = create_embedder(base)
    boot = load_models(refitting=True)
    reader = OnnxReader(base)
    searchers = {
        name: Searcher.open(base.with_(index_dir=args.data / name / "index"), embedder, boot, reader)
        for name in ("vqt", "vn", "xq")
    }
    seeds = Searcher.open(base.with_(index_dir=args.data / "seeds-index"), embedder, boot, reader)
    rng = random.Random(6)
    vqt_q = [q for q in load_questions(args.data / "vqt" / "questions.jsonl") if q.answerable]
    vqt_q = rng.sample(vqt_q, min(args.questions, len(vqt_q)))
    vn_q = [q for q in load_questions(args.data / "vn" / "questions.train.jsonl") if q.answerable]
    xq_q = [q for q in load_questions(args.data / "xq" / "questions.train.jsonl") if q.answerable]
    if args.only_confidence:
        meta = _shipped_meta(args.out)
        fit_confidence(args, searchers, seeds, boot.ranker, boot.sentence, vqt_q, vn_q, xq_q, meta, rng)
        return
    fit_sets = {"vqt": vqt_q, "vn": vn_q, "xq": xq_q}
    if args.crowded:
        searchers["crowded"] = Searcher.open(
            base.with_(index_dir=args.crowded / "index"), embedder, boot, reader
        )
        fit_sets["crowded"] = [q for q in load_questions(args.crowded / "questions.jsonl") if q.answerable]
    rows = {name: collect(searchers[name], qs, rng) for name, qs in fit_sets.items()}
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
    mrr_lr = _mrr([(lr.logits(r.features), lab) for _, (_, r, lab) in val])
    pw = _pairwise(fit, rng)
    mrr_pw = _mrr([(pw.logits(r.features), lab) for _, (_, r, lab) in val])
    report = {"validation_mrr@10": {"logistic": round(mrr_lr, 4), "logistic_pairwise": round(mrr_pw, 4)}}
    try:
        import lightgbm as lgb

        ranker = lgb.LGBMRanker(**LGBM).fit(x, y, group=[len(lab) for _, (_, _, lab) in fit])
        mrr_gbm = _mrr([(ranker.predict(r.features), lab) for _, (_, r, lab) in val])
        report["validation_mrr@10"]["lightgbm_lambdarank"] = round(mrr_gbm, 4)
    except ImportError:
        mrr_gbm, lgb = None, None
    print(json.dumps(report), file=sys.stderr)
    x_all, y_all, w_all = stack(every)
    # The simpler model unless the tree ensemble ranks better by more than 0.005 MRR@10.
    if mrr_gbm is not None and mrr_gbm > max(mrr_lr, mrr_pw) + 0.005:
        full = lgb.LGBMRanker(**LGBM).fit(x_all, y_all, group=[len(lab) for _, (_, _, lab) in every])
        ranker_model: LinearModel | TreeModel = TreeModel(full.booster_.model_to_string(), RANK_FEATURES)
        report["ranker"] = "lightgbm_lambdarank"
    else:
        ranker_model = _linear(x_all, y_all, RANK_FEATURES, w_all)
        report["ranker"] = "logistic"

    if args.only_ranker:
        meta = _shipped_meta(args.out)
        meta.update(fitted_on=_fitted_on(args), command=_command(args))
        meta["report"].update(report)
        _write(args.out, Models(VERSION, ranker_model, boot.sentence, boot.confidence, boot.threshold), meta)
        return

    # -- answer sentence -------------------------------------------------------------------------
    models = Models(VERSION, ranker_model, boot.sentence, boot.confidence, 0.5)
    for s in (*searchers.values(), seeds):
        s.answerer = Answerer(models, s.reader)
    sx, sy, sval = [], [], []
    for name, (q, r, _) in every:
        s = searchers[name]
        scores = np.array(r.logits)
        passages = top_passages(r, scores, r.candidates.bm25_folded, 3, 2 * s.settings.chunk_chars)
        cands, feats = s.answerer.sentences(r, passages)
        labels = [sp.doc_id == q.doc_id and any(a in span.text for a in q.answers) for span, sp in
                  ((span, p.chunk) for span, p in cands)]  # fmt: skip
        if any(labels):
            sx.append(feats)
            sy.extend(labels)
            sval.append(_held(q.doc_id))
    # Validation: share of questions whose chosen sentence holds the answer (of those where one does).
    fit_rows = [i for i, v in enumerate(sval) if not v]
    ys = np.split(np.array(sy, bool), np.cumsum([len(f) for f in sx])[:-1])
    probe = _linear(
        np.concatenate([sx[i] for i in fit_rows]),
        np.concatenate([ys[i] for i in fit_rows]).astype(int),
        SENTENCE_FEATURES,
    )
    val_rows = [i for i, v in enumerate(sval) if v]
    acc_lr = float(np.mean([ys[i][int(np.argmax(probe.logits(sx[i])))] for i in val_rows]))
    report["validation_sentence_accuracy"] = {"logistic": round(acc_lr, 4)}
    acc_gbm = None
    if lgb is not None:
        params = {**LGBM, "n_estimators": 200, "num_leaves": 15}
        g = lgb.LGBMRanker(**params).fit(
            np.concatenate([sx[i] for i in fit_rows]),
            np.concatenate([ys[i] for i in fit_rows]).astype(int),
            group=[len(sx[i]) for i in fit_rows],
        )
        acc_gbm = float(np.mean([ys[i][int(np.argmax(g.predict(sx[i])))] for i in val_rows]))
        report["validation_sentence_accuracy"]["lightgbm_lambdarank"] = round(acc_gbm, 4)
    if acc_gbm is not None and acc_gbm > acc_lr + 0.005:
        g = lgb.LGBMRanker(**params).fit(np.concatenate(sx), np.array(sy, int), group=[len(f) for f in sx])
        sentence_model: LinearModel | TreeModel = TreeModel(g.booster_.model_to_string(), SENTENCE_FEATURES)
        report["sentence"] = "lightgbm_lambdarank"
    else:
        sentence_model = _linear(np.concatenate(sx), np.array(sy, int), SENTENCE_FEATURES)
        report["sentence"] = "logistic"

    meta = {
        "fitted_on": _fitted_on(args),
        "command": _command(args),
        "kind": "ranker: see report.ranker; sentence and confidence: logistic regression (scikit-learn)",
        "report": report,
    }
    fit_confidence(args, searchers, seeds, ranker_model, sentence_model, vqt_q, vn_q, xq_q, meta, rng)


def fit_confidence(  # type: ignore[no-untyped-def]
    args, searchers, seeds, ranker_model, sentence_model, vqt_q, vn_q, xq_q, meta, rng
) -> None:
    """The confidence model on the answer path's features, then every model written."""
    t0 = time.perf_counter()
    models = Models(VERSION, ranker_model, sentence_model, load_models(refitting=True).confidence, 0.5)
    for s in (*searchers.values(), seeds):
        s.answerer = Answerer(models, s.reader)

    def conf_rows(s: Searcher, qs: list[Question]) -> np.ndarray:
        out = []
        for _, query in queries_for(s, qs, rng):
            r = rank(s.backend, s.models.ranker, query)
            got = s.answerer.read(
                r, top_passages(r, r.logits, r.candidates.bm25_folded, 3, 2 * s.settings.chunk_chars)
            )
            if got is not None:
                out.append(got[1][0])
        return np.array(out, np.float32)

    # The rows depend on the reader, on the ranker and selector that pick its sentences, and on the
    # marks unmarked questions are read with.
    made_by = hashlib.sha256(weights_file().read_bytes())
    for model in (ranker_model, sentence_model):
        made_by.update((model.text if isinstance(model, TreeModel) else json.dumps(model.to_dict())).encode())
    if seeds.settings.restore_marks:
        made_by.update(counts_file().read_bytes())
    key = made_by.hexdigest()
    cached = np.load(args.rows) if args.rows and args.rows.exists() else None
    if cached is not None and str(cached["key"]) == key:
        pos, neg = cached["pos"], cached["neg"]
    else:
        m = min(len(vn_q), 1500)
        pos = np.concatenate([
            conf_rows(searchers["vqt"], vqt_q[:m]), conf_rows(searchers["vn"], vn_q[:m]),
            conf_rows(searchers["xq"], xq_q),
        ])  # fmt: skip
        neg = np.concatenate([
            conf_rows(searchers["vn"], vqt_q[:m]), conf_rows(searchers["vqt"], vn_q[:m]),
            conf_rows(seeds, vqt_q[m : m + m // 2]), conf_rows(seeds, vn_q[: m // 2]),
            conf_rows(searchers["vn"], xq_q[::2]), conf_rows(seeds, xq_q[1::2]),
        ])  # fmt: skip
        if args.rows:
            np.savez(args.rows, pos=pos, neg=neg, key=key)
    cx = np.concatenate([pos, neg])
    cy = np.concatenate([np.ones(len(pos), int), np.zeros(len(neg), int)])
    weight = np.where(cy == 1, len(cy) / (2 * len(pos)), len(cy) / (2 * len(neg)))
    confidence_model = _linear(cx, cy, CONFIDENCE_FEATURES, weight)
    pp, pn = confidence_model.proba(pos), confidence_model.proba(neg)
    # The threshold keeps answerable questions answered: at most THRESHOLD_QUANTILE of the fitting
    # positives flagged, and no higher than 0.5.
    threshold = float(min(0.5, np.quantile(pp, THRESHOLD_QUANTILE)))
    report = meta.setdefault("report", {})
    report["fit_confidence"] = {
        "threshold": round(threshold, 4),
        "answerable_flagged": round(float((pp < threshold).mean()), 4),
        "unanswerable_flagged": round(float((pn < threshold).mean()), 4),
        "reader": READER_FILE,
    }
    _write(args.out, Models(VERSION, ranker_model, sentence_model, confidence_model, threshold), meta)
    print(f"confidence in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def _shipped_meta(out: Path) -> dict:  # type: ignore[type-arg]
    """What the shipped file says of its fit, its models left out (a partial refit keeps it)."""
    shipped = json.loads(out.read_text(encoding="utf-8"))
    return {
        k: v
        for k, v in shipped.items()
        if k not in ("version", "ranker", "sentence", "confidence", "threshold")
    }


def _fitted_on(args: argparse.Namespace) -> str:
    crowded = "; with --crowded: its questions among thousands of other articles" if args.crowded else ""
    return (
        "UIT-ViQuAD 1.0 train (sample) + UIT-ViNewsQA dev and XQuAD vi/en, train articles (--split 0.3)"
        + crowded
    )


def _command(args: argparse.Namespace) -> str:
    return f"eval/fit_ranker.py --data DIR --questions {args.questions}" + (
        " --crowded DIR" if args.crowded else ""
    )


def _write(out: Path, models: Models, meta: dict) -> None:  # type: ignore[type-arg]
    """ranker.json, and beside it the LightGBM models it names."""
    for name, model in (("ranker", models.ranker), ("sentence", models.sentence)):
        tree = out.parent / f"{name}-lightgbm.txt"
        if isinstance(model, TreeModel):
            tree.write_text(model.text, encoding="utf-8")
        else:
            tree.unlink(missing_ok=True)
    out.write_text(json.dumps(models.to_dict(meta), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(meta.get("report", {}), indent=1), file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
