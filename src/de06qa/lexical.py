"""BM25 over two fields: underthesea words (accented, tone-unified) and accent-folded syllables.

A question with diacritics matches both fields on a true match but only the folded field on a
folded coincidence (dê/dế), so the accented match wins; a question typed without diacritics still
finds its words through the folded field.
"""

from __future__ import annotations

import logging
from pathlib import Path

import bm25s
import numpy as np

from de06qa.errors import IndexDamaged

FIELDS = ("words", "folded")
# bm25s sets its logger to DEBUG on import and prints "Building index from tokens" on every build.
logging.getLogger("bm25s").setLevel(logging.WARNING)


def _bm25(docs: list[list[str]]) -> bm25s.BM25:
    model = bm25s.BM25()
    # bm25s drops empty documents' rows unless they hold a token; "" keeps row ids aligned.
    model.index([d or [""] for d in docs], show_progress=False)
    return model


class LexicalIndex:
    def __init__(self, fields: dict[str, bm25s.BM25]) -> None:
        self._fields = fields
        self._vocab = {name: set(m.vocab_dict) for name, m in fields.items()}

    @classmethod
    def build(cls, words: list[list[str]], folded: list[list[str]]) -> LexicalIndex:
        return cls({"words": _bm25(words), "folded": _bm25(folded)})

    def scores(self, field: str, terms: list[str]) -> np.ndarray:
        """BM25 score of every document for `terms` (terms absent from the corpus are ignored)."""
        model = self._fields[field]
        known = [t for t in terms if t in self._vocab[field] and t]
        if not known:
            return np.zeros(int(model.scores["num_docs"]), dtype=np.float32)
        return np.asarray(model.get_scores(known), dtype=np.float32)

    def idf(self, field: str, terms: tuple[str, ...]) -> dict[str, float]:
        """BM25's idf, log(1 + (N - df + 0.5) / (df + 0.5)), of each term (0 when unknown):
        document frequencies come from the index's term-by-document matrix."""
        model = self._fields[field]
        n = int(model.scores["num_docs"])
        indptr = model.scores["indptr"]
        vocab = model.vocab_dict
        out = {}
        for t in terms:
            i = vocab.get(t)
            df = int(indptr[i + 1] - indptr[i]) if i is not None and t else 0
            out[t] = float(np.log1p((n - df + 0.5) / (df + 0.5))) if df else 0.0
        return out

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
