"""Answer extraction: which kind of answer a question wants, and where it is in a sentence.

Everything here is generic Vietnamese/English question morphology and number formats; nothing
refers to particular questions or articles.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from de06qa.figures import NUM
from de06qa.gazetteer import find_provinces
from de06qa.text import fold, normalise

# Question words and function words that carry no topic (folded, lower case).
STOPWORDS = frozenset(
    [
        "co",
        "bao",
        "nhieu",
        "la",
        "cua",
        "cac",
        "nhung",
        "duoc",
        "o",
        "tai",
        "va",
        "trong",
        "the",
        "nao",
        "ai",
        "gi",
        "may",
        "khong",
        "da",
        "khi",
        "dau",
        "thi",
        "nay",
        "do",
        "voi",
        "cho",
        "den",
        "tu",
        "ve",
        "theo",
        "ra",
        "mot",
        "moi",
        "tren",
        "hay",
        "hoac",
        "ma",
        "nen",
        "vi",
        "sao",
        "bi",
        "de",
        "khac",
        "so",
        "luong",
        "hien",
        "nay",
        "what",
        "how",
        "many",
        "much",
        "who",
        "when",
        "where",
        "which",
        "is",
        "are",
        "was",
        "were",
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "for",
        "to",
        "by",
        "does",
        "do",
        "did",
        "has",
        "have",
        "had",
        "with",
        "from",
        "as",
        "at",
        "and",
        "or",
        "its",
        "it",
        "this",
        "that",
        "there",
        "their",
        "province",
    ]
)


@dataclass(frozen=True)
class Answer:
    text: str
    start: int  # document offsets
    end: int


_SCALE = r"(?:\s(?:triệu|tỷ|tỉ|nghìn|ngàn|trăm)(?!\w))?"
PATTERNS: dict[str, re.Pattern[str]] = {
    "percent": re.compile(rf"{NUM}\s?%"),
    "rank": re.compile(rf"(?<![\d/]){NUM}/{NUM}(?![\d/])"),
    "money": re.compile(rf"{NUM}{_SCALE}\s(?:đồng|USD|VND|VNĐ|đô la)"),
    "date": re.compile(r"(?<![\d/])\d{1,2}[/.]\d{1,2}[/.]\d{4}(?![\d/])|(?<![\d/])\d{1,2}/\d{4}(?![\d/])"),
    "duration": re.compile(rf"{NUM}\s(?:ngày|tháng|năm|giờ|tuần)(?!\s\d)"),
    "count": re.compile(rf"(?<![\d/.,]){NUM}(?:/\s?{NUM})?{_SCALE}(?![\d/%]|[.,]\d|\s?%)"),
}
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


def content_terms(question: str) -> list[str]:
    """Folded syllables of the question that carry its topic."""
    return [t for t in re.findall(r"\w+", fold(normalise(question))) if t not in STOPWORDS]


def _candidates(sentence: str, kind: str | None) -> list[re.Match[str]]:
    if kind is None:
        return []
    for name in KIND_PATTERNS[kind]:
        if name == "person":
            found = _names(sentence)
        else:
            found = list(PATTERNS[name].finditer(sentence))
        if name == "count":
            # A bare year or a part of a date is rarely the count asked for.
            dates = [d.span() for d in PATTERNS["date"].finditer(sentence)]
            found = [
                m
                for m in found
                if not any(a <= m.start() < b for a, b in dates)
                and not re.fullmatch(r"(19|20)\d\d", m.group())
            ]
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
