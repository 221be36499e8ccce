"""Where in a sentence the answer of the kind a question asks for lies: the candidates of that kind
(figures.PATTERNS; personal names) and the one nearest the question's own words. Compare reads a
province's figure with it; the ranking features ask whether a sentence holds a candidate at all.

Everything here is generic Vietnamese/English morphology and number formats; nothing refers to
particular questions or articles.
"""

from __future__ import annotations

import math
import re

from de06qa.figures import PATTERNS
from de06qa.gazetteer import find_provinces
from de06qa.text import content_terms, fold, normalise

# Which pattern answers which kind of question, in order of preference.
KIND_PATTERNS: dict[str, tuple[str, ...]] = {
    "percent": ("percent",),
    "rank": ("rank", "count"),
    "money": ("money", "count"),
    "date": ("date",),
    "duration": ("duration", "count"),
    "count": ("count",),
    "person": ("person",),
}


def _found(sentence: str, name: str) -> list[re.Match[str]]:
    """The candidates of one pattern (figures.PATTERNS, or "person")."""
    if name == "person":
        return _names(sentence)
    found = list(PATTERNS[name].finditer(sentence))
    if name == "count" and found:
        # A bare year or a part of a date is rarely the count asked for.
        dates = [d.span() for d in PATTERNS["date"].finditer(sentence)]
        found = [
            m
            for m in found
            if not any(a <= m.start() < b for a, b in dates) and not re.fullmatch(r"(19|20)\d\d", m.group())
        ]
    return found


def _candidates(sentence: str, kind: str | None) -> list[re.Match[str]]:
    if kind is None:
        return []
    for name in KIND_PATTERNS[kind]:
        found = _found(sentence, name)
        if found:
            return found
    return []


_ORG_WORDS = frozenset(
    {
        "UBND",
        "HĐND",
        "CCCD",
        "TTHC",
        "Ủy",
        "Uỷ",
        "Bộ",
        "Sở",
        "Ban",
        "Cổng",
        "Đề",
        "Công",
        "Chính",
        "Thủ",
        "Trung",
        "Nghị",
        "Hội",
        "Tổ",
        "Đảng",
        "Nhà",
        "Quyết",
        "Chương",
        "Cơ",
        "Hệ",
        "Luật",
        "Thông",
        "Tỉnh",
        "Phó",
        "Chủ",
        "Đại",
        "Giám",
        "Trong",
        "Với",
        "Tại",
        "Theo",
        "Đến",
        "Ngày",
        "Năm",
        "Đồng",
        "Việt",
        "Nam",
        "Tổng",
        "Người",
        "Các",
    }
)


def _names(sentence: str) -> list[re.Match[str]]:
    """Runs of 2-4 capitalised syllables that are not a province, an office or a sentence opener:
    Vietnamese personal names ("Nguyễn Văn Sơn")."""
    provinces = set(find_provinces(sentence))
    out: list[re.Match[str]] = []
    for m in re.finditer(r"(?<!\w)(?:[^\W\d_]\w*)(?:\s[^\W\d_]\w*)*", sentence):
        # split the run of words into maximal capitalised sub-runs
        words = [(w.start() + m.start(), w.group()) for w in re.finditer(r"\w+", m.group())]
        run: list[tuple[int, str]] = []
        for pos, w in [*words, (-1, "")]:
            if w and w[0].isupper() and w not in _ORG_WORDS:
                run.append((pos, w))
                continue
            if 2 <= len(run) <= 4 and run[0][0] > 0:
                name = " ".join(x for _, x in run)
                if name not in provinces and not any(name in p or p in name for p in provinces):
                    hit = re.compile(re.escape(name)).search(sentence, run[0][0])
                    if hit:
                        out.append(hit)
            run = []
    return out


_TOKEN = re.compile(r"\w+(?:[.,/]\w+)*")


def locate(sentence: str, question: str, kind: str | None) -> tuple[int, int] | None:
    """The span (offsets inside `sentence`) of the answer to `question`, or None.

    Among candidates of the wanted kind, pick the one closest to where the question's own words
    appear in the sentence: "… có 665 dịch vụ công toàn trình, đạt tỷ lệ 88,6%" answers
    "bao nhiêu dịch vụ công toàn trình" with 665, not 88,6%."""
    # The answer is never a number or name the question itself gives ("mức độ 2" asks for a count,
    # not for 2).
    asked = set(_TOKEN.findall(fold(normalise(question))))
    cands = [
        m for m in _candidates(sentence, kind) if not set(_TOKEN.findall(fold(normalise(m.group())))) <= asked
    ]
    if not cands:
        return None
    terms = set(content_terms(question))
    folded = fold(sentence).lower()
    # A number the question itself names ("năm 2022") pins the answer down more than a common word.
    hits = [
        (m.start(), 3.0 if m.group().isdigit() else 1.0)
        for m in re.finditer(r"\w+", folded)
        if m.group() in terms
    ]
    if not hits:
        return cands[0].span()

    def closeness(m: re.Match[str]) -> float:
        return sum(w * math.exp(-min(abs(h - m.start()), abs(h - m.end())) / 25.0) for h, w in hits)

    return max(cands, key=closeness).span()


def has_candidate(sentence: str, kind: str | None) -> bool:
    return bool(_candidates(sentence, kind))


def kinds_present(sentence: str) -> frozenset[str]:
    """Every kind `has_candidate` is true of, each pattern run once (a build asks it of every
    chunk for every kind: several kinds share the count pattern)."""
    hits: dict[str, bool] = {}

    def has(name: str) -> bool:
        if name not in hits:
            hits[name] = bool(_found(sentence, name))
        return hits[name]

    return frozenset(kind for kind, names in KIND_PATTERNS.items() if any(has(n) for n in names))
