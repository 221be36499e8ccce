"""Read a folder of articles: decode, strip web boilerplate, extract title, date and provinces."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from de06qa.documents import Article, Skipped
from de06qa.errors import SourceNotFound
from de06qa.gazetteer import NEW_NAME, find_provinces
from de06qa.text import nfc

SUFFIXES = (".txt",)


class DecodeError(ValueError):
    """The bytes are not text in any encoding we accept; the message is the skip reason."""


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


# --- boilerplate -------------------------------------------------------------------------------
# Lines from which everything to the end is site furniture: reader comments, ratings, related-link
# lists, menus and counters all come after one of these in the pages we ingest.
_TAIL = re.compile(
    r"^(Tổng số điểm của bài viết|Ý kiến bạn đọc|Thông tin bạn đọc|Những tin mới hơn|Những tin cũ hơn|"
    r"Các bài viết khác|Tin liên quan|Bài viết liên quan|Tin cùng chuyên mục|Bình luận)\b",
    re.IGNORECASE,
)
# Single lines that are never article text.
_DROP = re.compile(
    r"^(Xem với cỡ chữ.*|Cỡ chữ.*|In bài viết|Chia sẻ|Tác giả:.*|Nguồn:.*|Xếp hạng:.*|"
    r"Click để đánh giá bài viết|Đóng|Lưu thông tin|Đóng Lưu thông tin|"
    r"Đang truy cập\s*[\d.,]*|Hôm nay\s*[\d.,]+|Tháng hiện tại\s*[\d.,]+|Tổng lượt truy cập\s*[\d.,]+|"
    r"\S+\.(jpe?g|png|gif|webp|bmp)|.* - Ảnh \d+\.?)$",
    re.IGNORECASE,
)
_WEEKDAY = r"(?:Thứ\s+(?:hai|ba|tư|năm|sáu|bảy|[2-7])|Chủ\s+nhật)"
_DATE_LINE = re.compile(
    rf"^{_WEEKDAY}\s*[,\-–]?\s*(?:ngày\s+)?(?P<d>\d{{1,2}})/(?P<m>\d{{1,2}})/(?P<y>\d{{4}})(?P<time>\s*[,\-–]?\s*\d{{1,2}}:\d{{2}})?$",
    re.IGNORECASE,
)
_PHOTO_CREDIT = re.compile(r"\s+-\s+Ảnh:\s.*$")
_CAPTION_PIPE = re.compile(r"\s*\|\s*$")
# A trailing byline: a few capitalised words with no sentence punctuation ("Minh Yến", "VPTU").
_BYLINE = re.compile(r"^[A-ZĐÀ-Ỹ][\wÀ-ỹ.]*(\s+[A-ZĐÀ-Ỹ][\wÀ-ỹ.]*){0,3}$")


@dataclass(frozen=True)
class Cleaned:
    lines: tuple[str, ...]
    dropped: tuple[str, ...]
    date: str | None


def clean(raw: str) -> Cleaned:
    """Keep the article's lines; return what was dropped so tests can list it."""
    kept: list[str] = []
    dropped: list[str] = []
    timed: str | None = None
    untimed: str | None = None
    lines = [
        ln.replace("\u00a0", " ").strip() for ln in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ]
    for i, line in enumerate(lines):
        if not line:
            continue
        if _TAIL.match(line):
            dropped.extend(x for x in lines[i:] if x)
            break
        if m := _DATE_LINE.match(line):
            iso = f"{m['y']}-{int(m['m']):02d}-{int(m['d']):02d}"
            if m["time"]:
                timed = timed or iso
            elif kept:  # a date line above the headline is the site's "today", not the article's date
                untimed = untimed or iso
            dropped.append(line)
            continue
        if _DROP.match(line):
            dropped.append(line)
            continue
        line = _CAPTION_PIPE.sub("", _PHOTO_CREDIT.sub("", line))
        kept.append(line)
    while len(kept) > 1 and _BYLINE.match(kept[-1]):
        dropped.append(kept.pop())
    return Cleaned(tuple(kept), tuple(dropped), timed or untimed)


# --- metadata ----------------------------------------------------------------------------------
_MAX_HEADLINE = 200


def _first_sentence(line: str, limit: int = 120) -> str:
    m = re.search(r"[.!?](\s|$)", line)
    sent = line[: m.start() + 1] if m else line
    if len(sent) <= limit:
        return sent
    cut = sent[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def article_provinces(text: str) -> tuple[str, ...]:
    """Provinces the article is about: the most-mentioned one and any mentioned at least twice."""
    counts = Counter(find_provinces(text))
    if not counts:
        return ()
    top = counts.most_common(1)[0][1]
    return tuple(p for p, n in counts.most_common() if n == top or n >= 2)


def make_title(first_line: str, provinces: tuple[str, ...]) -> str:
    """The headline; a lead paragraph is cut to its first sentence; the main province is prefixed
    when the headline does not name it (a section heading like "Sớm đạt kết quả rõ nét")."""
    title = first_line if len(first_line) <= _MAX_HEADLINE else _first_sentence(first_line)
    if provinces and provinces[0] not in find_provinces(title):
        title = f"{provinces[0]}: {title}"
    return title


def build_article(doc_id: str, source: str, raw: str) -> Article:
    cleaned = clean(raw)
    if not cleaned.lines:
        raise DecodeError("no article text (only boilerplate)")
    text = "\n".join(cleaned.lines)
    provinces = article_provinces(text)
    return Article(
        doc_id=doc_id,
        source=source,
        title=make_title(cleaned.lines[0], provinces),
        text=text,
        date=cleaned.date,
        provinces=provinces,
        provinces_2025=tuple(dict.fromkeys(NEW_NAME[p] for p in provinces)),
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        dropped_lines=cleaned.dropped,
    )


def read_article(path: Path, source: str | None = None, max_bytes: int | None = None) -> Article:
    """One file to an Article; raises DecodeError (with the skip reason) for unusable files.

    A file over `max_bytes` is refused from its size alone, before any of it is read: segmenting
    and embedding 20 MB of text would take the better part of an hour on a CPU and its memory
    would grow with it; such a file is a dump of many articles, not one."""
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise DecodeError(
                f"{size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit for one article; "
                "split it into one file per article (or raise DE06QA_MAX_ARTICLE_MB)"
            )
        data = path.read_bytes()
    except OSError as e:
        raise DecodeError(f"cannot read ({e.strerror})") from e
    return build_article(path.stem, source or str(path), decode(data))


def read_folder(folder: Path, max_bytes: int | None = None) -> tuple[list[Article], list[Skipped]]:
    """Every *.txt article in `folder` (sorted by name); unusable files are returned with a reason."""
    if not folder.exists():
        raise SourceNotFound(f"{folder} does not exist; pass a folder of .txt articles (default: seeds/)")
    if not folder.is_dir():
        raise SourceNotFound(f"{folder} is not a folder; pass a folder of .txt articles")
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    except OSError as e:
        raise SourceNotFound(f"cannot list {folder} ({e.strerror}); check its permissions") from e
    articles: list[Article] = []
    skipped: list[Skipped] = []
    for path in paths:
        try:
            articles.append(read_article(path, max_bytes=max_bytes))
        except DecodeError as e:
            skipped.append(Skipped(str(path), str(e)))
    return articles, skipped
