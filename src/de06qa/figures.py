"""Figures as Vietnamese reports write them, and the date a figure holds for.

"412.530" is 412 530 (dots group thousands), "88,6%" is 88.6 % (the comma is the decimal mark),
"hơn 1,5 triệu thẻ" is more than 1 500 000 cards, "1.818/1.876" is 1 818 out of 1 876 and
"xếp thứ 8/63" a rank. A figure's date comes from its sentence ("đến ngày 30/11/2023", "năm 2023",
"tính đến tháng 6"), else from the sentences before it in its paragraph, else from the article.
Everything here is generic notation; nothing refers to particular articles.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from de06qa.documents import Chunk, Span

# A number as reports write it: digit groups joined by dots (thousands) or a comma (decimals).
NUM = r"\d+(?:[.,]\d+)*"
# Scale words multiply: "1,5 triệu" = 1.5e6, "2 nghìn tỷ" = 2e12.
SCALES: dict[str, float] = {
    "trăm": 1e2,
    "nghìn": 1e3,
    "ngàn": 1e3,
    "vạn": 1e4,
    "triệu": 1e6,
    "tỷ": 1e9,
    "tỉ": 1e9,
}
_SCALE_RUN = re.compile(r"(?:\s+(?:" + "|".join(SCALES) + r")(?!\w))+")
# Words before a figure that make it a bound or an estimate rather than an exact count.
QUALIFIERS = (
    "gần như",
    "xấp xỉ",
    "ước tính",
    "khoảng",
    "chừng",
    "hơn",
    "trên",
    "gần",
    "dưới",
    "tới",
    "ước",
    "hàng",
)
_QUALIFIER = re.compile(r"(?<!\w)(" + "|".join(QUALIFIERS) + r")\s+$", re.IGNORECASE)
_RANK_CUE = re.compile(r"(?<!\w)(thứ|hạng|xếp thứ|đứng thứ|top)\s+$", re.IGNORECASE)
_RANGE_TAIL = re.compile(rf"^\s*(?:-|–|—|đến|tới)\s*({NUM})")
_FRACTION = re.compile(rf"^({NUM})\s?/\s?({NUM})$")
# A unit is the noun after the figure: its first words, up to a word that starts a new phrase.
_UNIT_STOP = frozenset(
    [
        "được",
        "đã",
        "đang",
        "sẽ",
        "và",
        "của",
        "trong",
        "với",
        "trên",
        "cho",
        "đạt",
        "tăng",
        "giảm",
        "là",
        "có",
        "so",
        "theo",
        "tại",
        "từ",
        "đến",
        "bằng",
        "chiếm",
        "gồm",
        "thuộc",
        "với",
        "như",
        "khi",
        "nhưng",
        "hoặc",
        "vào",
        "ra",
        "này",
        "đó",
    ]
)
UNIT_WORDS = 3


@dataclass(frozen=True)
class Figure:
    value: str  # as written in the article, qualifier included ("hơn 1,5 triệu")
    number: float  # parsed
    unit: str  # "%", "đồng", or the noun counted ("thẻ", "dịch vụ công"), "" if none follows
    kind: str  # count, percent, money, fraction, rank: what it may be compared with
    qualifier: str | None = None  # "hơn", "gần", "trên", …: a bound or an estimate
    total: float | None = None  # the denominator of a fraction or a rank ("/1.876", "/63")
    upper: float | None = None  # the upper end of a range ("10-15")
    start: int = 0  # offsets of `value` in the text it was read from
    end: int = 0


def parse_number(text: str) -> float:
    """A number written the Vietnamese way: dots group thousands, a comma marks decimals.

    Also English grouping where it cannot be read otherwise ("1,234,567"; "1.5" with one short
    group). Raises ValueError for text that is not a number."""
    s = text.strip()
    if not re.fullmatch(NUM, s):
        raise ValueError(f"not a number: {text!r}")
    if "." in s and "," in s:  # the later mark is the decimal one: 1.234,5 or 1,234.5
        dec = "," if s.rfind(",") > s.rfind(".") else "."
        grp = "." if dec == "," else ","
        return float(s.replace(grp, "").replace(dec, "."))
    mark = "." if "." in s else "," if "," in s else ""
    if not mark:
        return float(s)
    head, *groups = s.split(mark)
    thousands = all(len(g) == 3 for g in groups) and len(head) <= 3
    if mark == "." and thousands:
        return float(s.replace(".", ""))
    if mark == "," and thousands and len(groups) > 1:
        return float(s.replace(",", ""))
    if len(groups) == 1:
        return float(f"{head}.{groups[0]}")
    raise ValueError(f"not a number: {text!r}")


def _scale(words: str) -> float:
    factor = 1.0
    for w in words.split():
        factor *= SCALES[w.lower()]
    return factor


def _unit(after: str) -> str:
    words: list[str] = []
    for m in re.finditer(r"[^\W\d_]+|\S", after):
        w = m.group()
        if not w[0].isalpha() or w.lower() in _UNIT_STOP or len(words) == UNIT_WORDS:
            break
        words.append(w)
    return " ".join(words)


def figure_at(text: str, start: int, end: int) -> Figure | None:
    """The figure whose digits are at text[start:end] (an answer span), read with what around it
    belongs to it: a qualifier before, a scale word, a percent sign, a range's other end, the
    noun it counts. None when the span holds no number."""
    m = re.search(NUM + r"(?:\s?/\s?" + NUM + ")?", text[start:end])
    if not m:
        return None
    a, b = start + m.start(), start + m.end()
    digits = text[a:b]
    before, tail = text[:a], text[b:]
    scale = _SCALE_RUN.match(tail)
    factor = _scale(scale.group()) if scale else 1.0
    b += scale.end() if scale else 0
    tail = text[b:]
    upper = None
    frac = _FRACTION.match(digits)
    if frac is None and (rng := _RANGE_TAIL.match(tail)):
        upper = parse_number(rng.group(1)) * factor
        b += rng.end()
        tail = text[b:]
    q = _QUALIFIER.search(before)
    qualifier = q.group(1).lower() if q else None
    if q:
        a = q.start()
    try:
        if frac:
            number, total = parse_number(frac.group(1)), parse_number(frac.group(2))
        else:
            number, total = parse_number(digits) * factor, None
    except ValueError:
        return None
    pct = re.match(r"\s?%", tail)
    if pct:
        kind, unit = "percent", "%"
        b += pct.end()
    elif frac:
        kind, unit = ("rank" if _RANK_CUE.search(before) else "fraction"), _unit(tail)
    else:
        unit = _unit(tail)
        kind = "money" if unit.split(" ")[0].lower() in {"đồng", "usd", "vnd", "vnđ"} else "count"
    return Figure(text[a:b], number, unit, kind, qualifier, total, upper, a, b)


# -- dates ------------------------------------------------------------------------------------------
# Cues that a date says when a figure holds ("đến ngày", "tính đến hết", "năm 2023, …").
_CUE = r"(?:tính\s+)?(?:đến|tới)(?:\s+(?:hết|nay|thời\s+điểm|cuối))*|lũy\s+kế\s+đến|tại\s+thời\s+điểm|trong|hết|as\s+of|by"
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4}
_DATE_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![\d/.])(\d{1,2})[/.-](\d{1,2})[/.-]((?:19|20)\d\d)(?![\d/])"), "day"),
    (re.compile(r"quý\s+(i{1,3}|iv|[1-4])\s*(?:/|năm\s+)((?:19|20)\d\d)(?!\d)", re.I), "quarter"),
    (re.compile(r"(\d{1,2})\s+tháng\s+(?:đầu\s+)?năm\s+((?:19|20)\d\d)(?!\d)", re.I), "months"),
    (re.compile(r"tháng\s+(\d{1,2})\s*(?:/|năm\s+)((?:19|20)\d\d)(?!\d)", re.I), "month"),
    (re.compile(r"(?<![\d/.])(\d{1,2})/((?:19|20)\d\d)(?![\d/])"), "month"),
    (re.compile(r"tháng\s+(\d{1,2})(?![\d/])", re.I), "month-of-article-year"),
    (re.compile(r"(?:năm|year|in)\s+((?:19|20)\d\d)(?![\d/]|\s*[-–]\s*(?:19|20)\d\d)", re.I), "year"),
    (re.compile(r"(?<![\w/.-])((?:19|20)\d\d)(?![\w/]|\s*[-–]\s*(?:19|20)\d\d)"), "bare-year"),
)
# Dates that are not when a figure holds: a document's issuing date ("Quyết định số 06/QĐ-TTg ngày
# 6/1/2022"), a baseline ("so với cuối năm 2022"), a target or a plan's horizon ("phấn đấu đến năm
# 2025", "tầm nhìn đến năm 2030", "giai đoạn 2022 - 2025").
_NOT_AS_OF = re.compile(
    r"(?:(?:số\s+\S+|quyết\s+định|nghị\s+quyết|nghị\s+định|chỉ\s+thị|thông\s+(?:báo|tư)|kế\s+hoạch|"
    r"công\s+văn|luật|ban\s+hành|ký)[^.;]{0,40}?ngày\s*"
    r"|so\s+với(?:\s+(?:cùng\s+kỳ|cuối|đầu|hết))*(?:\s+(?:năm|tháng|ngày|quý))?\s*"
    r"|(?:tầm\s+nhìn|phấn\s+đấu|mục\s+tiêu|định\s+hướng|giai\s+đoạn|chỉ\s+tiêu|kế\s+hoạch)[^.;]{0,30}?)$",
    re.IGNORECASE,
)
_NOW = re.compile(r"(?<!\w)(hiện\s+nay|đến\s+nay|hiện\s+tại|thời\s+điểm\s+hiện\s+tại|currently)(?!\w)", re.I)
# How surely a date is a figure's: 2 introduced by "đến", "tính đến", "tại thời điểm", …; 1 a
# year, quarter or "6 tháng đầu năm" (periods figures are reported for); 0 any other date.
CUED, PERIOD, BARE = 2, 1, 0


@dataclass(frozen=True)
class AsOf:
    when: str  # ISO: yyyy-mm-dd, yyyy-mm or yyyy, as precise as the text is
    start: int  # where in the text it was read (-1 for the article's date)
    strength: int  # CUED, PERIOD or BARE


def last_day(when: str) -> date:
    """The last day of an ISO date's period ("2023" → 2023-12-31, "2024-02" → 2024-02-29), for
    comparing dates of different precision."""
    parts = [int(p) for p in when.split("-")]
    y, m = parts[0], parts[1] if len(parts) > 1 else 12
    return date(y, m, parts[2] if len(parts) > 2 else calendar.monthrange(y, m)[1])


def _iso(kind: str, g: tuple[str, ...], article: str | None) -> str | None:
    try:
        if kind == "day":
            return date(int(g[2]), int(g[1]), int(g[0])).isoformat()
        if kind == "quarter":
            q = _ROMAN.get(g[0].lower()) or int(g[0])
            return f"{int(g[1]):04d}-{3 * q:02d}"
        if kind in ("months", "month"):
            m = int(g[0])
            return f"{int(g[1]):04d}-{m:02d}" if 1 <= m <= 12 else None
        if kind == "month-of-article-year":
            m = int(g[0])
            if not article or not 1 <= m <= 12:
                return None
            y, am = int(article[:4]), int(article[5:7]) if len(article) >= 7 else 12
            return f"{y if m <= am else y - 1:04d}-{m:02d}"  # "tháng 6" in a March article: last year
        return g[0]
    except ValueError:
        return None


def dates_in(text: str, article_date: str | None) -> list[AsOf]:
    """The dates a text holds that may say when a figure holds, in order: not a document's
    issuing date ("Quyết định số 06/QĐ-TTg ngày 6/1/2022"), not a period ("giai đoạn 2021-2025"),
    not a target later than the article ("phấn đấu đến năm 2025")."""
    found: list[AsOf] = []
    taken: list[tuple[int, int]] = []
    for pattern, kind in _DATE_FORMS:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            taken.append(m.span())
            before = text[max(0, m.start() - 60) : m.start()]
            if _NOT_AS_OF.search(before):
                continue
            when = _iso(kind, m.groups(), article_date)
            if when is None or (article_date and when[: len(article_date)] > article_date):
                continue
            if re.search(rf"(?:{_CUE})\s+(?:ngày\s+|tháng\s+|năm\s+)?$", before, re.IGNORECASE):
                strength = CUED
            else:
                strength = PERIOD if kind in ("year", "months", "quarter") else BARE
            found.append(AsOf(when, m.start(), strength))
    return sorted(found, key=lambda d: d.start)


def as_of(sentence: str, at: int, earlier: list[str], article_date: str | None) -> tuple[str | None, str]:
    """When the figure at offset `at` of `sentence` holds, and where that was read: "sentence",
    "paragraph" (a sentence before it in its paragraph: "Đến ngày 3/12/2023, … Trong đó có 665 …")
    or "article" (its publication date; also for "hiện nay"). (None, "none") for an undated article
    with no date in the text."""
    here = dates_in(sentence, article_date)
    if _NOW.search(sentence):  # "hiện nay", "đến nay": as of publication, unless a cue says otherwise
        here = [d for d in here if d.strength == CUED]
    if here:
        strongest = max(d.strength for d in here)
        pick = [d for d in here if d.strength == strongest]
        before = [d for d in pick if d.start <= at]
        return (before[-1] if before else pick[0]).when, "sentence"
    if not _NOW.search(sentence):
        for prev in reversed(earlier):  # only an explicit "đến ngày …" carries over a sentence
            back = [d for d in dates_in(prev, article_date) if d.strength == CUED]
            if back:
                return back[-1].when, "paragraph"
    return (article_date, "article") if article_date else (None, "none")


def earlier_in_paragraph(chunk: Chunk, sentence: Span) -> list[str]:
    """The sentences before `sentence` in its paragraph, as far as `chunk` shows them."""
    out: list[str] = []
    text, base = chunk.text, chunk.start
    for s in chunk.sentences:
        if s.start >= sentence.start:
            break
        if "\n" in text[s.end - base : sentence.start - base]:
            out = []  # a paragraph break lies between: that sentence is another paragraph's
            continue
        out.append(s.text)
    return out


def as_of_in(chunk: Chunk, sentence: Span, at: int, article_date: str | None) -> tuple[str | None, str]:
    """`as_of` of the figure at article offset `at` of `sentence`, a sentence of `chunk`: what an
    answer and a comparison's row both report."""
    return as_of(sentence.text, at - sentence.start, earlier_in_paragraph(chunk, sentence), article_date)


def time_asked(question: str) -> str | None:
    """The time a question names ("năm 2022", "tháng 3/2023", "đến hết năm 2023", "quý I/2024",
    "ngày 30/6/2023"), ISO and as precise as it is written; None when it names none. A date cued
    by "đến", "tính đến", … wins over a bare one."""
    found = dates_in(question, None)
    if not found:
        return None
    strongest = max(d.strength for d in found)
    return [d for d in found if d.strength == strongest][-1].when


# Figures of each kind as written in a sentence (what an answer of that kind may be).
_SCALE = r"(?:\s(?:triệu|tỷ|tỉ|nghìn|ngàn|trăm)(?!\w))?"
PATTERNS: dict[str, re.Pattern[str]] = {
    "percent": re.compile(rf"{NUM}\s?%"),
    "rank": re.compile(rf"(?<![\d/]){NUM}/{NUM}(?![\d/])"),
    "money": re.compile(rf"{NUM}{_SCALE}\s(?:đồng|USD|VND|VNĐ|đô la)"),
    "date": re.compile(r"(?<![\d/])\d{1,2}[/.]\d{1,2}[/.]\d{4}(?![\d/])|(?<![\d/])\d{1,2}/\d{4}(?![\d/])"),
    "duration": re.compile(rf"{NUM}\s(?:ngày|tháng|năm|giờ|tuần)(?!\s\d)"),
    "count": re.compile(rf"(?<![\d/.,]){NUM}(?:/\s?{NUM})?{_SCALE}(?![\d/%]|[.,]\d|\s?%)"),
}
