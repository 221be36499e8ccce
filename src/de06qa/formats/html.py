"""Saved web pages (.html/.htm): the article's main text through trafilatura.

trafilatura finds the main content and leaves out navigation, related-link lists, comments and
footers; its metadata step (htmldate) reads the publication date from the page's meta tags,
structured data or visible dateline, without any network access."""

from __future__ import annotations

import logging
import re

import trafilatura

from de06qa.formats import DecodeError, Extracted
from de06qa.text import nfc

# trafilatura logs every page it finds too short at WARNING; the skip reason already says it.
logging.getLogger("trafilatura").setLevel(logging.ERROR)
logging.getLogger("htmldate").setLevel(logging.ERROR)

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def extract(data: bytes) -> Extracted:
    if not data.strip():
        raise DecodeError("empty file")
    doc = trafilatura.bare_extraction(
        data,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
    )
    text = getattr(doc, "text", None) if doc is not None else None
    if not text or not text.strip():
        raise DecodeError("no article text found in the page (menus and links only?)")
    date = getattr(doc, "date", None)
    title = getattr(doc, "title", None)
    url = getattr(doc, "url", None)  # the page's canonical link or og:url
    return Extracted(
        (nfc(text),),
        title=nfc(title).strip() if title else None,
        date=date if isinstance(date, str) and _ISO.match(date) else None,
        url=url if isinstance(url, str) and url.startswith(("http://", "https://")) else None,
    )
