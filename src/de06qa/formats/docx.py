"""Word documents (.docx) through python-docx: paragraphs and tables in document order."""

from __future__ import annotations

import io
from typing import Any

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from de06qa.formats import DecodeError, Extracted
from de06qa.text import nfc


def extract(data: bytes) -> Extracted:
    # A damaged .docx fails inside zipfile, lxml or python-docx with many kinds of errors; one bad
    # file must be skipped with its reason, not end the build.
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except Exception as e:
        raise DecodeError(
            f"not a readable Word .docx file ({type(e).__name__}: {e}); open and save it again"
        ) from e
    lines: list[str] = []
    title: str | None = None
    for block in blocks:
        if isinstance(block, Paragraph):
            text = block.text.strip()
            if text and title is None and _is_heading(block):
                title = text
            if text:
                lines.append(text)
        elif isinstance(block, Table):
            lines.extend(_table_rows(block))
    if not lines:
        raise DecodeError("empty document (no text)")
    core_title = (document.core_properties.title or "").strip()
    return Extracted((nfc("\n".join(lines)),), title=nfc(title or core_title) or None)


def _is_heading(p: Paragraph) -> bool:
    name = p.style.name if p.style is not None else ""
    return name == "Title" or name.startswith("Heading")


def _table_rows(table: Table) -> list[str]:
    """One line per row, cells joined by " | " (merged cells repeat in python-docx: kept once)."""
    rows: list[str] = []
    for row in table.rows:
        cells: list[Any] = list(dict.fromkeys(c.text.strip() for c in row.cells))
        line = " | ".join(c for c in cells if c)
        if line:
            rows.append(line)
    return rows
