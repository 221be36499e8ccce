"""BM25 over two fields: underthesea words (accented, tone-unified) and accent-folded syllables.

A question with diacritics matches both fields on a true match but only the folded field on a
folded coincidence (dê/dế), so the accented match wins; a question typed without diacritics still
finds its words through the folded field.
"""

from __future__ import annotations

import json
import logging
from array import array
from itertools import chain
from pathlib import Path

import bm25s
import numpy as np
import scipy.sparse as sp

from de06qa.errors import IndexDamaged

FIELDS = ("words", "folded")
# bm25s sets its logger to DEBUG on import and prints "Building index from tokens" on every build.
logging.getLogger("bm25s").setLevel(logging.WARNING)


def _idf(n_docs: int, df: np.ndarray | int) -> np.ndarray:
    """BM25's (Lucene) idf, log(1 + (N - df + 0.5) / (df + 0.5)), as bm25s computes it."""
    return np.log1p((n_docs - np.asarray(df) + 0.5) / (np.asarray(df) + 0.5))


class FieldCounts:
    """One BM25 field built from streamed documents: documents are reduced to (term id, count)
    pairs in compact arrays a few thousand at a time, so a build holds counts, not term lists,
    and the scores are computed once at the end as bm25s computes them (Lucene idf and term
    weight)."""

    # Documents counted together: numpy counts a block's terms at once, where a Counter and a
    # generator per document cost ~1 µs a term (an update of a 200k-passage index counts every
    # kept passage again: ~50 s that way).
    BLOCK = 2048

    def __init__(self, vocab: dict[str, int] | None = None) -> None:
        # An update starts from the previous index's ids (term sets stored with them stay valid).
        self.vocab: dict[str, int] = dict(vocab) if vocab else {}
        self.vocab.setdefault("", len(self.vocab))
        self.term_ids = array("i")
        # a term's count in one document, at most 65,535 (BM25 saturates long before)
        self.counts = array("H")
        self.doc_ends = array("q")
        self.doc_lengths = array("i")
        self._pending: list[list[str]] = []

    def add(self, terms: list[str]) -> None:
        # bm25s indexes an empty document as [""] (row ids stay aligned): the same here.
        self._pending.append(terms or [""])
        if len(self._pending) >= self.BLOCK:
            self._count()

    def _count(self) -> None:
        docs, self._pending = self._pending, []
        if not docs:
            return
        vocab = self.vocab
        flat = list(chain.from_iterable(docs))
        for t in dict.fromkeys(flat):  # new terms get ids in order of first appearance
            if t not in vocab:
                vocab[t] = len(vocab)
        ids = np.fromiter(map(vocab.__getitem__, flat), np.int64, len(flat))
        lengths = np.fromiter(map(len, docs), np.int64, len(docs))
        # (document, term) pairs as one key each: unique keys come sorted, grouped by document
        keys, counts = np.unique(
            np.repeat(np.arange(len(docs)), lengths) * len(vocab) + ids, return_counts=True
        )
        self.term_ids.frombytes((keys % len(vocab)).astype(np.int32).tobytes())
        self.counts.frombytes(np.minimum(counts, 65_535).astype(np.uint16).tobytes())
        per_doc = np.bincount(keys // len(vocab), minlength=len(docs))
        start = self.doc_ends[-1] if self.doc_ends else 0
        self.doc_ends.frombytes((start + np.cumsum(per_doc)).astype(np.int64).tobytes())
        self.doc_lengths.frombytes(lengths.astype(np.int32).tobytes())

    def model(self) -> bm25s.BM25:
        self._count()
        model = bm25s.BM25()
        n_docs, n_vocab = len(self.doc_ends), len(self.vocab)
        terms = np.frombuffer(self.term_ids, np.int32)
        ends = np.frombuffer(self.doc_ends, np.int64)
        lengths = np.frombuffer(self.doc_lengths, np.int32)
        df = np.bincount(terms, minlength=n_vocab)
        idf = _idf(n_docs, df).astype(np.float32)
        # score = idf · tf / (tf + k1 · (1 - b + b · length / mean length)), over the (document,
        # term) entries, already grouped by document (CSR rows); in float64 like bm25s, in place.
        norm = model.k1 * ((1 - model.b) + model.b * lengths / (lengths.mean() if n_docs else 1.0))
        data = np.repeat(norm, np.diff(ends, prepend=0))
        tf = np.frombuffer(self.counts, np.uint16)
        data += tf
        np.divide(tf, data, out=data)
        data *= idf[terms]
        data = data.astype(np.float32)
        indptr = np.concatenate([[0], ends])
        matrix = sp.csr_matrix((data, terms, indptr), shape=(n_docs, n_vocab)).tocsc()
        del data
        model.scores = {
            "data": matrix.data,
            "indices": matrix.indices,
            "indptr": matrix.indptr,
            "num_docs": n_docs,
        }
        model.vocab_dict = self.vocab
        model.unique_token_ids_set = set(self.vocab.values())
        model.nonoccurrence_array = None  # (only BM25L and BM25+ use one)
        return model


class LexicalCounts:
    """The two fields of a LexicalIndex, fed one chunk at a time; the folded field's term ids
    continue `folded_vocab` when given."""

    def __init__(self, folded_vocab: dict[str, int] | None = None) -> None:
        self.fields = {"words": FieldCounts(), "folded": FieldCounts(folded_vocab)}

    def add(self, words: list[str], folded: list[str]) -> None:
        self.fields["words"].add(words)
        self.fields["folded"].add(folded)

    def index(self) -> LexicalIndex:
        return LexicalIndex({name: f.model() for name, f in self.fields.items()})


class LexicalIndex:
    def __init__(self, fields: dict[str, bm25s.BM25]) -> None:
        self._fields = fields
        self._vocab = {name: set(m.vocab_dict) for name, m in fields.items()}

    @classmethod
    def build(cls, words: list[list[str]], folded: list[list[str]]) -> LexicalIndex:
        counts = LexicalCounts()
        for w, f in zip(words, folded):
            counts.add(w, f)
        return counts.index()

    def vocab(self, field: str) -> dict[str, int]:
        """The field's term ids."""
        vocab: dict[str, int] = self._fields[field].vocab_dict
        return vocab

    def scores(self, field: str, terms: list[str]) -> np.ndarray:
        """BM25 score of every document for `terms` (terms absent from the corpus are ignored)."""
        model = self._fields[field]
        known = [t for t in terms if t in self._vocab[field] and t]
        if not known:
            return np.zeros(int(model.scores["num_docs"]), dtype=np.float32)
        return np.asarray(model.get_scores(known), dtype=np.float32)

    def idf(self, field: str, terms: tuple[str, ...]) -> dict[str, float]:
        """BM25's idf of each term (0 when unknown): document frequencies come from the index's
        term-by-document matrix."""
        model = self._fields[field]
        n = int(model.scores["num_docs"])
        indptr = model.scores["indptr"]
        vocab = model.vocab_dict
        out = {}
        for t in terms:
            i = vocab.get(t)
            df = int(indptr[i + 1] - indptr[i]) if i is not None and t else 0
            out[t] = float(_idf(n, df)) if df else 0.0
        return out

    @staticmethod
    def saved_vocab(folder: Path, field: str) -> dict[str, int]:
        """A saved field's term ids, without loading its scores."""
        try:
            vocab: dict[str, int] = json.loads(
                (folder / f"bm25_{field}" / "vocab.index.json").read_text("utf-8")
            )
        except (OSError, ValueError) as e:
            raise IndexDamaged(
                f"{folder / f'bm25_{field}'} is missing or damaged; rebuild with: de06qa index --rebuild"
            ) from e
        return vocab

    def save(self, folder: Path) -> None:
        for name, model in self._fields.items():
            model.save(str(folder / f"bm25_{name}"), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        fields = {}
        for name in FIELDS:
            path = folder / f"bm25_{name}"
            try:
                fields[name] = bm25s.BM25.load(str(path), show_progress=False)
            except (OSError, ValueError, KeyError) as e:
                raise IndexDamaged(
                    f"{path} is missing or damaged; rebuild with: de06qa index --rebuild"
                ) from e
        return cls(fields)


class PlainBM25:
    """The evaluation's baseline: bm25s with its default tokenizer over the raw chunk text
    (lower-cased syllables, no word segmentation, no accent folding, no article context), i.e.
    what a generic BM25 library gives a Vietnamese corpus out of the box."""

    def __init__(self, texts: list[str]) -> None:
        self._model = bm25s.BM25()
        self._model.index(bm25s.tokenize(texts, show_progress=False), show_progress=False)
        self._vocab = set(self._model.vocab_dict)
        self._n = len(texts)

    def rank(self, query: str, k: int) -> list[int]:
        """Row numbers of the top-k texts for `query`."""
        terms = bm25s.tokenize([query], return_ids=False, show_progress=False)[0]
        known = [t for t in terms if t in self._vocab]
        if not known:
            return list(range(min(k, self._n)))
        scores = np.asarray(self._model.get_scores(known))
        return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]
