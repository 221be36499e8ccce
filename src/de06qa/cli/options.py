"""The options several commands share (index, backend, filters), declared once, and the
Settings and Filters they make."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from de06qa.config import Settings
from de06qa.errors import BadQuery

if TYPE_CHECKING:
    from de06qa.filters import Filters

IndexDirOpt = Annotated[
    Path | None,
    typer.Option("--index-dir", metavar="DIR", help="Index folder (env DE06QA_INDEX_DIR; default index/)"),
]


BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", metavar="NAME", help="embedded (default) or milvus [env DE06QA_BACKEND]"),
]
MilvusUriOpt = Annotated[
    str | None,
    typer.Option(
        "--milvus-uri",
        metavar="URI",
        help="Milvus for --backend milvus: a Milvus Lite file (milvus.db) or http://host:19530 [env DE06QA_MILVUS_URI]",
    ),
]
CollectionOpt = Annotated[
    str | None,
    typer.Option(
        "--collection", metavar="NAME", help="Milvus collection name (default de06qa) [env DE06QA_COLLECTION]"
    ),
]
ProvinceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--province",
        metavar="NAME",
        help="Only articles about this province (repeatable; a 2025 name such as 'Tuyên Quang' covers its former provinces)",
    ),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DATE",
        help="Only articles published on or after DATE (YYYY-MM-DD, YYYY-MM or YYYY)",
    ),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="DATE",
        help="Only articles published on or before DATE (YYYY-MM-DD, YYYY-MM or YYYY)",
    ),
]
SortOpt = Annotated[
    str,
    typer.Option(
        "--sort", metavar="ORDER", help="relevance, or date: the k most relevant passages, newest first"
    ),
]


def filters_of(province: list[str] | None, since: str | None, until: str | None) -> Filters:
    from de06qa.filters import empty_range, parse_filters

    f = parse_filters(province or (), since, until)
    if empty_range(f):
        raise BadQuery(f"--since {f.since} is after --until {f.until}; swap them")
    return f


def settings_of(
    index_dir: Path | None,
    backend: str | None = None,
    milvus_uri: str | None = None,
    collection: str | None = None,
) -> Settings:
    return Settings.from_env().with_(
        index_dir=index_dir, backend=backend, milvus_uri=milvus_uri, collection=collection
    )
