"""How often the candidates the ranker sees hold a relevant chunk (a chunk of the gold article
holding a gold answer), by candidates a side (the top k by BM25 and the top k by cosine; the
product takes `search.retrieval.CANDIDATES`). What the ranking can reach at most.

    .venv/bin/python eval/candidate_recall.py --index-dir /tmp/a23/index \
        --questions /tmp/ext/vn/questions.heldout.jsonl [--limit 600]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from de06qa.config import Settings
from de06qa.embedding import create_embedder
from de06qa.evaluation import load_questions
from de06qa.search import Searcher
from de06qa.search.retrieval import CANDIDATES


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index-dir", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=600)
    args = ap.parse_args()
    questions = [q for q in load_questions(args.questions) if q.answerable][: args.limit]
    settings = Settings.from_env().with_(index_dir=args.index_dir)
    searcher = Searcher.open(settings, create_embedder(settings))
    chunks = searcher.backend.data.chunks
    queries = searcher.analyse([q.question for q in questions])
    for k in sorted({50, CANDIDATES, 2 * CANDIDATES, 4 * CANDIDATES}):
        held = 0
        for q, query in zip(questions, queries, strict=True):
            rows = searcher.backend.candidates(query, k).rows.tolist()
            held += any(
                chunks[r].doc_id == q.doc_id and any(a in chunks[r].text for a in q.answers) for r in rows
            )
        mark = "  (the product's)" if k == CANDIDATES else ""
        print(f"{k:4d} a side: a relevant chunk among the candidates for {held / len(questions):.3f}{mark}")
    print(f"# {len(questions)} questions; rerun: .venv/bin/python eval/candidate_recall.py "
          f"--index-dir {args.index_dir} --questions {args.questions} --limit {args.limit}")  # fmt: skip


if __name__ == "__main__":
    main()
