"""A question, analysed once: read by candidate retrieval, ranking and answer extraction alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from de06qa.answer import content_terms, question_kind
from de06qa.gazetteer import covered_by, find_provinces
from de06qa.text import fold, folded_terms, has_diacritics, normalise, word_terms, words


@dataclass(frozen=True, eq=False)
class Query:
    text: str  # NFC, stripped: what the user asked
    folded: str  # lower case, tone-unified, accent-folded
    words: tuple[str, ...]  # underthesea words ("dịch_vụ"), the BM25 words field's terms
    folded_terms: tuple[str, ...]  # folded syllables and syllable pairs, the BM25 folded field's terms
    terms: tuple[str, ...]  # folded topic syllables (question words and function words removed)
    kind: str | None  # the kind of answer asked for: count, percent, date, person, …
    provinces: frozenset[str]  # provinces named (a 2025 merged name stands for its former ones)
    accented: bool  # typed with diacritics: the accented words field is trustworthy
    vector: np.ndarray | None  # the question's embedding (None only for an empty index)


def analyse(text: str, vector: np.ndarray | None = None) -> Query:
    return Query(
        text=text,
        folded=fold(normalise(text)),
        words=tuple(word_terms(words(text))),
        folded_terms=tuple(folded_terms(text)),
        terms=tuple(content_terms(text)),
        kind=question_kind(text),
        provinces=frozenset(p for name in find_provinces(text) for p in covered_by(name)),
        accented=has_diacritics(text),
        vector=vector,
    )
