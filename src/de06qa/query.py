"""A question, analysed once: read by candidate retrieval, ranking and answer extraction alike."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from de06qa.figures import time_asked
from de06qa.gazetteer import covered_by, find_provinces
from de06qa.text import content_terms, fold, folded_terms, has_diacritics, normalise, word_terms, words

# Words asking across provinces or over time rather than about one figure (folded, lower case):
# "So sánh …", "Tỉnh nào có nhiều … nhất?", "… qua các năm?".
ASKING = re.compile(
    r"\b(so sanh|giua cac (tinh|dia phuong)|cac (tinh|dia phuong)( thanh)?|(tinh|dia phuong|noi) nao|"
    r"qua cac nam|qua tung nam|theo (nam|tinh|thoi gian|tung tinh)|tung tinh|moi tinh|xep hang|dan dau|"
    r"which provinces?|compare|across( the)? provinces|by (province|year)|over (the years|time)|"
    r"(the )?(most|highest|lowest|fewest|least|largest|smallest))\b"
)
# "nhiều … nhất": the adjective, then "nhất" after the indicator or right after it ("thống nhất",
# "duy nhất" alone are no superlative).
_ADJECTIVE = r"\b(nhieu|cao|lon|thap|it|nho|kem|cham|nhanh|tot)\b"
SUPERLATIVE_PAIR = re.compile(_ADJECTIVE + r".*\bnhat\b")
SUPERLATIVE = re.compile(_ADJECTIVE + r"(?=.*\bnhat\b)|\bnhat\b")  # its words, once the pair is there


def comparative(text: str) -> bool:
    """Whether a question asks across provinces or over time, so a comparison answers it."""
    folded = fold(normalise(text))
    return bool(ASKING.search(folded) or SUPERLATIVE_PAIR.search(folded))


# Question cues, matched on folded lower-case text; first match wins.
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "rank",
        re.compile(r"\b(thu may|xep thu|dung thu|xep hang|hang may|hang bao nhieu|rank|ranked|place)\b"),
    ),
    ("percent", re.compile(r"\b(ty le|ti le|phan tram|percent|percentage|rate|share|proportion)\b")),
    (
        "money",
        re.compile(
            r"\b(bao nhieu tien|tiet kiem|doanh thu|kinh phi|chi phi|ngan sach|money|revenue|save|saved|cost|budget)\b"
        ),
    ),
    (
        "date",
        re.compile(
            r"\b(khi nao|ngay nao|bao gio|thoi diem nao|thang nao|nam nao|luc nao|when|what date|which date|deadline)\b"
        ),
    ),
    ("duration", re.compile(r"\b(bao lau|may ngay|bao nhieu ngay|bao nhieu nam|how long|how many days)\b")),
    ("person", re.compile(r"\b(la ai|ai la|nguoi nao|who)\b|^ai\b")),
    ("count", re.compile(r"\b(bao nhieu|may|so luong|how many|how much|number of|con so)\b")),
)


def question_kind(question: str) -> str | None:
    q = fold(normalise(question))
    for kind, cue in _CUES:
        if cue.search(q):
            return kind
    return None


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
    comparative: bool = False  # asks across provinces or over time (see `comparative`)
    # What the embedder and the reader read: `text`, or `text` with the marks it was typed without
    # (de06qa.accents). The lexical fields keep what was typed: the folded field matches either way.
    marked: str = ""
    asked_time: str | None = None  # the time the question names, ISO ("2023", "2023-03"): figures.time_asked


def analyse(text: str, vector: np.ndarray | None = None, marked: str | None = None) -> Query:
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
        comparative=comparative(text),
        marked=marked or text,
        asked_time=time_asked(text),
    )
