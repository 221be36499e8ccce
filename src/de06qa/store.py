"""The index folder: manifest, articles, chunks, dense and lexical indexes; atomic save and load.

Layout (self-describing, in the spirit of bm25s):
  manifest.json        format version, settings, model profile, per-document hash and metadata
  articles.jsonl       one cleaned article per line (the text every offset refers to)
  chunks.jsonl         one chunk per line, in row order of the vectors
  sentences.jsonl      the answer-candidate sentences (doc_id, start, end), row order of sentences.npy
  sentences.npy        their embeddings, computed at index time so a query embeds only itself
  vectors.faiss        chunk embeddings
  bm25_words/, bm25_folded/   the two lexical fields
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from de06qa.dense import DenseIndex
from de06qa.documents import Article, Chunk, Span
from de06qa.errors import IndexDamaged, IndexIncompatible, IndexMissing
from de06qa.lexical import LexicalIndex

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelInfo:
    model: str
    profile: str
    dim: int
    segmenter: str


@dataclass(frozen=True)
class IndexData:
    manifest: dict[str, Any]
    articles: dict[str, Article]
    chunks: list[Chunk]
    sentences: list[Span]  # doc-level spans; `sentence_docs[i]` is the doc of sentences[i]
    sentence_docs: list[str]
    sentence_vectors: np.ndarray
    dense: DenseIndex
    lexical: LexicalIndex


def _article_record(a: Article) -> dict[str, Any]:
    d = asdict(a)
    d.pop("dropped_lines")
    d["provinces"], d["provinces_2025"] = list(a.provinces), list(a.provinces_2025)
    return d


def _chunk_record(c: Chunk) -> dict[str, Any]:
    return {
        "chunk_id": c.chunk_id,
        "doc_id": c.doc_id,
        "start": c.start,
        "end": c.end,
        "text": c.text,
        "words": list(c.words),
        "folded": list(c.folded),
        "sentences": [[s.start, s.end] for s in c.sentences],
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def save(data: IndexData, target: Path) -> None:
    """Write into a temporary sibling folder, then swap it in, so a crash never leaves a half index."""
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _write_jsonl(tmp / "articles.jsonl", [_article_record(a) for a in data.articles.values()])
        _write_jsonl(tmp / "chunks.jsonl", [_chunk_record(c) for c in data.chunks])
        _write_jsonl(
            tmp / "sentences.jsonl",
            [
                {"doc_id": d, "start": s.start, "end": s.end}
                for s, d in zip(data.sentences, data.sentence_docs)
            ],
        )
        np.save(tmp / "sentences.npy", data.sentence_vectors)
        data.dense.save(tmp)
        data.lexical.save(tmp)
        # The manifest goes last: its presence marks a complete folder.
        (tmp / MANIFEST).write_text(json.dumps(data.manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, target: Path) -> None:
    # Keep files that are not ours (the README in the default index/ folder).
    if target.exists():
        for extra in target.iterdir():
            if not (tmp / extra.name).exists() and not extra.name.startswith("."):
                if extra.is_file() and extra.suffix == ".md":
                    shutil.copy2(extra, tmp / extra.name)
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        raise IndexMissing(f"no index in {folder}; build it with: de06qa index seeds --index-dir {folder}")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise IndexDamaged(
            f"{path} is damaged; rebuild with: de06qa index --rebuild --index-dir {folder}"
        ) from e
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexIncompatible(
            f"{folder} has index format {manifest.get('format_version')}, this de06qa reads {FORMAT_VERSION}; "
            f"rebuild with: de06qa index --rebuild --index-dir {folder}"
        )
    return manifest


def check_model(manifest: dict[str, Any], model: ModelInfo, folder: Path) -> None:
    built = manifest.get("model", {})
    if built.get("model") != model.model or built.get("profile") != model.profile:
        raise IndexIncompatible(
            f"{folder} was built with model {built.get('model')!r}, not {model.model!r}; rebuild with: "
            f"de06qa index --rebuild --index-dir {folder} (or set DE06QA_MODEL={built.get('model')})"
        )
    if built.get("segmenter") != model.segmenter:
        raise IndexIncompatible(
            f"{folder} was built with segmenter {built.get('segmenter')!r}; rebuild with: "
            f"de06qa index --rebuild --index-dir {folder}"
        )


def load(folder: Path) -> IndexData:
    manifest = read_manifest(folder)
    try:
        articles = {}
        for r in _read_jsonl(folder / "articles.jsonl"):
            r["provinces"], r["provinces_2025"] = tuple(r["provinces"]), tuple(r["provinces_2025"])
            articles[r["doc_id"]] = Article(**r)
        chunks = []
        for r in _read_jsonl(folder / "chunks.jsonl"):
            text = articles[r["doc_id"]].text
            chunks.append(
                Chunk(
                    r["chunk_id"],
                    r["doc_id"],
                    r["start"],
                    r["end"],
                    r["text"],
                    tuple(r["words"]),
                    tuple(r["folded"]),
                    tuple(Span(a, b, text[a:b]) for a, b in r["sentences"]),
                )
            )
        sent_rows = _read_jsonl(folder / "sentences.jsonl")
        sentences = [
            Span(r["start"], r["end"], articles[r["doc_id"]].text[r["start"] : r["end"]]) for r in sent_rows
        ]
        vectors = np.load(folder / "sentences.npy")
    except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
        raise IndexDamaged(
            f"{folder} is incomplete or damaged ({type(e).__name__}); rebuild with: "
            f"de06qa index --rebuild --index-dir {folder}"
        ) from e
    dense = DenseIndex.load(folder)
    if dense.size != len(chunks) or len(vectors) != len(sentences):
        raise IndexDamaged(
            f"{folder} is inconsistent; rebuild with: de06qa index --rebuild --index-dir {folder}"
        )
    return IndexData(
        manifest,
        articles,
        chunks,
        sentences,
        [r["doc_id"] for r in sent_rows],
        vectors,
        dense,
        LexicalIndex.load(folder),
    )
