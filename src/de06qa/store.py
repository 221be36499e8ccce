"""The index folder: manifest, articles, chunks, dense and lexical indexes; atomic save and load.

Layout (self-describing, in the spirit of bm25s):
  manifest.json        format version, settings, model profile, per-document hash and metadata
  articles.jsonl       one cleaned article per line (the text every offset refers to), with the
                       context terms its chunks' BM25 rows inherit (reused by an update)
  chunks.jsonl         one chunk per line, in row order of the vectors
  sentences.jsonl      the answer-candidate sentences (doc_id, start, end), row order of sentences.npy
  sentences.npy        their embeddings, computed at index time so a query embeds only itself
  vectors.faiss        chunk embeddings (vector_ids.npy: row -> FAISS id, when an update left dead rows)
  bm25_words/, bm25_folded/   the two lexical fields
  terms_*.npy          what ranking reads of each chunk's words (termsets.py)

Written by FolderWriter a piece at a time into a temporary sibling, swapped in whole.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from de06qa.dense import DenseIndex
from de06qa.documents import Article, Chunk, Span
from de06qa.errors import IndexBusy, IndexDamaged, IndexIncompatible, IndexMissing, IndexUnwritable
from de06qa.lexical import LexicalIndex
from de06qa.termsets import TermSets

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelInfo:
    model: str
    profile: str
    dim: int
    segmenter: str
    runtime: str = ""  # "onnx-int8", "onnx-fp32", "torch": vectors of one model differ slightly


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
    term_sets: TermSets | None = None  # None: an index built before they were stored


def _article_record(a: Article, context: tuple[list[str], list[str]]) -> dict[str, Any]:
    d = asdict(a)
    d.pop("dropped_lines")
    d["provinces"], d["provinces_2025"], d["pages"] = list(a.provinces), list(a.provinces_2025), list(a.pages)
    d["context_words"], d["context_folded"] = context
    return d


def article_contexts(folder: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Each article's context terms (indexing.stages.context_terms) as the index folder stored
    them: an update reuses them for unchanged articles instead of segmenting every title again
    (~2.7 ms an article: a minute at 23k). Articles of an index written before they were stored
    are left out."""
    return {
        r["doc_id"]: (r["context_words"], r["context_folded"])
        for r in read_jsonl(folder / "articles.jsonl")
        if "context_words" in r
    }


def chunk_record(c: Chunk) -> dict[str, Any]:
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


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    return (record for _, record in _jsonl_lines(path))


def _jsonl_lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    # One record at a time: a 100k-chunk index never holds all its parsed JSON at once.
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line, json.loads(line)


def unwritable(e: OSError, target: Path, needed: int = 0) -> IndexUnwritable:
    """The one-line message for an index that cannot be written at `target`."""
    where = next((p for p in (target, *target.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(where).free
    # numpy reports a short write without an errno ("236160 requested and 28640 written")
    if e.errno in (errno.ENOSPC, errno.EDQUOT) or (e.errno is None and "written" in str(e)):
        return IndexUnwritable(
            f"the disk holding {target} is full ({free / 1e6:.1f} MB free, the index needs about "
            f"{max(needed, 1) / 1e6:.1f} MB): free some space or give --index-dir on another disk; "
            "the previous index is untouched"
        )
    return IndexUnwritable(
        f"cannot write the index at {target} ({e.strerror or e}): give --index-dir a folder you can "
        "write; the previous index is untouched"
    )


@contextmanager
def build_lock(target: Path) -> Iterator[None]:
    """One build at a time per index folder. flock is released by the kernel when the process
    dies, even by SIGKILL, so a crashed build never leaves a stale lock behind."""
    target = target.resolve()
    path = target.parent / f".{target.name}.lock"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("a+")
    except OSError as e:
        raise unwritable(e, target) from e
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise IndexBusy(
                f"another de06qa index (pid {holder}) is building {target}; wait for it to finish, then run again"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        # Leftovers of builds killed before their swap: safe to remove while we hold the lock.
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        yield


class FolderWriter:
    """An index folder written piece by piece (articles, then chunk and sentence lines as they
    stream, sentence vectors appended to their file) into a temporary sibling that `finish` swaps
    in whole, so neither the build nor a crash ever holds or leaves half an index."""

    def __init__(self, target: Path, tmp: Path) -> None:
        self.target, self.tmp = target, tmp
        self.chunks = (tmp / "chunks.jsonl").open("w", encoding="utf-8")
        self.sentences = (tmp / "sentences.jsonl").open("w", encoding="utf-8")
        self.vectors: BinaryIO | None = None  # the sentence vectors' file, once started
        self._vectors_end = 0  # its size once every announced row is in

    def articles(self, articles: list[Article], contexts: dict[str, tuple[list[str], list[str]]]) -> None:
        write_jsonl(self.tmp / "articles.jsonl", [_article_record(a, contexts[a.doc_id]) for a in articles])

    def chunk(self, record: dict[str, Any], line: str | None = None) -> None:
        """A chunk's record, or its `line` as an earlier index wrote it."""
        if line is None:
            line = json.dumps(record, ensure_ascii=False)
        self.chunks.write(line if line.endswith("\n") else line + "\n")

    def sentence(self, doc_id: str, start: int, end: int) -> None:
        self.sentences.write(
            json.dumps({"doc_id": doc_id, "start": start, "end": end}, ensure_ascii=False) + "\n"
        )

    def start_sentence_vectors(self, n: int, dim: int) -> None:
        """The sentence vectors' file: `n` rows of `dim` float32, then given in order, in blocks."""
        self.vectors = (self.tmp / "sentences.npy").open("wb")
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
        np.lib.format.write_array_header_1_0(self.vectors, {**header, "shape": (n, dim)})
        self._vectors_end = self.vectors.tell() + n * dim * 4

    def sentence_vector_rows(self, block: np.ndarray) -> None:
        assert self.vectors is not None, "start_sentence_vectors first"
        self.vectors.write(np.ascontiguousarray(block, np.float32).tobytes())

    def end_sentence_vectors(self) -> None:
        assert self.vectors is not None, "start_sentence_vectors first"
        end = self.vectors.tell()
        self.vectors.close()
        if end != self._vectors_end:  # (a bug, not an input: the header would lie)
            raise RuntimeError(
                f"sentence vectors end at byte {end}, the header announced {self._vectors_end}"
            )

    def close(self) -> None:
        for f in (self.chunks, self.sentences, self.vectors):
            try:
                if f is not None:
                    f.close()
            except OSError:  # (a full disk fails the last flush; the folder is removed anyway)
                pass

    def finish(
        self, manifest: dict[str, Any], dense: DenseIndex, lexical: LexicalIndex, term_sets: TermSets
    ) -> None:
        self.chunks.close()
        self.sentences.close()
        dense.save(self.tmp)
        lexical.save(self.tmp)
        term_sets.save(self.tmp)
        # The manifest goes last: its presence marks a complete folder.
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        _swap_in(self.tmp, self.target)


@contextmanager
def writing(target: Path, needed: int) -> Iterator[FolderWriter]:
    """A FolderWriter for `target`; on any failure its temporary folder goes and the previous
    index stays. `needed`: bytes the index will take, roughly (for the disk-full message)."""
    target = target.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as e:
        raise unwritable(e, target, needed) from e
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the index from a server running as another user
    writer = None
    try:
        writer = FolderWriter(target, tmp)
        yield writer
    except OSError as e:
        if writer is not None:
            writer.close()
        shutil.rmtree(tmp, ignore_errors=True)  # first: the free space then counts without it
        raise unwritable(e, target, needed) from e
    except BaseException:
        if writer is not None:
            writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def chunk_lines(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The chunk records of an index folder, one at a time, in row order, each with its JSON
    line (an update copies an unchanged chunk's line as it is)."""
    return _jsonl_lines(folder / "chunks.jsonl")


def sentence_records(folder: Path) -> Iterator[dict[str, Any]]:
    """The sentence records (doc_id, start, end) of an index folder, in row order."""
    return read_jsonl(folder / "sentences.jsonl")


def check_complete(folder: Path, manifest: dict[str, Any]) -> tuple[DenseIndex, TermSets | None]:
    """That the folder's files are there and agree with its manifest, without reading its
    records (a build reads them as it streams); returns its dense index and its term sets."""
    dense = DenseIndex.load(folder)
    counts = manifest.get("counts", {})
    try:
        term_sets = TermSets.load(folder)
        n_sentences = len(sentence_vectors(folder))
        missing = [
            n for n in ("articles.jsonl", "chunks.jsonl", "sentences.jsonl") if not (folder / n).is_file()
        ]
    except (OSError, ValueError) as e:
        raise _damaged(folder, f"incomplete or damaged ({type(e).__name__})") from e
    if (
        missing
        or dense.size != counts.get("chunks")
        or n_sentences != counts.get("sentences")
        or (term_sets is not None and len(term_sets.kinds) != dense.size)
    ):
        raise _damaged(folder, "incomplete (its files do not match its manifest)")
    return dense, term_sets


def sentence_vectors(folder: Path) -> np.ndarray:
    """The sentence vectors, mapped from disk: a large index's are read as they are needed."""
    return np.asarray(np.load(folder / "sentences.npy", mmap_mode="r"))


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(rc == 0)


def _swap_in(tmp: Path, target: Path) -> None:
    if not target.exists():
        tmp.rename(target)
        return
    # Keep files that are not ours (the README in the default index/ folder).
    for extra in target.iterdir():
        if extra.is_file() and extra.suffix == ".md" and not (tmp / extra.name).exists():
            shutil.copy2(extra, tmp / extra.name)
    # One atomic exchange: at every instant `target` is either the old or the new complete index,
    # so a build killed at any moment leaves a loadable index.
    if _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")  # two renames: a brief gap
    target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(folder: Path, base: Path | None = None) -> dict[str, Any]:
    """The manifest of `folder`, read through `base` when given (a pinned path to the same
    folder); messages always name `folder`, the path the user knows."""
    path = (base or folder) / MANIFEST
    if not path.exists():
        raise IndexMissing(f"no index in {folder}; build it with: de06qa index seeds --index-dir {folder}")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise IndexDamaged(
            f"{folder / MANIFEST} is damaged; rebuild with: de06qa index --rebuild --index-dir {folder}"
        ) from e
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexIncompatible(
            f"{folder} has index format {manifest.get('format_version')}, this de06qa reads {FORMAT_VERSION}; "
            f"rebuild with: de06qa index --rebuild --index-dir {folder}"
        )
    return manifest


def check_model(manifest: dict[str, Any], model: ModelInfo, where: str, rebuild: str = "") -> None:
    """That the index at `where` was built with this model; `rebuild` is the command that
    rebuilds it (default: the index folder's)."""
    rebuild = rebuild or f"de06qa index --rebuild --index-dir {where}"
    built = manifest.get("model", {})
    if built.get("model") != model.model or built.get("profile") != model.profile:
        raise IndexIncompatible(
            f"{where} was built with model {built.get('model')!r}, not {model.model!r}; rebuild with: "
            f"{rebuild} (or set DE06QA_MODEL={built.get('model')})"
        )
    if built.get("segmenter") != model.segmenter:
        raise IndexIncompatible(
            f"{where} was built with segmenter {built.get('segmenter')!r}; rebuild with: {rebuild}"
        )


@contextmanager
def _pinned(folder: Path) -> Iterator[Path]:
    """A path to the folder as it is now: a rebuild that swaps in a new folder while we read
    cannot give us half old and half new files (Linux /proc/self/fd; elsewhere the plain path)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield folder
        return
    try:
        pinned = Path(f"/proc/self/fd/{fd}")
        yield pinned if pinned.is_dir() else folder
    finally:
        os.close(fd)


def _damaged(folder: Path, what: str) -> IndexDamaged:
    return IndexDamaged(f"{folder} is {what}; rebuild with: de06qa index --rebuild --index-dir {folder}")


def load(folder: Path) -> IndexData:
    with _pinned(folder) as base:
        manifest = read_manifest(folder, base)
        try:
            articles = {}
            for r in read_jsonl(base / "articles.jsonl"):
                for key in ("provinces", "provinces_2025", "pages"):
                    r[key] = tuple(r.get(key, ()))
                r.pop("context_words", None), r.pop("context_folded", None)  # (the build's)
                articles[r["doc_id"]] = Article(**r)
            chunks = []
            for r in read_jsonl(base / "chunks.jsonl"):
                text = articles[r["doc_id"]].text
                chunks.append(
                    Chunk(
                        r["chunk_id"],
                        r["doc_id"],
                        r["start"],
                        r["end"],
                        r["text"],
                        # Interned: the same few thousand terms recur in every chunk; one
                        # string object each instead of one per occurrence. With the streaming read,
                        # the loaded 100k-chunk index takes 0.7 GB instead of 2.3 GB.
                        tuple(map(sys.intern, r["words"])),
                        tuple(map(sys.intern, r["folded"])),
                        tuple(Span(a, b, text[a:b]) for a, b in r["sentences"]),
                    )
                )
            sentences, sentence_docs = [], []
            for r in read_jsonl(base / "sentences.jsonl"):
                sentences.append(
                    Span(r["start"], r["end"], articles[r["doc_id"]].text[r["start"] : r["end"]])
                )
                sentence_docs.append(r["doc_id"])
            vectors = sentence_vectors(base)
            dense = DenseIndex.load(base)
            lexical = LexicalIndex.load(base)
            term_sets = TermSets.load(base)
        except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError, IndexDamaged) as e:
            raise _damaged(folder, f"incomplete or damaged ({type(e).__name__})") from e
    counts = manifest.get("counts", {})
    if not (dense.size == len(chunks) == counts.get("chunks") and len(vectors) == len(sentences)):
        raise _damaged(folder, "inconsistent (its files do not match its manifest)")
    if term_sets is not None and len(term_sets.kinds) != len(chunks):
        raise _damaged(folder, "inconsistent (its files do not match its manifest)")
    return IndexData(manifest, articles, chunks, sentences, sentence_docs, vectors, dense, lexical, term_sets)
