"""Read a folder of articles: extract text by format, strip boilerplate, find title, date, provinces."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from de06qa.documents import Article, Skipped
from de06qa.errors import SourceNotFound
from de06qa.formats import READERS, UNSUPPORTED, DecodeError, Extracted, extract, supported
from de06qa.gazetteer import NEW_NAME, find_provinces

PAGE_BREAK = "\f"  # between the pages of a paged source while it is cleaned


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
    page_lines: tuple[int, ...] = ()  # index in `lines` where each page after the first starts


def clean(raw: str) -> Cleaned:
    """Keep the article's lines; return what was dropped so tests can list it. A PAGE_BREAK line
    separates the pages of a paged source; where each page starts is kept."""
    kept: list[str] = []
    dropped: list[str] = []
    breaks: list[int] = []
    timed: str | None = None
    untimed: str | None = None
    lines = [
        ln if ln == PAGE_BREAK else ln.replace("\u00a0", " ").strip()
        for ln in raw.replace("\r\n", "\n")
        .replace("\r", "\n")
        .replace(PAGE_BREAK, f"\n{PAGE_BREAK}\n")
        .split("\n")
    ]
    for i, line in enumerate(lines):
        if line == PAGE_BREAK:
            breaks.append(len(kept))
            continue
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
    return Cleaned(tuple(kept), tuple(dropped), timed or untimed, tuple(min(b, len(kept)) for b in breaks))


# --- metadata ----------------------------------------------------------------------------------
_MAX_HEADLINE = 200


_TITLE_CHARS = 90
# In a lead's subject, the parts a title leaves out: the date a document was issued
# ("ngày 31/12/2020") and who issued it ("của Ban Chấp hành Đảng bộ tỉnh …" before "về …").
_ISSUED_ON = re.compile(r"\s+ngày\s+\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")
_ISSUED_BY = re.compile(r"\s+của\s+[^,]+?(?=\s+về\s)")


def _shorten(text: str, limit: int = _TITLE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _first_sentence(line: str, limit: int = 120) -> str:
    m = re.search(r"[.!?](\s|$)", line)
    return _shorten(line[: m.start() + 1] if m else line, limit)


def lead_title(lead: str) -> str:
    """A title for an article without a headline, from its lead paragraph: the subject of the first
    sentence (up to its first comma, or further while shorter than 30 characters: "Sáng nay, tại
    Hà Nội, …"), without the issuing date and body of a document it names, at most 90 characters
    cut at a word."""
    m = re.search(r"[.!?](\s|$)", lead)
    sentence = lead[: m.start()] if m else lead
    parts = sentence.split(",")
    subject = parts[0]
    for part in parts[1:]:
        if len(subject) >= 30:
            break
        subject += "," + part
    subject = _ISSUED_BY.sub("", _ISSUED_ON.sub("", subject)).strip()
    return _shorten(subject or sentence)


def article_provinces(text: str) -> tuple[str, ...]:
    """Provinces the article is about: the most-mentioned one and any mentioned at least twice."""
    counts = Counter(find_provinces(text))
    if not counts:
        return ()
    top = counts.most_common(1)[0][1]
    return tuple(p for p, n in counts.most_common() if n == top or n >= 2)


def make_title(first_line: str, provinces: tuple[str, ...], readable: bool = True) -> str:
    """The headline; for an article that starts with its lead paragraph instead, a title made from
    the lead (`lead_title`; with `readable` False, the lead's first sentence, which retrieval reads
    as context); the main province is prefixed when the title does not name it (a section heading
    like "Sớm đạt kết quả rõ nét")."""
    if len(first_line) <= _MAX_HEADLINE:
        title = first_line
    else:
        title = lead_title(first_line) if readable else _first_sentence(first_line)
    if provinces and provinces[0] not in find_provinces(title):
        title = f"{provinces[0]}: {title}"
    return title


def build_article(doc_id: str, source: str, raw: str | Extracted, file: str = "") -> Article:
    """An Article from a file's text (a plain string is read as one unpaged text)."""
    ex = raw if isinstance(raw, Extracted) else Extracted((raw,))
    cleaned = clean(PAGE_BREAK.join(ex.pages))
    if not cleaned.lines:
        raise DecodeError("no article text (only boilerplate)")
    text = "\n".join(cleaned.lines)
    pages: tuple[int, ...] = ()
    if ex.paged:
        line_starts = [0]
        for line in cleaned.lines:
            line_starts.append(line_starts[-1] + len(line) + 1)
        pages = (0, *(line_starts[i] for i in cleaned.page_lines))
    provinces = article_provinces(text)
    headline = ex.title or cleaned.lines[0]
    title = make_title(headline, provinces)
    context = make_title(headline, provinces, readable=False)
    # The page layout is part of what a paged article's citations say: a re-paginated PDF with the
    # same text is a changed article.
    fingerprint = text + ("\f" + ",".join(map(str, pages)) if pages else "")
    return Article(
        doc_id=doc_id,
        source=source,
        title=title,
        text=text,
        date=ex.date or cleaned.date,
        url=ex.url or "",
        provinces=provinces,
        provinces_2025=tuple(dict.fromkeys(NEW_NAME[p] for p in provinces)),
        content_hash=hashlib.sha256(fingerprint.encode("utf-8")).hexdigest(),
        pages=pages,
        file=file,
        lead_title="" if context == title else context,
        dropped_lines=cleaned.dropped,
    )


def read_article(
    path: Path, source: str | None = None, max_bytes: int | None = None, doc_id: str | None = None
) -> Article:
    """One file to an Article; raises DecodeError (with the skip reason) for unusable files.

    A file over `max_bytes` is refused from its size alone, before any of it is read: segmenting
    and embedding 20 MB of text would take the better part of an hour on a CPU and its memory
    would grow with it; such a file is a dump of many articles, not one."""
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise DecodeError(UNSUPPORTED.get(suffix, f"not a format de06qa reads ({supported()})"))
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            # Opening a named pipe waits for a writer forever; a device or socket is no article.
            raise DecodeError(f"{_kind(st.st_mode)}, not a regular file")
        size = st.st_size
        if max_bytes is not None and size > max_bytes:
            raise DecodeError(
                f"{size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit for one article; "
                "split it into one file per article (or raise DE06QA_MAX_ARTICLE_MB)"
            )
        data = path.read_bytes()
    except OSError as e:
        raise DecodeError(f"cannot read ({e.strerror})") from e
    ex = extract(suffix, data)
    meta = page_meta(path) if suffix in (".html", ".htm") else None
    url = meta.get("url") if meta else None  # a page `de06qa fetch` saved: the address it came from
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        # (its sidecar's date is the one `extract` just read from the same bytes: not read again)
        ex = replace(ex, url=url)
    return build_article(
        readable(doc_id or path.stem), readable(source or str(path)), ex, readable(str(path.resolve()))
    )


def readable(name: str) -> str:
    """A file name as text that can be printed and written anywhere: bytes that are not UTF-8 (a
    name from another system's archive, kept by Python as lone surrogates) shown as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def sidecar(page: Path) -> Path:
    """The hidden file beside a page `de06qa fetch` saved that says where it came from."""
    return page.with_name(f".{page.name}.json")


def page_meta(page: Path) -> dict[str, str] | None:
    """A fetched page's sidecar, or None for a page saved otherwise (or a damaged sidecar)."""
    try:
        got = json.loads(sidecar(page).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) else None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):  # fmt: skip
        if test(mode):
            return name
    return "a special file"


def _files(folder: Path) -> list[Path]:
    """Every file under `folder`, recursively, sorted; hidden files and folders are left out.
    Symbolic links to folders are not followed (os.walk's default): a link loop cannot recur."""
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(root) / n for n in names if not n.startswith("."))
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def doc_ids(folder: Path, paths: list[Path]) -> dict[Path, str]:
    """Stable ids: the path below `folder` without its suffix ("2024/ha-giang"); files that would
    share an id (report.pdf and report.docx) keep their suffix."""
    stem = {p: p.relative_to(folder).with_suffix("").as_posix() for p in paths}
    shared = {s for s, n in Counter(stem.values()).items() if n > 1}
    return {p: p.relative_to(folder).as_posix() if s in shared else s for p, s in stem.items()}


def read_folder(folder: Path, max_bytes: int | None = None) -> tuple[list[Article], list[Skipped]]:
    """Every article under `folder` (sorted by path); unusable files are returned with a reason."""
    if not folder.exists():
        raise SourceNotFound(
            f"{folder} does not exist; pass a folder of articles ({supported()}; default: seeds/)"
        )
    if not folder.is_dir():
        raise SourceNotFound(f"{folder} is not a folder; pass a folder of articles ({supported()})")
    try:
        paths = _files(folder)
    except OSError as e:
        raise SourceNotFound(f"cannot list {folder} ({e.strerror}); check its permissions") from e
    ids = doc_ids(folder, paths)
    articles: list[Article] = []
    skipped: list[Skipped] = []
    for path in paths:
        try:
            articles.append(read_article(path, max_bytes=max_bytes, doc_id=ids[path]))
        except DecodeError as e:
            skipped.append(Skipped(readable(str(path)), str(e)))
    return articles, skipped
