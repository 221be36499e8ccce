"""de06qa — retrieval-based question answering over Vietnamese news about "Đề án 06".

The Python API (the CLI and the HTTP service are built on the same calls):

    from de06qa import index_folder, open_index, search_json

    index_folder("myreports", index_dir="myreports-index")      # only new or changed files are embedded
    searcher = open_index("myreports-index")
    result = searcher.search("Hà Giang có bao nhiêu dịch vụ công toàn trình?", k=3)
    result.answer.text if result.answerable else None           # "665"
    search_json(result)                                          # the JSON of `de06qa ask --json`

Names are imported on first use, so `import de06qa` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from de06qa.config import Settings
    from de06qa.contract import compare_json, search_json
    from de06qa.errors import De06qaError
    from de06qa.filters import Filters
    from de06qa.indexing import BuildSummary
    from de06qa.search import Searcher, SearchResult

__version__ = "0.1.0"
__all__ = [
    "BuildSummary",
    "De06qaError",
    "Filters",
    "SearchResult",
    "Searcher",
    "Settings",
    "compare_json",
    "index_folder",
    "open_index",
    "search_json",
]  # fmt: skip

_LAZY = {
    "Settings": "de06qa.config",
    "De06qaError": "de06qa.errors",
    "Filters": "de06qa.filters",
    "BuildSummary": "de06qa.indexing",
    "Searcher": "de06qa.search",
    "SearchResult": "de06qa.search",
    "search_json": "de06qa.contract",
    "compare_json": "de06qa.contract",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'de06qa' has no attribute {name!r}")


def _settings(index_dir: str | Path | None, settings: Settings | None) -> Settings:
    from de06qa.config import Settings

    s = settings or Settings.from_env()
    return s.with_(index_dir=Path(index_dir) if index_dir is not None else None)


def open_index(index_dir: str | Path | None = None, settings: Settings | None = None) -> Searcher:
    """A Searcher over the index at `index_dir` (default: the settings', `index/`); the model loads
    on the first question. Raises De06qaError subclasses with a message to show."""
    from de06qa.search import open_searcher

    return open_searcher(_settings(index_dir, settings))


def index_folder(
    folder: str | Path,
    index_dir: str | Path | None = None,
    rebuild: bool = False,
    settings: Settings | None = None,
) -> BuildSummary:
    """Index the articles under `folder` (.txt .md .html .pdf .docx) into `index_dir`; a second
    call embeds only new or changed articles. Files that cannot be read are in `.skipped`."""
    from de06qa.embedding import create_embedder
    from de06qa.indexing import build_index

    s = _settings(index_dir, settings)
    return build_index(s, Path(folder), create_embedder(s), rebuild=rebuild)
