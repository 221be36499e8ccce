"""The finished batches of a build in progress, kept on disk beside the index folder so that a
build stopped at any point (Ctrl-C, kill -9, a full disk) goes on from its last finished batch.

`.<index>.parts/` holds `key.json` (what the vectors depend on: model, runtime, chunking) and one
folder per batch: its chunk and sentence records, their vectors and `part.json` (its articles'
content hashes and counts). A batch folder is written under a temporary name and renamed when
complete, so a batch is there whole or not at all. The folder goes once its build is swapped in.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from de06qa import store
from de06qa.documents import Article

log = logging.getLogger(__name__)

_DONE = "part.json"


@dataclass(frozen=True)
class Part:
    folder: Path
    docs: dict[str, str]  # doc_id -> content hash
    chunks: int
    sentences: int

    def chunk_records(self) -> Iterator[dict[str, Any]]:
        return store.read_jsonl(self.folder / "chunks.jsonl")

    def sentence_records(self) -> Iterator[dict[str, Any]]:
        return store.read_jsonl(self.folder / "sentences.jsonl")

    def vectors(self) -> np.ndarray:
        return np.asarray(np.load(self.folder / "vectors.npy"), np.float32)

    def sentence_vectors(self) -> np.ndarray:
        return np.asarray(np.load(self.folder / "sentence_vectors.npy"), np.float32)


class Parts:
    def __init__(self, folder: Path, index_dir: Path) -> None:
        self.folder, self.index_dir = folder, index_dir
        self.next = 0

    @classmethod
    def open(cls, index_dir: Path, key: dict[str, Any]) -> Parts:
        """The batches a stopped build of `index_dir` left, if it embedded as this one will
        (same `key`); otherwise an empty place for this build's batches."""
        index_dir = index_dir.resolve()
        folder = index_dir.parent / f".{index_dir.name}.parts"
        parts = cls(folder, index_dir)
        try:
            same = json.loads((folder / "key.json").read_text(encoding="utf-8")) == key
        except (OSError, ValueError):
            same = False
        if not same:
            parts.clear()
            try:
                folder.mkdir(parents=True)
                (folder / "key.json").write_text(json.dumps(key), encoding="utf-8")
            except OSError as e:
                raise store.unwritable(e, index_dir) from e
        return parts

    def finished(self) -> list[Part]:
        """The complete batches, in the order they were written; unfinished ones are removed."""
        out = []
        for sub in sorted(self.folder.iterdir()):
            if not sub.is_dir():
                continue
            try:
                meta = json.loads((sub / _DONE).read_text(encoding="utf-8"))
                out.append(Part(sub, meta["docs"], meta["chunks"], meta["sentences"]))
            except (OSError, ValueError, KeyError, TypeError):
                shutil.rmtree(sub, ignore_errors=True)  # killed while it was being written
        self.next = max((int(p.folder.name) + 1 for p in out if p.folder.name.isdigit()), default=0)
        return out

    def keep_only(self, parts: list[Part]) -> None:
        """Remove every batch but these (those of articles since changed or removed), of those
        `finished` listed."""
        keep = {p.folder for p in parts}
        for sub in self.folder.iterdir():
            if sub.is_dir() and sub not in keep:
                shutil.rmtree(sub, ignore_errors=True)

    def write(
        self,
        articles: list[Article],
        chunks: list[dict[str, Any]],
        sentences: list[tuple[str, int, int]],
        vectors: np.ndarray,
        sentence_vectors: np.ndarray,
    ) -> Part:
        """One finished batch: its articles whole, with their chunks, sentences and vectors."""
        name = f"{self.next:06d}"
        self.next += 1
        tmp = self.folder / f"{name}.tmp"
        docs = {a.doc_id: a.content_hash for a in articles}
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            store.write_jsonl(tmp / "chunks.jsonl", chunks)
            store.write_jsonl(
                tmp / "sentences.jsonl", [{"doc_id": d, "start": a, "end": b} for d, a, b in sentences]
            )
            np.save(tmp / "vectors.npy", vectors)
            np.save(tmp / "sentence_vectors.npy", sentence_vectors)
            meta = {"docs": docs, "chunks": len(chunks), "sentences": len(sentences)}
            (tmp / _DONE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self.folder / name)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise store.unwritable(e, self.index_dir, vectors.nbytes + sentence_vectors.nbytes) from e
        return Part(self.folder / name, docs, len(chunks), len(sentences))

    def size(self) -> int:
        """Bytes the finished batches take."""
        return sum(
            f.stat().st_size for f in self.folder.glob("*/*") if f.is_file() and ".tmp" not in f.parent.name
        )

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
