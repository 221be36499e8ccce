"""The JSON contract: what a search, a comparison and the service's other answers look like, as
pydantic models. The HTTP API declares them (its OpenAPI schema), and `search_json` and
`compare_json` give the same JSON to the CLI (`--json`) and the evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from de06qa.dated import number_of

if TYPE_CHECKING:  # read through their attributes: `de06qa ask` need not import compare
    from de06qa.compare import Comparison, Row
    from de06qa.search.results import AnswerSpan, SearchResult

Sort = Literal["relevance", "date"]


class DatedAnswerOut(BaseModel):
    text: str
    sentence: str
    doc_id: str
    start: int = Field(description="Offset of the answer text in the article text")
    end: int
    sentence_start: int
    sentence_end: int
    page: int | None = Field(description="1-based page of the answer in a paged source (PDF), else null")
    number: float | None = Field(description="The answer's figure as a number (its first), else null")
    as_of: str | None = Field(description="The date the figure holds for (ISO, as precise as the text)")
    as_of_from: Literal["sentence", "paragraph", "article"] | None = Field(
        description="Where that date was read: the answer's sentence, a sentence before it, the publication date"
    )


class OtherAnswerOut(DatedAnswerOut):
    title: str
    confidence: float


class AnswerOut(DatedAnswerOut):
    conflict: bool = Field(description="Another article gives a different figure for the same date")
    others: list[OtherAnswerOut] = Field(
        description="What other articles answer, newest first: the answer is the newest, or the one for the time the question names"
    )


class ScoresOut(BaseModel):
    lexical: float
    dense: float


class ResultOut(BaseModel):
    rank: int
    chunk_id: str
    doc_id: str
    title: str
    source: str
    url: str | None = Field(
        description="The web page's address, for an article `de06qa fetch` saved (else its canonical link, or null)"
    )
    date: str | None
    text: str
    start: int = Field(description="Offset of the passage in the text GET /documents/{doc_id} returns")
    end: int
    page: int | None = Field(
        description="1-based page of the passage in a paged source (PDF), else null; "
        "GET /documents/{doc_id}/source#page=N opens it there"
    )
    score: float
    scores: ScoresOut


class FiltersOut(BaseModel):
    province: list[str] = Field(description="Province filters applied (canonical names)")
    since: str | None
    until: str | None
    sort: Sort
    undated_excluded: int = Field(description="Articles without a known date that a date filter left out")


class FacetsOut(BaseModel):
    province: dict[str, int] = Field(
        description="Passages the question retrieved (within the filters) per province, largest first"
    )
    year: dict[str, int] = Field(description="The same per publication year, newest first, then 'undated'")


class SearchOut(BaseModel):
    query: str
    read_as: str = Field(
        description="The question as the models read it: as typed, or with the marks it was typed without"
    )
    answerable: bool
    confidence: float
    answer: AnswerOut | None
    results: list[ResultOut]
    filters: FiltersOut
    facets: FacetsOut
    comparative: bool = Field(
        description="The question asks across provinces or over time: GET /compare answers it with a table"
    )
    timings_ms: dict[str, float]


class CompareRowOut(BaseModel):
    province: str = Field(
        description="The province the figure is about, as the article names it (pre-2025 name)"
    )
    province_2025: str = Field(description="The province it belongs to since the 2025 mergers")
    value: str = Field(description="The figure as written, qualifier included: 'hơn 1,5 triệu', '88,6%'")
    number: float = Field(description="The figure parsed: 1500000, 88.6 (a fraction's numerator)")
    unit: str = Field(description="'%', 'đồng' or the noun counted ('dịch vụ công'); '' if none")
    kind: Literal["count", "percent", "money", "fraction", "rank"]
    qualifier: str | None = Field(description="'hơn', 'gần', 'trên', …: a bound or an estimate")
    total: float | None = Field(description="A fraction's or a rank's denominator (1.818/1.876 → 1876)")
    upper: float | None = Field(description="A range's upper end")
    as_of: str | None = Field(description="When the figure holds: YYYY-MM-DD, YYYY-MM or YYYY")
    as_of_from: Literal["sentence", "paragraph", "article", "none"] = Field(
        description="Where as_of was read: the figure's sentence, an earlier sentence of its paragraph, "
        "or the article's publication date"
    )
    doc_id: str
    title: str
    date: str | None = Field(description="The article's publication date")
    start: int = Field(description="Offset of `value` in the article text")
    end: int
    page: int | None
    sentence: str
    sentence_start: int
    sentence_end: int
    confidence: float
    compares: bool = Field(description="Whether the row compares with the others (no notes)")
    notes: list[str] = Field(description="Why it may not: another kind of figure, not exact, older, undated")


class CompareFiltersOut(BaseModel):
    province: list[str]
    since: str | None
    until: str | None


class CompareOut(BaseModel):
    query: str
    indicator: str = Field(description="What was compared: the question without its comparison words")
    by: Literal["province", "date"]
    order: Literal["descending", "ascending"]
    rows: list[CompareRowOut]
    silent: list[str] = Field(description="Provinces read whose articles give no confident figure")
    leader: str | None = Field(description="The first row's province when every row of its kind compares")
    filters: CompareFiltersOut
    timings_ms: dict[str, float]


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    source: str
    url: str | None = Field(description="The web page's address, for a fetched page (else null)")
    date: str | None
    provinces: list[str]
    provinces_2025: list[str]
    chars: int
    pages: int | None = Field(description="Number of pages of a paged source (PDF), else null")
    media_type: str = Field(
        description="Media type of the original file GET /documents/{doc_id}/source returns"
    )


class DocumentOut(DocumentSummary):
    text: str = Field(description="The cleaned article text every start/end offset refers to")


class DocumentsOut(BaseModel):
    documents: list[DocumentSummary]


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    reason: str | None = None
    model: str | None = None
    documents: int = 0
    chunks: int = 0
    built_at: str | None = None
    loaded_at: str | None = None
    index_dir: str


class ReloadOut(BaseModel):
    reloaded: bool
    built_at: str | None
    documents: int


class ErrorOut(BaseModel):
    detail: str


def _answer(a: AnswerSpan) -> dict[str, Any]:
    return {
        "text": a.text, "sentence": a.sentence, "doc_id": a.doc_id, "start": a.start, "end": a.end,
        "sentence_start": a.sentence_start, "sentence_end": a.sentence_end, "page": a.page,
        "number": number_of(a.text), "as_of": a.as_of, "as_of_from": a.as_of_from,
    }  # fmt: skip


def search_out(res: SearchResult) -> SearchOut:
    a = res.answer
    answer = None
    if a is not None:
        others = [
            OtherAnswerOut(**_answer(o), title=o.title, confidence=round(o.confidence, 4)) for o in a.others
        ]
        answer = AnswerOut(**_answer(a), conflict=a.conflict, others=others)
    return SearchOut(
        query=res.query,
        read_as=res.read_as or res.query,
        answerable=res.answerable,
        confidence=round(res.confidence, 4),
        answer=answer,
        results=[
            ResultOut(
                rank=p.rank,
                chunk_id=p.chunk.chunk_id,
                doc_id=p.chunk.doc_id,
                title=p.article.title,
                source=p.article.source,
                url=p.article.url or None,
                date=p.article.date,
                text=p.chunk.text,
                start=p.chunk.start,
                end=p.chunk.end,
                page=p.article.page_at(p.chunk.start),
                score=round(p.score, 4),
                scores=ScoresOut(lexical=round(p.lexical, 4), dense=round(p.dense, 4)),
            )
            for p in res.passages
        ],
        filters=FiltersOut.model_validate(
            {**res.filters.to_dict(), "sort": res.sort, "undated_excluded": res.undated_excluded}
        ),
        facets=FacetsOut(province=res.facets.get("province", {}), year=res.facets.get("year", {})),
        comparative=res.comparative,
        timings_ms={k: round(v, 2) for k, v in res.timings_ms.items()},
    )


def search_json(res: SearchResult) -> dict[str, Any]:
    """The JSON of one search (`de06qa ask --json`, GET /search)."""
    return search_out(res).model_dump()


def _row(r: Row) -> CompareRowOut:
    f = r.figure
    return CompareRowOut(
        province=r.province, province_2025=r.province_2025, value=f.value, number=f.number, unit=f.unit,
        kind=f.kind, qualifier=f.qualifier, total=f.total, upper=f.upper, as_of=r.as_of,  # type: ignore[arg-type]
        as_of_from=r.as_of_from, doc_id=r.doc_id, title=r.title, date=r.date, start=f.start, end=f.end,  # type: ignore[arg-type]
        page=r.page, sentence=r.sentence.text, sentence_start=r.sentence.start, sentence_end=r.sentence.end,
        confidence=round(r.confidence, 4), compares=not r.notes, notes=list(r.notes),
    )  # fmt: skip


def compare_out(c: Comparison) -> CompareOut:
    lead = c.leader
    return CompareOut(
        query=c.query, indicator=c.indicator, by=c.by, order=c.order,  # type: ignore[arg-type]
        rows=[_row(r) for r in c.rows], silent=list(c.silent), leader=None if lead is None else lead.province,
        filters=CompareFiltersOut.model_validate(c.filters.to_dict()),
        timings_ms={k: round(v, 2) for k, v in c.timings_ms.items()},
    )  # fmt: skip


def compare_json(c: Comparison) -> dict[str, Any]:
    """The JSON of one comparison (`de06qa compare --json`, GET /compare)."""
    return compare_out(c).model_dump()
