"""Offline evaluation: run a question set through each retrieval mode and score it.

A chunk is relevant to a question when it comes from the gold article and contains one of the gold
answer strings. Metrics follow their usual definitions (binary relevance), and the run and qrels are
written in TREC format so that an external evaluator (ir-measures) can confirm the numbers.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from de06qa.errors import De06qaError
from de06qa.search import MODES, Searcher, SearchResult

DEPTH = 10
KINDS = ("direct", "paraphrase", "accentless", "english", "unanswerable")


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


def relevant_chunks(searcher: Searcher, q: Question) -> set[str]:
    if not q.answerable:
        return set()
    return {
        c.chunk_id
        for c in searcher.data.chunks
        if c.doc_id == q.doc_id and any(a in c.text for a in q.answers)
    }


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


def evaluate(
    searcher: Searcher, questions: list[Question], modes: tuple[str, ...] = MODES, out: Path | None = None
) -> dict[str, Any]:
    """Metrics per mode and per question kind; writes run/qrels/metrics/failures when `out` is set."""
    answerable = [q for q in questions if q.answerable]
    rels = {q.qid: relevant_chunks(searcher, q) for q in answerable}
    report: dict[str, Any] = {"questions": len(questions), "answerable": len(answerable), "modes": {}}
    run_lines: list[str] = []
    failures: list[dict[str, Any]] = []
    for mode in modes:
        results = dict(
            zip(
                (q.qid for q in questions), searcher.search_many([q.question for q in questions], DEPTH, mode)
            )
        )
        per_q = {
            q.qid: _per_question([p["chunk_id"] for p in results[q.qid].to_dict()["results"]], rels[q.qid])
            for q in answerable
        }
        by_kind = defaultdict(list)
        for q in answerable:
            by_kind[q.kind].append(per_q[q.qid])
        mode_report: dict[str, Any] = {
            "all": _mean(list(per_q.values())),
            "by_kind": {k: _mean(v) for k, v in by_kind.items()},
        }
        if mode == "hybrid":
            mode_report.update(_answer_metrics(questions, results))
            for q in answerable:
                if per_q[q.qid]["hit@1"] < 1:
                    failures.append(_failure(q, results[q.qid], rels[q.qid]))
            for q in questions:
                res = results[q.qid].to_dict()
                run_lines += [
                    f"{q.qid} Q0 {p['chunk_id']} {p['rank']} {p['score']:.6f} de06qa-{mode}"
                    for p in res["results"]
                ]
        report["modes"][mode] = mode_report
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        (out / "run.trec").write_text("\n".join(run_lines) + "\n", encoding="utf-8")
        qrels = [f"{qid} 0 {c} 1" for qid, cs in rels.items() for c in sorted(cs)]
        (out / "qrels.trec").write_text("\n".join(qrels) + "\n", encoding="utf-8")
        with (out / "failures.jsonl").open("w", encoding="utf-8") as f:
            for row in failures:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return report


def _answer_metrics(questions: list[Question], results: dict[str, SearchResult]) -> dict[str, Any]:
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    sent_ok = span_ok = flagged_wrong = 0
    for q in answerable:
        a = results[q.qid].answer
        if a is not None and a.doc_id == q.doc_id and any(x in a.sentence for x in q.answers):
            sent_ok += 1
            span_ok += any(x in a.text or a.text in x for x in q.answers if a.text)
        flagged_wrong += not results[q.qid].answerable
    flagged = [q for q in questions if not results[q.qid].answerable]
    true_flags = sum(1 for q in flagged if not q.answerable)
    return {
        "answer_sentence_accuracy": round(sent_ok / len(answerable), 4) if answerable else 0.0,
        "answer_span_accuracy": round(span_ok / len(answerable), 4) if answerable else 0.0,
        "abstention": {
            "precision": round(true_flags / len(flagged), 4) if flagged else 0.0,
            "recall": round(true_flags / len(unanswerable), 4) if unanswerable else 0.0,
            "answerable_wrongly_flagged": round(flagged_wrong / len(answerable), 4) if answerable else 0.0,
        },
    }


def _failure(q: Question, res: SearchResult, rel: set[str]) -> dict[str, Any]:
    d = res.to_dict()
    first = next((p["rank"] for p in d["results"] if p["chunk_id"] in rel), None)
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
