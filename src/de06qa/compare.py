"""Figures across provinces: one question asked of each province's articles, one row per province
(or per article date within a province), with the figure parsed, its date and its citation.

A row is the answer the search gives within one province's articles, read by the same ranker,
sentence selector and calibrated confidence as any question; a province whose articles do not
answer confidently is left out and named among the silent. The rows are sorted by their number
only where they compare: same kind of figure (a count with counts, a share with shares), dates
within `Settings.compare_span_days`, exact values; the others say why on their row.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from de06qa.documents import Span
from de06qa.errors import BadQuery
from de06qa.figures import Figure, as_of_in, figure_at, last_day
from de06qa.filters import Filters
from de06qa.gazetteer import NEW_NAME, find_provinces, province_spans
from de06qa.locate import locate
from de06qa.query import ASKING, SUPERLATIVE, SUPERLATIVE_PAIR, Query, question_kind
from de06qa.ranking import sigmoid
from de06qa.search import Passage, Searcher
from de06qa.search.passages import top_passages
from de06qa.search.questions import validate
from de06qa.search.retrieval import rank
from de06qa.text import content_terms, fold, has_diacritics, normalise

BYS = ("province", "date")
# Characters either side of a figure where most of the indicator's words must be.
NEAR = 80
_TIME_UNITS = frozenset(
    {"ngay", "thang", "nam", "gio", "tuan", "phut", "quy", "day", "days", "months", "years"}
)
_PLACES = frozenset({"tinh", "thanh", "dia", "huyen", "xa", "provinces", "province"})
# Words that give a value ("… đạt 1.214", "… là 1.214", "… lên 1.214"; folded).
_VALUE_VERBS = frozenset({"dat", "la", "len", "toi", "den", "reached", "is", "was", "to"})
# How many passages of one province are read for its figure (the selector's sentences of the top
# ANSWER_PASSAGES of them compete, as in a search).
PASSAGES = 5
_ASCENDING = re.compile(r"\b(thap|it|nho|kem|cham)\b.*\bnhat\b|\b(lowest|fewest|least|smallest)\b")
_OVER_TIME = re.compile(r"\b(qua cac nam|qua tung nam|theo (nam|thoi gian)|over (the years|time)|by year)\b")
_ASKS_ALREADY = re.compile(r"\b(bao nhieu|may|la gi|how many|how much|what)\b")
_ENGLISH = re.compile(r"\b(which|what|how|the|has|have|does|most|compare|province)\b")
_FILLER = frozenset({"co", "la", "gi", "has", "have", "had", "the", "of", "with", "is", "are"})


@dataclass(frozen=True)
class Row:
    province: str  # as the article names it (pre-2025 name)
    province_2025: str  # the province it belongs to since the 2025 mergers
    figure: Figure  # offsets into the article text
    as_of: str | None
    as_of_from: str  # sentence, paragraph, article or none
    doc_id: str
    title: str
    date: str | None
    page: int | None
    sentence: Span
    confidence: float
    notes: tuple[str, ...] = ()  # why this row does not compare with the others


@dataclass(frozen=True)
class Comparison:
    query: str
    indicator: str
    by: str
    order: str  # descending (the most first) or ascending
    rows: tuple[Row, ...]
    silent: tuple[str, ...]  # provinces read whose articles gave no confident figure
    filters: Filters = field(default_factory=Filters)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def leader(self) -> Row | None:
        """The first row when every row of its kind compares (the answer to "which leads?")."""
        if self.by != "province" or len(self.rows) < 2:
            return None
        kind = _comparable(self.rows[0])
        same = [r for r in self.rows if _comparable(r) == kind]
        return self.rows[0] if len(same) >= 2 and not any(r.notes for r in same) else None


def indicator_of(question: str) -> tuple[str, list[str]]:
    """The indicator a comparison is about, without the words that ask for the comparison or name
    provinces, and the provinces named (what the comparison is limited to)."""
    text = normalise(question).strip().rstrip("?.!").strip()
    provinces = find_provinces(text)
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    folded = [fold(text[a:b]).lower().strip(",;:") for a, b in words]
    drop = [False] * len(words)
    line = " ".join(folded)
    starts = [sum(len(w) + 1 for w in folded[:i]) for i in range(len(folded))]

    def mark(a: int, b: int) -> None:
        for i, s in enumerate(starts):
            if a <= s < b:
                drop[i] = True

    for pat in (ASKING, SUPERLATIVE) if SUPERLATIVE_PAIR.search(line) else (ASKING,):
        for m in pat.finditer(line):
            mark(*m.span())
    if provinces:
        for a, b in province_spans(line):
            mark(a, b)
        for i, w in enumerate(folded):  # "giữa Hà Giang và Hải Dương", "tỉnh Hà Giang"
            if w in ("va", "giua", "tinh", "and", "between") and (
                (i + 1 < len(drop) and drop[i + 1]) or (i > 0 and drop[i - 1])
            ):
                drop[i] = True
    kept = [(text[a:b].strip(",;:-"), f) for (a, b), f, d in zip(words, folded, drop, strict=True) if not d]
    while kept and kept[0][1] in _FILLER:  # "có", "là", "the" left at either end
        kept.pop(0)
    while kept and kept[-1][1] in _FILLER:
        kept.pop()
    return " ".join(w for w, _ in kept if w) or text, list(dict.fromkeys(provinces))


def province_question(indicator: str, province: str, kind: str) -> str:
    """The question asked of one province's articles (a question like those the ranker and the
    confidence were fitted on, rather than a bare indicator)."""
    folded = fold(indicator).lower()
    if _ASKS_ALREADY.search(folded):
        return f"{province} {indicator}?"
    if not has_diacritics(indicator) and _ENGLISH.search(folded + " the"):
        return (
            f"How many {indicator} does {province} have?"
            if kind == "count"
            else f"What is the {indicator} of {province}?"
        )
    if kind == "count":
        return f"{province} có bao nhiêu {indicator}?"
    return f"{indicator} của {province} là bao nhiêu?"


def compare(
    searcher: Searcher,
    question: str,
    by: str | None = None,
    filters: Filters | None = None,
) -> Comparison:
    """One row per province (or per article of the province, by="date") holding a figure for the
    indicator the question names."""
    t0 = time.perf_counter()
    question = validate(question, searcher.settings.max_query_chars)
    indicator, named = indicator_of(question)
    folded = fold(normalise(question))
    by = by or ("date" if _OVER_TIME.search(folded) else "province")
    if by not in BYS:
        raise BadQuery(f"unknown by={by!r}; use province or date")
    filters = filters or Filters()
    if named and not filters.provinces:
        filters = Filters(tuple(named), filters.since, filters.until)
    kind = question_kind(question) or "count"
    order = "ascending" if _ASCENDING.search(folded) else "descending"
    covered = filters.covered
    present = sorted(
        {
            p
            for a, _ in searcher.backend.documents()
            if filters.matches(a)
            for p in a.provinces
            if not covered or p in covered
        }
    )
    analysed = searcher.analyse([province_question(indicator, p, kind) for p in present])
    # The indicator's words weighted by idf; words the corpus does not hold (an English indicator
    # over Vietnamese text) weigh nothing.
    terms = tuple(dict.fromkeys(content_terms(indicator)))
    idf = searcher.backend.idf(terms)
    weights = {t: idf.get(t, 0.0) for t in terms}
    t_embed = (time.perf_counter() - t0) * 1000
    rows: list[Row] = []
    silent: list[str] = []
    for p, q in zip(present, analysed, strict=True):
        scope = Filters((p,), filters.since, filters.until, exact=True)
        found = _read_province(searcher, q, weights, scope, p)
        if found:
            rows.extend(found)
        else:
            silent.append(p)
    rows = _judge(rows, by, order, searcher.settings.compare_span_days)
    total = (time.perf_counter() - t0) * 1000
    return Comparison(
        question, indicator, by, order, tuple(rows), tuple(silent), filters,
        {"embed": t_embed, "read": total - t_embed, "total": total},
    )  # fmt: skip


def _about(province: str) -> Callable[[Span, Passage], bool]:
    """Whether a sentence gives a figure about `province`: it names it, or names no province and
    sits in an article mainly about it."""

    def keep(s: Span, p: Passage) -> bool:
        named = find_provinces(s.text)
        if named:
            return province in named
        return bool(p.article.provinces) and p.article.provinces[0] == province

    return keep


def _read_province(
    searcher: Searcher, q: Query, weights: dict[str, float], scope: Filters, province: str
) -> list[Row]:
    """Each article's figure for `province` (`scope` holds only its articles)."""
    r = rank(searcher.backend, searcher.models.ranker, q, scope)
    if not len(r.candidates):
        return []
    passages = top_passages(
        r, sigmoid(r.logits), r.candidates.lexical, PASSAGES, 2 * searcher.settings.chunk_chars
    )
    about = _about(province)
    kind = q.kind or "count"
    figures: dict[tuple[str, int], Figure] = {}  # each weighed sentence's figure (sentence offsets)

    def weigh(s: Span, p: Passage) -> float:
        fig = _figure(s, q, kind, weights) if about(s, p) else None
        if fig is None:
            return 0.0
        figures[p.chunk.doc_id, s.start] = fig
        return 1.0 + _names_indicator(fig, s.text, weights)

    rows = []
    for group in _by_article(passages):  # each article's figure: by province, the latest is kept
        answer, confidence = searcher.answerer.answer(r, group, weigh)
        if answer is None or confidence < searcher.models.threshold:
            continue
        top = next(p for p in group if p.chunk.doc_id == answer.doc_id)
        sent = Span(answer.sentence_start, answer.sentence_end, answer.sentence)
        fig = figures[answer.doc_id, sent.start]
        fig = replace(fig, start=fig.start + sent.start, end=fig.end + sent.start)
        when, source = as_of_in(top.chunk, sent, fig.start, top.article.date)
        rows.append(
            Row(
                province, NEW_NAME.get(province, province), fig, when, source, answer.doc_id,
                top.article.title, top.article.date, answer.page, sent, confidence,
            )
        )  # fmt: skip
    return rows


def _figure(s: Span, q: Query, kind: str, weights: dict[str, float]) -> Figure | None:
    """The figure answering `q` in sentence `s`, or None when the sentence has none: a count must
    count something (a number without a noun after it is a label: "mức độ 4", "Đề án 06"), not
    days or years unless a duration is asked, not a rank of provinces, and the indicator's words
    (weighted by idf) must mostly be around it, not in another clause of the sentence."""
    span = locate(s.text, q.text, kind)
    fig = figure_at(s.text, *span) if span else None
    if fig is None or re.match(r"0\d", fig.value.split(" ")[-1]):
        return None  # "Đề án 06", "Kế hoạch 02": a label, not a count
    if fig.kind in ("count", "fraction"):
        head = fold(fig.unit.split(" ")[0]).lower() if fig.unit else ""
        if not head and not _value_of_indicator(fig, s.text, weights):
            return None
        if (head in _TIME_UNITS and kind != "duration") or head in _PLACES:
            return None
    if fig.kind == "rank" and kind != "rank":
        return None
    lo, hi = max(0, fig.start - NEAR), fig.end + NEAR
    if any(weights.values()) and _cover(s.text[lo:hi], weights) < 0.5:
        return None
    return fig


def _value_of_indicator(fig: Figure, sentence: str, weights: dict[str, float]) -> bool:
    """A number with no noun after it is a count when a verb gives it as the value ("đạt", "là",
    "lên", …), it closes its clause and its clause names the indicator before it ("Số dịch vụ công
    trực tuyến toàn trình của tỉnh đạt 1.214, tăng …"); not a label ("mức độ 4,", "Đề án 06 của")."""
    before = re.findall(r"\w+", fold(sentence[: fig.start]).lower())
    if not before or before[-1] not in _VALUE_VERBS:
        return False
    if not re.match(r"\s*(?:[,;:.()!?]|$)", sentence[fig.end :]):
        return False
    return _cover(re.split(r"[,;:.()!?]", sentence[: fig.start])[-1], weights) >= 0.5


def _cover(text: str, weights: dict[str, float]) -> float:
    """The share of the indicator's words (idf-weighted) that `text` holds."""
    total = sum(weights.values())
    words = set(re.findall(r"\w+", fold(text).lower()))
    return sum(w for t, w in weights.items() if t in words) / total if total else 0.0


def _names_indicator(fig: Figure, sentence: str, weights: dict[str, float]) -> float:
    """How much of the indicator the figure's own noun phrase names, idf-weighted: the words right
    after it, up to the next punctuation and no further than the indicator's length and two
    modifiers ("665 dịch vụ công toàn trình" counts what "dịch vụ công toàn trình" asks for; "23/25
    dịch vụ công thiết yếu đã được thực hiện toàn trình" less: its "toàn trình" is another
    clause's), and at half weight the words before it in its clause ("cấp căn cước công dân gắn
    chip cho 1.306.180 trường hợp")."""
    clause = re.split(r"[,;:.()!?]|\d", sentence[fig.end :], maxsplit=1)[0]
    after = " ".join(re.findall(r"\w+", clause)[: len(weights) + 2])
    before = re.split(r"[,;:.()!?]", sentence[: fig.start])[-1]
    return _cover(after, weights) + 0.5 * _cover(before, weights)


def _by_article(passages: tuple[Passage, ...]) -> list[tuple[Passage, ...]]:
    groups: dict[str, list[Passage]] = {}
    for p in passages:
        groups.setdefault(p.chunk.doc_id, []).append(p)
    return [tuple(g) for g in groups.values()]


def _judge(rows: list[Row], by: str, order: str, span_days: int) -> list[Row]:
    """Sort and annotate: by province, each province's latest figure; rows of the most common
    kind sorted by number (a bound or an estimate keeps its place but says so), a date more than
    `span_days` from the median of theirs said, rows of another kind after them; by date, each
    province's rows oldest first."""
    if not rows:
        return rows
    if by == "date":
        return sorted(rows, key=lambda r: (r.province, r.as_of or "", r.date or ""))
    best: dict[str, Row] = {}
    for r in rows:  # one row per province: its latest figure
        old = best.get(r.province)
        if old is None or (r.as_of or "") > (old.as_of or ""):
            best[r.province] = r
    rows = list(best.values())
    kinds = Counter(_comparable(r) for r in rows)
    main = max(kinds, key=lambda k: (kinds[k], k == "count"))
    same = [r for r in rows if _comparable(r) == main]
    dated = sorted(last_day(r.as_of) for r in same if r.as_of)
    middle = dated[len(dated) // 2] if dated else None  # the bulk's date, not one outlier's
    out = []
    for r in rows:
        notes = []
        cls = _comparable(r)
        if cls != main:
            notes.append(f"{_KIND_NAMES[cls][0]} among {_KIND_NAMES[main][1]}")
        if r.figure.qualifier:
            notes.append(f"“{r.figure.qualifier}”: not exact")
        if r.as_of is None:
            notes.append("undated")
        elif middle is not None:
            gap = (last_day(r.as_of) - middle).days
            if abs(gap) > span_days:
                months = round(abs(gap) / 30.4)
                notes.append(f"{months} months {'after' if gap > 0 else 'before'} most figures")
        out.append(replace(r, notes=tuple(notes)))
    sign = -1 if order == "descending" else 1

    def order_key(r: Row) -> tuple[bool, float]:
        ours = _comparable(r) == main
        return (not ours, sign * r.figure.number if ours else 0.0)

    out.sort(key=order_key)
    return out


def _comparable(r: Row) -> str:
    """The kind a row's figure compares with: a fraction's numerator counts ("23/25 dịch vụ")."""
    return "count" if r.figure.kind == "fraction" else r.figure.kind


_KIND_NAMES = {
    "count": ("a count", "counts"),
    "percent": ("a share (%)", "shares (%)"),
    "money": ("a sum of money", "sums of money"),
    "rank": ("a rank", "ranks"),
}
