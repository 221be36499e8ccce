"""The HTTP service: FastAPI app factory, request/response models, error → HTTP mapping.

Routes only translate between HTTP and the `Searcher`; `service.Service` owns the loaded index.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote_to_bytes

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from de06qa.config import Settings
from de06qa.contract import (
    CompareOut,
    DocumentOut,
    DocumentsOut,
    ErrorOut,
    HealthOut,
    ReloadOut,
    SearchOut,
    Sort,
    compare_out,
    search_out,
)
from de06qa.documents import Article
from de06qa.embedding import Embedder
from de06qa.errors import (
    BackendUnavailable,
    BadQuery,
    De06qaError,
    IndexDamaged,
    IndexIncompatible,
    IndexMissing,
    ModelUnavailable,
    UnknownDocument,
)
from de06qa.filters import DATE_PATTERN, date_error, parse_filters
from de06qa.formats import MEDIA_TYPES
from de06qa.gazetteer import MERGED_2025, PROVINCES
from de06qa.reader import Reader
from de06qa.search import EMPTY_QUESTION
from de06qa.service import Service

K_MAX = 50
Q_MAX = Settings().max_query_chars
# In the schema too, so generated clients and schemathesis know a blank question is not valid.
# The pattern: some character that Python's str.strip() keeps (it also strips U+001C-1F and U+0085,
# which JSON Schema's \s does not cover).
Q_PATTERN = r"[^\s\u001c-\u001f\u0085]"
Mode = Literal["hybrid", "bm25", "dense"]
# The schema lists the province names (old and 2025) so that clients and Swagger UI offer them;
# the server also takes them without diacritics ("ha giang"). An empty value is no filter (what a
# form's empty choice sends), so the list holds "" too.
ProvinceName = Annotated[str, Field(json_schema_extra={"enum": ["", *sorted({*PROVINCES, *MERGED_2025})]})]
MAX_PROVINCES = len({*PROVINCES, *MERGED_2025})
PROVINCE_HELP = (
    "Only articles about this province (repeatable); a 2025 merged name (Tuyên Quang) covers "
    "its former provinces (Hà Giang)"
)
SINCE_HELP = (
    "Only articles published on or after this date (YYYY-MM-DD, YYYY-MM or YYYY); undated ones are left out"
)
UNTIL_HELP = (
    "Only articles published on or before this date (YYYY-MM-DD, YYYY-MM or YYYY); undated ones are left out"
)
BY_HELP = (
    "province: one row each; date: one province's articles over time "
    "(default: date when the question says 'qua các năm', else province)"
)
SORT_HELP = "relevance (default), or date: the k most relevant passages, newest first"

# The filter parameters of GET /search and GET /compare.
ProvinceQuery = Annotated[list[ProvinceName], Query(description=PROVINCE_HELP, max_length=MAX_PROVINCES)]
SinceQuery = Annotated[str | None, Query(description=SINCE_HELP, pattern=DATE_PATTERN)]
UntilQuery = Annotated[str | None, Query(description=UNTIL_HELP, pattern=DATE_PATTERN)]

_STATUS: dict[type[De06qaError], int] = {
    BadQuery: 422,
    UnknownDocument: 404,
    IndexMissing: 503,
    IndexDamaged: 503,
    IndexIncompatible: 503,
    ModelUnavailable: 503,
    BackendUnavailable: 503,
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
    province: list[ProvinceName] = Field(
        default_factory=list, description=PROVINCE_HELP, examples=[["Tuyên Quang"]], max_length=MAX_PROVINCES
    )
    since: str | None = Field(None, description=SINCE_HELP, examples=["2024-01-01"], pattern=DATE_PATTERN)
    until: str | None = Field(None, description=UNTIL_HELP, examples=["2024-12-31"], pattern=DATE_PATTERN)
    sort: Sort = Field("relevance", description=SORT_HELP)

    @field_validator("k", mode="before")
    @classmethod
    def _no_bool(cls, v: object) -> object:
        # JSON true is not the integer 1 (pydantic's lax mode would take it as 1).
        if isinstance(v, bool):
            raise ValueError("k must be an integer, not true/false")
        return v


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
        if where in ("since", "until") and e.get("type") == "string_pattern_mismatch":
            return date_error(where, e.get("input"))
        if where == "q" and e.get("type") in ("string_too_short", "string_pattern_mismatch"):
            return EMPTY_QUESTION
        if where == "q" and e.get("type") == "string_too_long":
            return f"the question has {len(e.get('input', ''))} characters; the limit is {Q_MAX}"
        parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
    return "; ".join(parts) or "invalid request"


def _json_body(request: Request) -> None:
    """A POST body must be JSON: a form or plain text gets 415 saying what to send (a request
    without a Content-Type is read as JSON, as curl users expect)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise StarletteHTTPException(
            415, f'Content-Type {ctype} is not JSON; send Content-Type: application/json with {{"q": "…"}}'
        )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def media_type(a: Article) -> str:
    return MEDIA_TYPES.get(Path(a.file or a.source).suffix.lower(), "application/octet-stream")


def _summary(a: Article, chars: int) -> dict[str, Any]:
    return {
        "doc_id": a.doc_id,
        "title": a.title,
        "source": a.source,
        "url": a.url or None,
        "date": a.date,
        "provinces": list(a.provinces),
        "provinces_2025": list(a.provinces_2025),
        "chars": chars,
        "pages": len(a.pages) or None,
        "media_type": media_type(a),
    }


# Swagger UI and ReDoc assets shipped in the fastapi-offline package (FastAPI's self-hosting recipe):
# /docs and /redoc work without internet. The policy keeps the pages on this server: ReDoc's
# sidebar shows a logo from its vendor's CDN, which the browser then does not fetch.
DOCS_ASSETS = resources.files("fastapi_offline") / "static"
SAME_ORIGIN_ONLY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; font-src 'self' data:"
)


def _api_docs(app: FastAPI) -> None:
    app.mount("/docs-assets", StaticFiles(directory=str(DOCS_ASSETS)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="de06qa API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )
        page.headers["Content-Security-Policy"] = SAME_ORIGIN_ONLY
        return page

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url="/openapi.json",
            title="de06qa API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = SAME_ORIGIN_ONLY
        return page


def create_app(
    settings: Settings | None = None, embedder: Embedder | None = None, reader: Reader | None = None
) -> FastAPI:
    """The app; one `Service` (one Searcher at a time) is loaded at startup.

    `embedder` and `reader` let tests pass small fake models; by default the Settings' model and
    the shipped reader are loaded."""
    settings = settings or Settings.from_env()
    service = Service(settings, embedder, reader)
    page = resources.files("de06qa").joinpath("web/index.html").read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        service.stop()

    app = FastAPI(
        title="de06qa",
        docs_url=None,  # served below from packaged assets, not a CDN
        redoc_url=None,
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
        province: ProvinceQuery = [],  # noqa: B006 (FastAPI copies the default)
        since: SinceQuery = None,
        until: UntilQuery = None,
        sort: Annotated[Sort, Query(description=SORT_HELP)] = "relevance",
    ) -> SearchOut:
        """Answer a question: the answer span, its sentence, and ranked passages with citations,
        optionally within provinces and a date range; with facets per province and year."""
        filters = parse_filters(province, since, until)
        return search_out(service.searcher().search(q, k, mode, filters, sort))

    @app.post(
        "/search",
        response_model=SearchOut,
        responses={415: {"model": ErrorOut, "description": "A body that is not JSON"}, **_ERRORS},
        tags=["search"],
        dependencies=[Depends(_json_body)],
    )
    def search_post(body: SearchRequest) -> SearchOut:
        """The same search with a JSON body: `{"q": "…", "k": 5, "province": ["Hà Giang"]}`."""
        filters = parse_filters(body.province, body.since, body.until)
        return search_out(service.searcher().search(body.q, body.k, body.mode, filters, body.sort))

    @app.get("/compare", response_model=CompareOut, responses=_ERRORS, tags=["search"])
    def compare_get(
        q: Annotated[
            str,
            Query(
                description="An indicator or a question across provinces, 1–1000 characters",
                examples=["Tỉnh nào có nhiều dịch vụ công trực tuyến toàn trình nhất?"],
                min_length=1,
                max_length=Q_MAX,
                pattern=Q_PATTERN,
            ),
        ],
        by: Annotated[
            Literal["province", "date"] | None,
            Query(description=BY_HELP),
        ] = None,
        province: ProvinceQuery = [],  # noqa: B006 (FastAPI copies the default)
        since: SinceQuery = None,
        until: UntilQuery = None,
    ) -> CompareOut:
        """One figure across provinces (or one province over time): the value as written and
        parsed, its as-of date, its sentence and citation, sorted where the rows compare."""
        from de06qa.compare import compare

        return compare_out(compare(service.searcher(), q, by, parse_filters(province, since, until)))

    @app.get("/documents", response_model=DocumentsOut, responses=_ERRORS, tags=["documents"])
    def documents() -> dict[str, Any]:
        """Every indexed article with its metadata."""
        return {"documents": [_summary(a, n) for a, n in service.searcher().backend.documents()]}

    # `:path` because an article from a sub-folder has a "/" in its doc_id ("2024/ha-giang"); the
    # /source route comes first, else "/documents/x/source" would read as the doc_id "x/source".
    @app.get(
        "/documents/{doc_id:path}/source",
        response_class=FileResponse,
        responses={200: {"description": "The original file, with its media type"}, **_ERRORS},
        tags=["documents"],
    )
    def document_source(doc_id: str) -> FileResponse:
        """The original file the article was read from (PDF, Word, web page or text); a PDF link may
        add `#page=N` to open it at a passage's page."""
        a = service.searcher().document(doc_id)
        if not a.file or not Path(a.file).is_file():
            raise UnknownDocument(
                f"the original file of {doc_id!r} ({a.file or a.source}) is no longer there; "
                "re-index its folder with de06qa index"
            )
        # inline: a browser shows a PDF or a page instead of downloading it
        return FileResponse(
            a.file, media_type=media_type(a), filename=Path(a.file).name, content_disposition_type="inline"
        )

    @app.get("/documents/{doc_id:path}", response_model=DocumentOut, responses=_ERRORS, tags=["documents"])
    def document(doc_id: str) -> dict[str, Any]:
        """One article: the text that every `start`/`end` offset of a search refers to."""
        a = service.searcher().document(doc_id)
        return {**_summary(a, len(a.text)), "text": a.text}

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
        """Load the index again (after `de06qa index`); only from this machine (loopback)."""
        if not _is_loopback(request.client.host if request.client else ""):
            return JSONResponse({"detail": "reload is only allowed from 127.0.0.1"}, status_code=403)
        s = service.reload()
        return {
            "reloaded": True,
            "built_at": s.backend.manifest.get("built_at"),
            "documents": s.backend.stats.documents,
        }

    _api_docs(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index_page() -> HTMLResponse:
        return HTMLResponse(page)

    return app
