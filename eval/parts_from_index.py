"""Peak memory of a build after embedding, at any size, without embedding again: write the finished
batches a stopped build would have left for the articles of CORPUS, taking their chunks,
sentences and vectors from an index SRC built from them with the same model and chunking. The next
`de06qa index CORPUS --index-dir TARGET` then goes on from those batches and does only what follows
the embedding (BM25 and term sets, FAISS, writing), which is where a build from scratch peaks.

    .venv/bin/python eval/parts_from_index.py /tmp/a23/index /tmp/rss-half/corpus /tmp/rss-half/index
    /usr/bin/time -v .venv/bin/de06qa index /tmp/rss-half/corpus --index-dir /tmp/rss-half/index

CORPUS holds articles as files directly under it (their ids are the file stems), as
`eval/bench_build.py` writes them; SRC's index holds every one of them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from de06qa import store
from de06qa.config import Settings
from de06qa.dense import DenseIndex
from de06qa.embedding import create_embedder
from de06qa.indexing.parts import Parts
from de06qa.indexing.stages import embedding_key

BATCH = 50  # articles a batch


def rows_by_doc(path: Path) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, r in enumerate(store.read_jsonl(path)):
        out.setdefault(r["doc_id"], []).append((i, r))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src", type=Path, help="an index built with these articles")
    ap.add_argument("corpus", type=Path)
    ap.add_argument("target", type=Path, help="the index folder the next `de06qa index` builds")
    args = ap.parse_args()
    settings = Settings.from_env().with_(index_dir=args.target)
    parts = Parts.open(args.target, embedding_key(settings, create_embedder(settings)))
    docs = store.read_manifest(args.src)["documents"]
    want = sorted(p.stem for p in args.corpus.iterdir() if p.is_file() and p.stem in docs)
    chunks, sentences = rows_by_doc(args.src / "chunks.jsonl"), rows_by_doc(args.src / "sentences.jsonl")
    vectors = DenseIndex.load(args.src).vectors()
    sentence_vectors = store.sentence_vectors(args.src)
    for b in range(0, len(want), BATCH):
        batch = want[b : b + BATCH]
        cs = [x for d in batch for x in chunks.get(d, [])]
        ss = [x for d in batch for x in sentences.get(d, [])]
        parts.write(
            [SimpleNamespace(doc_id=d, content_hash=docs[d]["content_hash"]) for d in batch],
            [r for _, r in cs],
            [(r["doc_id"], r["start"], r["end"]) for _, r in ss],
            vectors[[i for i, _ in cs]],
            np.asarray(sentence_vectors[[i for i, _ in ss]]),
        )
    print(f"{len(want)} articles, {len(vectors)} passages in {args.src}; batches in {parts.folder}")


if __name__ == "__main__":
    main()
