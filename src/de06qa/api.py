"""The HTTP service: FastAPI app factory, request/response models, error → HTTP mapping.

Routes only translate between HTTP and the `Searcher`; `service.Service` owns the loaded index.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any, Literal
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from de06qa.config import Settings
from de06qa.documents import Article
from de06qa.embedding import Embedder
from de06qa.errors import (
    BadQuery,
    De06qaError,
    IndexDamaged,
    IndexIncompatible,
    IndexMissing,
    ModelUnavailable,
    UnknownDocument,
)
from de06qa.search import EMPTY_QUESTION
from de06qa.service import Service

K_MAX = 50
Q_MAX = Settings().max_query_chars
# In the schema too, so generated clients and schemathesis know a blank question is not valid.
# The pattern: some character that Python's str.strip() keeps (it also strips U+001C-1F and U+0085,
# which JSON Schema's \s does not cover).
Q_PATTERN = r"[^\s\u001c-\u001f\u0085]"
Mode = Literal["hybrid", "bm25", "dense"]

_STATUS: dict[type[De06qaError], int] = {
    BadQuery: 422,
    UnknownDocument: 404,
    IndexMissing: 503,
    IndexDamaged: 503,
    IndexIncompatible: 503,
    ModelUnavailable: 503,
}


# -- request and response models ------------------------------------------------------------------
class SearchRequest(BaseModel):
    q: str = Field(
        description="The question, 1–1000 characters",
        examples=["Hà Giang có bao nhiêu dịch vụ công toàn trình?"],
        min_length=1,
        max_length=Q_MAX,
        pattern=Q_PATTERN,
    )
    k: int = Field(5, ge=1, le=K_MAX, description="Passages to return")
    mode: Mode = Field("hybrid", description="Retrieval mode; hybrid is the default and the best")


class AnswerOut(BaseModel):
    text: str
    sentence: str
    doc_id: str
    start: int = Field(description="Offset of the answer text in the article text")
    end: int
    sentence_start: int
    sentence_end: int


class ScoresOut(BaseModel):
    lexical: float
    dense: float


class ResultOut(BaseModel):
    rank: int
    chunk_id: str
    doc_id: str
    title: str
    source: str
    date: str | None
    text: str
    start: int = Field(description="Offset of the passage in the text GET /documents/{doc_id} returns")
    end: int
    score: float
    scores: ScoresOut


class SearchOut(BaseModel):
    query: str
    answerable: bool
    confidence: float
    answer: AnswerOut | None
    results: list[ResultOut]
    timings_ms: dict[str, float]


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    source: str
    date: str | None
    provinces: list[str]
    provinces_2025: list[str]
    chars: int


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


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Query string or body that is not UTF-8"},
    404: {"model": ErrorOut},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut, "description": "No usable index (missing, damaged or from another model)"},
}


class Utf8QueryString:
    """Reject a query string whose %-escapes are not UTF-8: Starlette would otherwise decode them
    to U+FFFD silently and search for a garbled question."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            try:
                unquote_to_bytes(scope["query_string"].replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                response = JSONResponse(
                    {"detail": "the query string is not valid UTF-8; percent-encode the question as UTF-8"},
                    status_code=400,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _one_line(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        if e.get("type") == "json_invalid":
            return f'the request body is not valid JSON ({e.get("ctx", {}).get("error", "decode error")}); send {{"q": "…", "k": 5}}'
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
        if where == "q" and e.get("type") in ("string_too_short", "string_pattern_mismatch"):
            return EMPTY_QUESTION
        if where == "q" and e.get("type") == "string_too_long":
            return f"the question has {len(e.get('input', ''))} characters; the limit is {Q_MAX}"
        parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
    return "; ".join(parts) or "invalid request"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _summary(a: Article) -> dict[str, Any]:
    return {
        "doc_id": a.doc_id,
        "title": a.title,
        "source": a.source,
        "date": a.date,
        "provinces": list(a.provinces),
        "provinces_2025": list(a.provinces_2025),
        "chars": len(a.text),
    }


def create_app(settings: Settings | None = None, embedder: Embedder | None = None) -> FastAPI:
    """The app; one `Service` (one Searcher at a time) is loaded at startup.

    `embedder` lets tests pass a small fake model; by default the Settings' model is loaded."""
    settings = settings or Settings.from_env()
    service = Service(settings, embedder)
    page = resources.files("de06qa").joinpath("web/index.html").read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        service.stop()

    app = FastAPI(
        title="de06qa",
        summary="Question answering over Vietnamese news about Đề án 06",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(Utf8QueryString)

    @app.exception_handler(De06qaError)
    async def _domain_error(request: Request, exc: De06qaError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_STATUS.get(type(exc), 400))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:
            detail = 'the request body is not UTF-8 JSON; send {"q": "…", "k": 5} encoded as UTF-8'
        elif exc.status_code == 405:
            # One path may have several routes (GET and POST /search): list every method it takes,
            # not only those of the first route Starlette tried.
            allowed = sorted(
                {
                    m
                    for r in app.router.routes
                    if r.matches(request.scope)[0] == Match.PARTIAL
                    for m in getattr(r, "methods", ()) or ()
                }
            )
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use {' or '.join(allowed)}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    # Plain `def` routes: FastAPI runs them in its thread pool, so a search (CPU-bound, ~30 ms)
    # never blocks the event loop and several run at once.
    @app.get("/search", response_model=SearchOut, responses=_ERRORS, tags=["search"])
    def search_get(
        q: Annotated[
            str,
            Query(
                description="The question, 1–1000 characters",
                examples=["Hà Giang có bao nhiêu dịch vụ công toàn trình?"],
                min_length=1,
                max_length=Q_MAX,
                pattern=Q_PATTERN,
            ),
        ],
        k: Annotated[int, Query(ge=1, le=K_MAX, description="Passages to return")] = 5,
        mode: Annotated[Mode, Query(description="Retrieval mode")] = "hybrid",
    ) -> dict[str, Any]:
        """Answer a question: the answer span, its sentence, and ranked passages with citations."""
        return service.searcher().search(q, k, mode).to_dict()

    @app.post("/search", response_model=SearchOut, responses=_ERRORS, tags=["search"])
    def search_post(body: SearchRequest) -> dict[str, Any]:
        """The same search with a JSON body: `{"q": "…", "k": 5}`."""
        return service.searcher().search(body.q, body.k, body.mode).to_dict()

    @app.get("/documents", response_model=DocumentsOut, responses=_ERRORS, tags=["documents"])
    def documents() -> dict[str, Any]:
        """Every indexed article with its metadata."""
        return {"documents": [_summary(a) for a in service.searcher().data.articles.values()]}

    @app.get("/documents/{doc_id}", response_model=DocumentOut, responses=_ERRORS, tags=["documents"])
    def document(doc_id: str) -> dict[str, Any]:
        """One article: the text that every `start`/`end` offset of a search refers to."""
        a = service.searcher().document(doc_id)
        return {**_summary(a), "text": a.text}

    @app.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}}, tags=["service"])
    def health() -> JSONResponse:
        """Readiness: 200 with the model and corpus size when an index is loaded, else 503 with why."""
        h = service.health()
        return JSONResponse(h, status_code=200 if h["status"] == "ok" else 503)

    @app.post(
        "/admin/reload",
        response_model=ReloadOut,
        responses={403: {"model": ErrorOut}, **_ERRORS},
        tags=["service"],
    )
    def reload(request: Request) -> Any:
        """Load the index folder again (after `de06qa index`); only from this machine (loopback)."""
        if not _is_loopback(request.client.host if request.client else ""):
            return JSONResponse({"detail": "reload is only allowed from 127.0.0.1"}, status_code=403)
        s = service.reload()
        return {
            "reloaded": True,
            "built_at": s.data.manifest.get("built_at"),
            "documents": len(s.data.articles),
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index_page() -> HTMLResponse:
        return HTMLResponse(page)

    return app
