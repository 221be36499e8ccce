"""File formats: each turns a file's bytes into the raw text of an article (paged or not).

One module per format, each the only place that imports its parsing library; ingest cleans what
they return the same way whatever the format, so every offset points into the same kind of text.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


class DecodeError(ValueError):
    """The file cannot be read as an article; the message is the skip reason shown to the user."""


@dataclass(frozen=True)
class Extracted:
    """A file's text before cleaning. `pages` holds one entry per page of a paged source (PDF) and
    a single entry otherwise; `title` and `date` come from the file's own metadata when it has them."""

    pages: tuple[str, ...]
    paged: bool = False
    title: str | None = None
    date: str | None = None  # ISO yyyy-mm-dd
    url: str | None = None  # a web page's address (its canonical link, or where `de06qa fetch` got it)


# Suffix -> (module of this package, its function). The parsing libraries are imported on first
# use of their format: indexing .txt files (and answering questions) never loads trafilatura,
# pypdf or python-docx.
READERS: dict[str, tuple[str, str]] = {
    ".txt": ("plain", "extract"),
    ".md": ("plain", "extract_markdown"),
    ".html": ("html", "extract"),
    ".htm": ("html", "extract"),
    ".pdf": ("pdf", "extract"),
    ".docx": ("docx", "extract"),
}
# Formats people often have that we do not read, with what to do instead.
UNSUPPORTED: dict[str, str] = {
    ".doc": "old Word .doc format; save it as .docx",
    ".rtf": "RTF is not read; save it as .docx",
    ".odt": "OpenDocument text is not read; save it as .docx",
    ".pptx": "presentations are not read; export to PDF",
    ".xlsx": "spreadsheets are not read",
}

MEDIA_TYPES = {
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


def supported() -> str:
    return ", ".join(READERS)


# What to install when a format's parsing library cannot be imported.
PACKAGES = {"html": "trafilatura lxml_html_clean", "pdf": "pypdf", "docx": "python-docx"}


def extract(suffix: str, data: bytes) -> Extracted:
    """The text of a file of a supported format (`suffix` lower-case, with its dot)."""
    module, function = READERS[suffix]
    try:
        loaded = importlib.import_module(f"de06qa.formats.{module}")
    except ImportError as e:
        # A missing optional library skips the files of its format; the others are indexed.
        raise DecodeError(
            f"reading {suffix} files needs a library that cannot be imported ({str(e).splitlines()[0]}); "
            f"pip install {PACKAGES.get(module, module)}"
        ) from e
    reader: Callable[[bytes], Extracted] = getattr(loaded, function)
    return reader(data)
