"""PDF reports: text per page through pypdf, page furniture removed, hard-wrapped lines joined.

pypdf rather than pdfminer.six: it is pure Python with no dependencies, gives the text page by page
(what citations to a page need), and tells an encrypted file from a broken one; pdfminer's extra
layout analysis buys nothing for running text."""

from __future__ import annotations

import io
import logging
import re
from collections import Counter

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from de06qa.formats import DecodeError, Extracted
from de06qa.text import nfc

# pypdf logs each irregularity of a damaged file; the skip reason is what the user needs.
logging.getLogger("pypdf").setLevel(logging.ERROR)

# Lines within this many of a page's top or bottom may be running headers, footers, page numbers.
_EDGE = 3
_PAGE_NUMBER = re.compile(
    r"^(?:trang|page|tr\.)?\s*[-–—]?\s*\d{1,4}\s*(?:/\s*\d{1,4}|of\s+\d{1,4})?\s*[-–—]?$", re.I
)
_SPACES = re.compile(r"[ \t\u00a0]+")
# A line that ends like this closes its paragraph; any other line was wrapped by the layout.
_CLOSES = tuple('.!?:;…"”)')


def extract(data: bytes) -> Extracted:
    pages, title = _read(data)
    if not any(p.strip() for p in pages):
        raise DecodeError("no text layer (scanned?); OCR is not supported")
    lines = [[_SPACES.sub(" ", ln).strip() for ln in p.splitlines()] for p in pages]
    lines = [[ln for ln in page if ln] for page in lines]
    furniture = _repeated_edges(lines)
    kept = [
        [ln for i, ln in enumerate(page) if not _is_furniture(ln, i, len(page), furniture)] for page in lines
    ]
    return Extracted(tuple(nfc("\n".join(_paragraphs(page))) for page in kept), paged=True, title=title)


# Titles that word processors write into a PDF's metadata on their own: not a headline.
_GENERATED_TITLE = re.compile(r"^(microsoft (word|powerpoint) - |untitled)|\.(docx?|pdf|odt|rtf|txt)$", re.I)


def _title(reader: PdfReader) -> str | None:
    try:
        title = (reader.metadata.title if reader.metadata else None) or ""
    except Exception:  # a damaged info dictionary: the text can still be read
        return None
    title = _SPACES.sub(" ", str(title)).strip()
    return nfc(title) if title and not _GENERATED_TITLE.search(title) else None


def _read(data: bytes) -> tuple[list[str], str | None]:
    """The text of every page and the title the file's metadata gives, if a real one."""
    # A damaged PDF can fail anywhere inside pypdf (its parser raises many kinds of errors on bad
    # input), and one bad file must be skipped with its reason, not end the build.
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise DecodeError("encrypted PDF (password needed); save an unprotected copy")
            except (DependencyError, NotImplementedError) as e:
                raise DecodeError(f"encrypted PDF that cannot be opened here ({e})") from e
        return [page.extract_text() or "" for page in reader.pages], _title(reader)
    except DecodeError:
        raise
    except FileNotDecryptedError:
        raise DecodeError("encrypted PDF (password needed); save an unprotected copy") from None
    except Exception as e:
        raise DecodeError(f"broken PDF ({type(e).__name__}: {e}); open and save it again") from e


def _shape(line: str) -> str:
    """A header's identity regardless of the page number or date printed in it."""
    return re.sub(r"\d+", "#", line.lower())


def _repeated_edges(pages: list[list[str]]) -> set[str]:
    """Shapes of lines found near the top or bottom of most pages: running headers and footers."""
    if len(pages) < 2:
        return set()
    counts: Counter[str] = Counter()
    for page in pages:
        counts.update({_shape(ln) for ln in page[:_EDGE] + page[-_EDGE:]})
    need = max(2, (len(pages) + 1) // 2)
    return {s for s, n in counts.items() if n >= need}


def _is_furniture(line: str, i: int, n: int, repeated: set[str]) -> bool:
    at_edge = i < _EDGE or i >= n - _EDGE
    return at_edge and (_shape(line) in repeated or bool(_PAGE_NUMBER.match(line)))


def _paragraphs(lines: list[str]) -> list[str]:
    """Join lines the page layout wrapped: a line continues the previous one unless that one ended
    a sentence or the new one starts like a heading (capital letter after a closed line)."""
    out: list[str] = []
    for ln in lines:
        if (
            out
            and not out[-1].endswith(_CLOSES)
            and (ln[0].islower() or ln[0].isdigit() or len(out[-1]) > 60)
        ):
            out[-1] = f"{out[-1]} {ln}"
        else:
            out.append(ln)
    return out
