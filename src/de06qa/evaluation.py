"""Offline evaluation: run a question set through each retrieval mode and score it.

A chunk is relevant to a question when it comes from the gold article and contains one of the gold
answer strings. Metrics follow their usual definitions (binary relevance), and the run and qrels are
written in TREC format so that an external evaluator (ir-measures) can confirm the numbers.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from de06qa.contract import search_json
from de06qa.documents import Chunk
from de06qa.errors import De06qaError
from de06qa.filters import Filters
from de06qa.lexical import PlainBM25
from de06qa.search import MODES, Searcher, SearchResult
from de06qa.text import nfc, normalise, word_terms, words

DEPTH = 10


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    kind: str
    doc_id: str | None
    answers: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return self.doc_id is not None and bool(self.answers)


def load_questions(path: Path) -> list[Question]:
    if not path.exists():
        raise De06qaError(f"{path} does not exist; see eval/README.md for the question file format")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            out.append(
                Question(
                    r["id"],
                    r["question"],
                    r.get("kind", "direct"),
                    r.get("doc_id"),
                    tuple(r.get("answers", [])),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise De06qaError(f"{path}:{n}: not a question record ({e}); see eval/README.md") from e
    return out


def relevant_chunks(by_doc: dict[str, list[Chunk]], q: Question) -> set[str]:
    """Chunks of the gold article that hold a gold answer (`by_doc`: the index's chunks per article)."""
    if not q.answerable:
        return set()
    return {c.chunk_id for c in by_doc.get(q.doc_id or "", []) if any(a in c.text for a in q.answers)}


def _judged_id(chunk: Chunk, rel: set[str] | None, q: Question | None) -> str:
    """The id a passage is judged under. A passage merged from chunks ("doc#3+4") counts as its
    relevant chunk when it holds one, so recall keeps counting chunks; when only the merge holds
    the answer whole (it straddled two chunks), or the passage is a part of a chunk ("doc#5-"), it
    is judged by the same rule and joins the relevant pool itself."""
    if ("+" not in chunk.chunk_id and not chunk.chunk_id.endswith("-")) or rel is None or q is None:
        return chunk.chunk_id
    if "+" in chunk.chunk_id:
        doc, numbers = chunk.chunk_id.rsplit("#", 1)
        hit = next((c for c in (f"{doc}#{n}" for n in numbers.split("+")) if c in rel), None)
        if hit is not None:
            return hit
    if chunk.doc_id == q.doc_id and any(a in chunk.text for a in q.answers):
        rel.add(chunk.chunk_id)
    return chunk.chunk_id


def _per_question(ranked: list[str], rel: set[str]) -> dict[str, float]:
    hits = [1 if c in rel else 0 for c in ranked[:DEPTH]]
    first = next((i + 1 for i, h in enumerate(hits) if h), None)
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), DEPTH)))
    m = {f"hit@{k}": float(first is not None and first <= k) for k in (1, 3, 5, 10)}
    m["mrr@10"] = 1.0 / first if first else 0.0
    m["ndcg@10"] = dcg / idcg if idcg else 0.0
    m["recall@10"] = sum(hits) / len(rel) if rel else 0.0
    return m


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in rows[0]}


# Retrieval modes the evaluation compares. The first two are baselines that only rank passages:
# a generic BM25 library over syllables, and BM25 over underthesea words alone; the others are
# the Searcher's own modes, with answer extraction.
BASELINES = ("bm25-syllables", "bm25-words")
EVAL_MODES = (*BASELINES, *sorted(MODES, key=("bm25", "dense", "hybrid").index))


def _baseline_rankings(
    searcher: Searcher, mode: str, questions: list[Question], filters: Filters
) -> dict[str, list[str]]:
    """The baselines rank every chunk; with filters, only the matching articles' chunks are kept."""
    from de06qa.backends.embedded import EmbeddedBackend

    if not isinstance(searcher.backend, EmbeddedBackend):
        raise De06qaError(
            f"the {mode} baseline ranks an index folder in this process: use the embedded backend"
        )
    data = searcher.backend.data
    chunks = data.chunks
    keep = [filters.matches(data.articles[c.doc_id]) for c in chunks]
    if mode == "bm25-syllables":
        plain = PlainBM25([c.text for c in chunks])
        rankings = {q.qid: plain.rank(q.question, len(chunks)) for q in questions}
    else:
        rankings = {
            q.qid: np.argsort(
                -data.lexical.scores("words", word_terms(words(nfc(q.question)))), kind="stable"
            ).tolist()
            for q in questions
        }
    return {qid: [chunks[i].chunk_id for i in rows if keep[i]][:DEPTH] for qid, rows in rankings.items()}


def evaluate(
    searcher: Searcher,
    questions: list[Question],
    modes: tuple[str, ...] = EVAL_MODES,
    out: Path | None = None,
    filters: Filters | None = None,
    sort: str = "relevance",
) -> dict[str, Any]:
    """Metrics per mode and per question kind; writes runs, qrels, metrics, failures (hybrid's
    first passage wrong) and answers (hybrid's answer to every question, scored) when `out` is set:
    `run.trec` is the default (hybrid) mode, `run.<mode>.trec` the others."""
    filters = filters or Filters()
    unknown = [m for m in modes if m not in EVAL_MODES]
    if unknown:
        raise De06qaError(f"unknown mode {unknown[0]!r}; choose from {', '.join(EVAL_MODES)}")
    answerable = [q for q in questions if q.answerable]
    by_doc: dict[str, list[Chunk]] = {}
    for c in searcher.backend.chunks():
        by_doc.setdefault(c.doc_id, []).append(c)
    rels = {q.qid: relevant_chunks(by_doc, q) for q in answerable}
    report: dict[str, Any] = {
        "questions": len(questions),
        "answerable": len(answerable),
        "kinds": dict(Counter(q.kind for q in questions)),
        "filters": {**filters.to_dict(), "sort": sort},
        "modes": {},
    }
    runs: dict[str, list[str]] = {}
    failures: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    # Run every mode first: a passage merged from several chunks ("doc#3+4") is judged by the same
    # rule as a chunk and joins the pool of relevant passages before any metric is computed.
    gold = {q.qid: q for q in answerable}
    collected: dict[str, tuple[dict[str, list[tuple[str, float]]], dict[str, SearchResult]]] = {}
    for mode in modes:
        results: dict[str, SearchResult] = {}
        if mode in BASELINES:
            ranked = _baseline_rankings(searcher, mode, questions, filters)
            scored = {qid: [(c, float(DEPTH - i)) for i, c in enumerate(cs)] for qid, cs in ranked.items()}
        else:
            found = searcher.search_many([q.question for q in questions], DEPTH, mode, filters, sort)
            results = dict(zip((q.qid for q in questions), found))
            scored = {
                qid: [(_judged_id(p.chunk, rels.get(qid), gold.get(qid)), p.score) for p in r.passages]
                for qid, r in results.items()
            }
        collected[mode] = (scored, results)
    for mode, (scored, results) in collected.items():
        per_q = {q.qid: _per_question([c for c, _ in scored[q.qid]], rels[q.qid]) for q in answerable}
        by_kind = defaultdict(list)
        for q in answerable:
            by_kind[q.kind].append(per_q[q.qid])
        mode_report: dict[str, Any] = {
            "all": _mean(list(per_q.values())),
            "by_kind": {k: _mean(v) for k, v in by_kind.items()},
        }
        if results:
            mode_report.update(_answer_metrics(questions, results))
            for kind, row in mode_report["by_kind"].items():
                flags = [not results[q.qid].answerable for q in answerable if q.kind == kind]
                row["answerable_flagged"] = round(sum(flags) / len(flags), 4)
        if mode == "hybrid":
            failures = [
                _failure(q, [c for c, _ in scored[q.qid]], results[q.qid], rels[q.qid])
                for q in answerable
                if per_q[q.qid]["hit@1"] < 1
            ]
            answers = [_answer_row(q, results[q.qid]) for q in questions]
        runs[mode] = [line for qid, rows in scored.items() for line in _trec_lines(qid, rows, mode)]
        report["modes"][mode] = mode_report
    if out is not None:
        _write(out, report, runs, rels, failures, answers)
    return report


def _trec_lines(qid: str, rows: list[tuple[str, float]], mode: str) -> list[str]:
    """TREC evaluators order by score, not by the rank column: equal scores are nudged down by
    1e-6 so they keep our order instead of being re-sorted by document id."""
    lines, prev = [], math.inf
    for rank, (chunk_id, score) in enumerate(rows, 1):
        prev = min(score, prev - 1e-6)
        lines.append(f"{qid} Q0 {chunk_id} {rank} {prev:.6f} de06qa-{mode}")
    return lines


def run_file(mode: str) -> str:
    return "run.trec" if mode == "hybrid" else f"run.{mode}.trec"


def _write(
    out: Path,
    report: dict[str, Any],
    runs: dict[str, list[str]],
    rels: dict[str, set[str]],
    failures: list[dict[str, Any]],
    answers: list[dict[str, Any]],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    for mode, lines in runs.items():
        (out / run_file(mode)).write_text("\n".join(lines) + "\n", encoding="utf-8")
    qrels = [f"{qid} 0 {c} 1" for qid, cs in rels.items() for c in sorted(cs)]
    (out / "qrels.trec").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    for name, rows in (("failures.jsonl", failures), ("answers.jsonl", answers)):
        with (out / name).open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _tokens(text: str) -> list[str]:
    """MLQA's answer normalisation for Vietnamese, without dropping words: lower case (and one
    tone-mark placement), Unicode punctuation removed, split on whitespace."""
    kept = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in normalise(text))
    return kept.split()


def answer_em(predicted: str, gold: str) -> float:
    return float(_tokens(predicted) == _tokens(gold))


def span_f1(predicted: str, gold: str) -> float:
    """SQuAD's token F1 over normalised tokens (`_tokens`)."""
    p, g = _tokens(predicted), _tokens(gold)
    common = sum((Counter(p) & Counter(g)).values())
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def _answer_metrics(questions: list[Question], results: dict[str, SearchResult]) -> dict[str, Any]:
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    sent_ok = span_ok = holds = flagged_wrong = 0
    em = f1 = 0.0
    for q in answerable:
        a = results[q.qid].answer  # None when flagged unanswerable: counts as wrong
        if a is not None and a.doc_id == q.doc_id and any(x in a.sentence for x in q.answers):
            sent_ok += 1
            span_ok += any(x in a.text or a.text in x for x in q.answers if a.text)
        if a is not None:
            holds += any(normalise(x) in normalise(a.text) for x in q.answers)
            q_em, q_f1 = _span_scores(a.text, q.answers)
            em, f1 = em + q_em, f1 + q_f1
        flagged_wrong += not results[q.qid].answerable
    flagged = [q for q in questions if not results[q.qid].answerable]
    true_flags = sum(1 for q in flagged if not q.answerable)
    return {
        "answer_sentence_accuracy": round(sent_ok / len(answerable), 4) if answerable else 0.0,
        "answer_span_accuracy": round(span_ok / len(answerable), 4) if answerable else 0.0,
        "answer_holds_gold": round(holds / len(answerable), 4) if answerable else 0.0,
        "answer_exact_match": round(em / len(answerable), 4) if answerable else 0.0,
        "answer_f1": round(f1 / len(answerable), 4) if answerable else 0.0,
        "abstention": {
            "precision": round(true_flags / len(flagged), 4) if flagged else 0.0,
            "recall": round(true_flags / len(unanswerable), 4) if unanswerable else 0.0,
            "answerable_wrongly_flagged": round(flagged_wrong / len(answerable), 4) if answerable else 0.0,
        },
    }


def _failure(q: Question, judged: list[str], res: SearchResult, rel: set[str]) -> dict[str, Any]:
    d = search_json(res)
    first = next((rank for rank, c in enumerate(judged, 1) if c in rel), None)
    return {
        "id": q.qid,
        "question": q.question,
        "kind": q.kind,
        "gold_doc": q.doc_id,
        "answers": list(q.answers),
        "first_correct_rank": first,
        "top_passage": d["results"][0]["chunk_id"] if d["results"] else None,
        "top_text": d["results"][0]["text"][:200] if d["results"] else None,
        "answer": d["answer"]["text"] if d["answer"] else None,
        "confidence": d["confidence"],
    }


def _answer_row(q: Question, res: SearchResult) -> dict[str, Any]:
    """One question's answer beside its gold ones, scored as `_answer_metrics` scores it: where a
    set's span EM or F1 is lost (wrong sentence, span cut or run on, abstention)."""
    a = res.answer
    em, f1 = _span_scores(a.text, q.answers) if a else (0.0, 0.0)
    return {
        "id": q.qid,
        "question": q.question,
        "kind": q.kind,
        "answers": list(q.answers),
        "answer": a.text if a else None,
        "sentence": a.sentence if a else None,
        "doc_id": a.doc_id if a else None,
        "flagged": not res.answerable,
        "confidence": round(res.confidence, 4),
        "em": em,
        "f1": round(f1, 4),
    }


def _span_scores(predicted: str, golds: tuple[str, ...]) -> tuple[float, float]:
    """Span EM and token F1 of an answer: the best over the gold answers (0 without any)."""
    return (
        max((answer_em(predicted, g) for g in golds), default=0.0),
        max((span_f1(predicted, g) for g in golds), default=0.0),
    )
