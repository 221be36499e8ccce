"""What ranking reads of each chunk's words, computed once when the index is built: the chunk's
folded terms, each of its sentences' folded syllables and syllable pairs (`corpus.terms_of`), as
ids of the folded BM25 vocabulary, and which kinds of answer (count, date, name …) the chunk
holds. A question then reads a few arrays for its candidates instead of re-reading their text, so
its cost does not grow with how many of its candidates it has not seen before.

Stored in the index folder as `terms_*.npy` (row pointers and ids, CSR-style); the Milvus
backend computes them for the candidate rows of each question (it holds no corpus)."""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from de06qa.locate import KIND_PATTERNS, kinds_present
from de06qa.text import fold

_SYLLABLE = re.compile(r"\w+(?:[.,/]\w+)*")


def terms_of(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(folded lower-case syllables, syllable pairs) of a text; numbers keep their separators ("1.818")."""
    toks = _SYLLABLE.findall(fold(text).lower())
    return frozenset(toks), frozenset(map("_".join, zip(toks, toks[1:])))  # (C-speed joins: hot)


KINDS = tuple(KIND_PATTERNS)  # bit i of a chunk's `kinds` says whether it holds an answer of KINDS[i]
_FILES = ("chunk_ptr", "chunk_ids", "sentence_of_chunk", "sentence_ptr", "sentence_ids", "kinds")


@dataclass(frozen=True, eq=False)
class TermSets:
    chunk_ptr: np.ndarray  # chunk row -> its ids in chunk_ids[chunk_ptr[r]:chunk_ptr[r + 1]]
    chunk_ids: np.ndarray
    sentence_of_chunk: np.ndarray  # chunk row -> its sentences' rows [s[r], s[r + 1]) below
    sentence_ptr: np.ndarray  # sentence row -> its ids in sentence_ids
    sentence_ids: np.ndarray
    kinds: np.ndarray  # chunk row -> bit mask over KINDS

    def has_kind(self, rows: np.ndarray, kind: str | None) -> np.ndarray:
        if kind is None:
            return np.zeros(len(rows), np.float32)
        return np.asarray((self.kinds[rows] >> KINDS.index(kind)) & 1, np.float32)

    def chunk_hits(self, rows: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """(rows × wanted) booleans: which of the wanted ids each chunk holds."""
        return _hits(self.chunk_ptr, self.chunk_ids, rows, wanted)

    def sentence_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sentence rows of these chunks, and for each the position of its chunk in `rows`."""
        lo, hi = self.sentence_of_chunk[rows], self.sentence_of_chunk[rows + 1]
        return concat_ranges(lo, hi), np.repeat(np.arange(len(rows)), hi - lo)

    def sentence_hits(self, sentences: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        return _hits(self.sentence_ptr, self.sentence_ids, sentences, wanted)

    def save(self, folder: Path) -> None:
        for name in _FILES:
            np.save(folder / f"terms_{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> TermSets | None:
        """The folder's term sets, mapped from disk; None for an index built before they were stored."""
        if not (folder / "terms_kinds.npy").exists():
            return None
        return cls(*(np.load(folder / f"terms_{name}.npy", mmap_mode="r") for name in _FILES))


class TermSetsBuilder:
    """Term sets filled a chunk at a time; ids come from (and new terms go into) `vocab`."""

    def __init__(self, vocab: MutableMapping[str, int]) -> None:
        self.vocab = vocab
        self.chunk_ids, self.sentence_ids = array("i"), array("i")
        self.chunk_ptr, self.sentence_of_chunk, self.sentence_ptr = (
            array("q", [0]),
            array("q", [0]),
            array("q", [0]),
        )
        self.kinds = array("B")

    def _ids(self, terms: Iterable[str]) -> list[int]:
        vocab = self.vocab
        return [vocab.setdefault(t, len(vocab)) for t in terms]

    def add(self, text: str, folded: Iterable[str], sentences: Iterable[str]) -> None:
        """One chunk: its text, its folded terms, its sentences' texts."""
        self.chunk_ids.extend(self._ids(set(folded)))
        self.chunk_ptr.append(len(self.chunk_ids))
        for s in sentences:
            syllables, pairs = terms_of(s)
            self.sentence_ids.extend(self._ids(syllables | pairs))
            self.sentence_ptr.append(len(self.sentence_ids))
        self.sentence_of_chunk.append(len(self.sentence_ptr) - 1)
        present = kinds_present(text)
        self.kinds.append(sum(1 << i for i, k in enumerate(KINDS) if k in present))

    def copy(self, old: TermSets, rows: np.ndarray) -> None:
        """Append these chunks of an index whose term sets use the same ids (unchanged articles
        keep theirs: an update does not re-read their text)."""
        lo, hi = old.chunk_ptr[rows], old.chunk_ptr[rows + 1]
        _append(self.chunk_ptr, len(self.chunk_ids) + np.cumsum(hi - lo))
        _append(self.chunk_ids, old.chunk_ids[concat_ranges(lo, hi)])
        s_lo, s_hi = old.sentence_of_chunk[rows], old.sentence_of_chunk[rows + 1]
        sentences = concat_ranges(s_lo, s_hi)
        _append(self.sentence_of_chunk, len(self.sentence_ptr) - 1 + np.cumsum(s_hi - s_lo))
        lo, hi = old.sentence_ptr[sentences], old.sentence_ptr[sentences + 1]
        _append(self.sentence_ptr, len(self.sentence_ids) + np.cumsum(hi - lo))
        _append(self.sentence_ids, old.sentence_ids[concat_ranges(lo, hi)])
        _append(self.kinds, old.kinds[rows])

    def done(self) -> TermSets:
        return TermSets(
            np.frombuffer(self.chunk_ptr, np.int64),
            np.frombuffer(self.chunk_ids, np.int32),
            np.frombuffer(self.sentence_of_chunk, np.int64),
            np.frombuffer(self.sentence_ptr, np.int64),
            np.frombuffer(self.sentence_ids, np.int32),
            np.frombuffer(self.kinds, np.uint8),
        )


def _append(buf: array[int], values: np.ndarray) -> None:
    """Append an array's values to a buffer of the same item type ("q", "i", "B")."""
    buf.frombytes(np.asarray(values, np.dtype(buf.typecode)).tobytes())


def concat_ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The concatenation of arange(lo[i], hi[i])."""
    n = np.maximum(hi - lo, 0)
    if n.sum() == 0:
        return np.zeros(0, np.int64)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    return starts + np.arange(n.sum())


def _hits(ptr: np.ndarray, ids: np.ndarray, rows: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    out = np.zeros((len(rows), len(wanted)), bool)
    if len(rows) == 0 or len(wanted) == 0:
        return out
    lo, hi = ptr[rows], ptr[np.asarray(rows) + 1]
    seg = ids[concat_ranges(lo, hi)]
    owner = np.repeat(np.arange(len(rows)), hi - lo)
    order = np.argsort(wanted, kind="stable")
    ranked = wanted[order]
    pos = np.minimum(np.searchsorted(ranked, seg), len(ranked) - 1)
    hit = ranked[pos] == seg
    out[owner[hit], order[pos[hit]]] = True
    return out
