"""Plain text (.txt) and Markdown (.md): decoding legacy encodings; Markdown read as text."""

from __future__ import annotations

import re

from de06qa.formats import DecodeError, Extracted
from de06qa.text import nfc


def decode(data: bytes) -> str:
    """Bytes to NFC text: UTF-8 (with or without BOM), UTF-16 with BOM, or legacy CP1258.

    CP1258 writes most Vietnamese tones as separate combining marks, so NFC is what makes its text
    comparable with the rest.
    """
    if not data.strip():
        raise DecodeError("empty file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return nfc(data.decode("utf-16"))
        except UnicodeDecodeError as e:
            raise DecodeError(f"invalid UTF-16 ({e.reason})") from e
    if b"\x00" in data[:4096]:
        raise DecodeError("binary file (NUL bytes), not text")
    try:
        return nfc(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1258")
    except UnicodeDecodeError as e:
        raise DecodeError("not UTF-8, UTF-16 or CP1258 text") from e
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\r\n\t")
    if controls > len(text) // 100:
        raise DecodeError("binary file (control bytes), not text")
    return nfc(text)


def extract(data: bytes) -> Extracted:
    return Extracted((decode(data),))


# Markup that is not text: heading marks, emphasis, list bullets, link targets, images.
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(\S(?:.*?\S)?)\1")
_BULLET = re.compile(r"^\s*[-*+]\s+", re.MULTILINE)


def extract_markdown(data: bytes) -> Extracted:
    """Markdown read as text: the marks that are not words are removed, the first heading is the
    title (a Markdown file's headline is its `# …` line)."""
    text = decode(data)
    heading = _HEADING.search(text)
    for pattern, repl in ((_IMAGE, ""), (_LINK, r"\1"), (_HEADING, r"\1"), (_EMPHASIS, r"\2"), (_BULLET, "")):
        text = pattern.sub(repl, text)
    return Extracted((text,), title=heading.group(1).strip() if heading else None)
