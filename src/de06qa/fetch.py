"""Articles from the web into a folder `de06qa index` reads: pages, RSS/Atom feeds and sitemaps.

A URL is fetched and looked at: an HTML page is an article and is saved as served
(`FOLDER/<host>/<path>-<hash>.html`) with a hidden sidecar (`.<file>.json`: its address, title,
published date, when it was fetched, and the validators a later fetch sends back); a feed gives its
entries' links and a sitemap its pages (a sitemap index its sitemaps), which are fetched in turn.

Polite: robots.txt is read first for each host and a page it disallows is never requested; requests
to one host are `delay` seconds apart; the User-Agent names de06qa; a request that takes longer than
`timeout` is given up; 429 and 5xx are retried with backoff (Retry-After when the server gives one);
a response over `max_bytes` is not kept. Incremental: a page fetched before is asked for with
If-None-Match / If-Modified-Since, and an unchanged one (304) is not downloaded again; a URL given
twice is fetched once. httpx is the client; feeds and sitemaps are read with lxml (their few
elements need no feed library); the page's metadata with trafilatura, as `de06qa index` reads it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.robotparser
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx

from de06qa import __version__
from de06qa.errors import CannotSave
from de06qa.ingest import page_meta, sidecar

USER_AGENT = f"de06qa/{__version__} (+https://pypi.org/project/de06qa/; news archive for question answering)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
XML_TYPES = ("application/rss+xml", "application/atom+xml", "application/xml", "text/xml")
MAX_LINKS = 10_000  # links taken from one feed or sitemap
MAX_BACKOFF = 30.0  # seconds a Retry-After is honoured up to


@dataclass(frozen=True)
class Saved:
    url: str
    path: Path
    title: str | None
    date: str | None


@dataclass
class FetchSummary:
    saved: list[Saved] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # 304: the copy on disk stands
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (url, reason)
    listed: int = 0  # links read from feeds and sitemaps


class Skip(Exception):
    """A URL that is not saved, with the one-line reason."""


def page_path(into: Path, url: str) -> Path:
    """Where the page at `url` is saved: by host, then the path as a readable slug with a short
    hash of the whole address (two addresses never share a file, and the name stays short)."""
    parts = urlsplit(url)
    host = re.sub(r"[^a-z0-9.-]+", "-", (parts.hostname or "host").lower()).strip(".-") or "host"
    if parts.port:
        host += f"-{parts.port}"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", parts.path.rsplit(".", 1)[0]).strip("-")[-80:] or "index"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:8]
    return into / host / f"{slug}-{digest}.html"


class Fetcher:
    """One fetch run: the client, each host's robots.txt and the time of its last request."""

    def __init__(
        self,
        into: Path,
        delay: float = 1.0,
        timeout: float = 20.0,
        max_bytes: int = 5_000_000,
        retries: int = 3,
        say: Callable[[str], None] = lambda _: None,
        client: httpx.Client | None = None,
    ) -> None:
        self.into = into
        self.delay = delay
        self.max_bytes = max_bytes
        self.retries = retries
        self.say = say
        self.client = client or httpx.Client(
            headers={"User-Agent": USER_AGENT}, timeout=timeout, follow_redirects=True
        )
        self.robots: dict[str, urllib.robotparser.RobotFileParser] = {}
        self.down: dict[str, str] = {}  # origin -> why it cannot be reached
        self.last: dict[str, float] = {}
        self.seen: set[str] = set()

    def close(self) -> None:
        self.client.close()

    def run(self, urls: Iterable[str]) -> FetchSummary:
        out = FetchSummary()
        queue = [u.strip() for u in urls if u.strip()]
        while queue:
            url = urldefrag(queue.pop(0))[0]
            if url in self.seen:
                continue
            self.seen.add(url)
            try:
                links = self._one(url, out)
            except Skip as e:
                out.skipped.append((url, str(e)))
                self.say(f"skipped {url}: {e}")
                continue
            out.listed += len(links)
            queue[:0] = links  # a feed's pages before the next URL given
        return out

    # -- one URL ------------------------------------------------------------------------------------
    def _one(self, url: str, out: FetchSummary) -> list[str]:
        """Fetch `url`: save a page (returns []) or read a feed or sitemap (returns its links)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Skip("not an http(s) address")
        if not self._allowed(url):
            raise Skip("disallowed by the site's robots.txt")
        path = page_path(self.into, url)
        meta = page_meta(path) if path.exists() else None
        headers = {}
        if meta:
            if meta.get("etag"):
                headers["If-None-Match"] = meta["etag"]
            if meta.get("last_modified"):
                headers["If-Modified-Since"] = meta["last_modified"]
        status, kind, body, resp_headers, final = self._get(url, headers)
        if status == 304:
            out.unchanged.append(url)
            self.say(f"unchanged {url}")
            return []
        if kind in XML_TYPES or (kind not in HTML_TYPES and body.lstrip()[:5] == b"<?xml"):
            return self._links(url, body)
        if kind not in HTML_TYPES:
            raise Skip(f"not an HTML page ({kind or 'no content type'})")
        saved = self._save(url, final, path, body, resp_headers)
        out.saved.append(saved)
        self.say(f"saved {url} -> {saved.path}")
        return []

    def _get(self, url: str, headers: dict[str, str]) -> tuple[int, str, bytes, httpx.Headers, str]:
        """GET with the host's delay, retries with backoff on 429/5xx, and the size cap."""
        host = urlsplit(url).netloc
        for attempt in range(self.retries + 1):
            wait = self.last.get(host, 0.0) + self.delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                with self.client.stream("GET", url, headers=headers) as r:
                    self.last[host] = time.monotonic()
                    if r.status_code == 429 or r.status_code >= 500:
                        if attempt == self.retries:
                            raise Skip(f"HTTP {r.status_code} after {self.retries + 1} tries")
                        time.sleep(_backoff(r.headers.get("Retry-After"), attempt))
                        continue
                    if r.status_code == 304:
                        return 304, "", b"", r.headers, str(r.url)
                    if r.status_code >= 400:
                        raise Skip(f"HTTP {r.status_code} {r.reason_phrase}".rstrip())
                    length = r.headers.get("Content-Length")
                    if length and length.isdigit() and int(length) > self.max_bytes:
                        raise Skip(f"{int(length) / 1e6:.1f} MB, over the {self.max_bytes / 1e6:g} MB limit")
                    body = bytearray()
                    for piece in r.iter_bytes():
                        body += piece
                        if len(body) > self.max_bytes:
                            raise Skip(f"over the {self.max_bytes / 1e6:g} MB limit")
                    kind = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
                    return r.status_code, kind, bytes(body), r.headers, str(r.url)
            except httpx.TimeoutException:
                self.last[host] = time.monotonic()
                raise Skip(f"timed out after {self.client.timeout.read:g} s") from None
            except httpx.TransportError as e:
                self.last[host] = time.monotonic()
                raise Skip(f"cannot connect ({_reason(e)})") from None
        raise AssertionError("unreachable")

    def _allowed(self, url: str) -> bool:
        """What the host's robots.txt says of `url`, read once a run: none (4xx) allows all, one
        the server fails to give (5xx) allows nothing (RFC 9309). A host that cannot be reached
        skips its every URL with that reason, asked once."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        rp = self.robots.get(origin)
        if rp is None:
            if origin in self.down:
                raise Skip(self.down[origin])
            rp = urllib.robotparser.RobotFileParser()
            try:
                _, _, body, _, _ = self._get(origin + "/robots.txt", {})
                rp.parse(body.decode("utf-8", "replace").splitlines())
            except Skip as e:
                # robotparser's own flags for "no file" and "server failed" (as its read() sets them)
                if str(e).startswith("HTTP 4"):
                    rp.allow_all = True  # type: ignore[attr-defined]
                elif str(e).startswith("HTTP"):
                    rp.disallow_all = True  # type: ignore[attr-defined]
                else:
                    self.down[origin] = str(e)
                    raise
            self.robots[origin] = rp
        return rp.can_fetch(USER_AGENT, url)

    def _links(self, url: str, body: bytes) -> list[str]:
        """The article links of an RSS or Atom feed, the pages of a sitemap or the sitemaps of a
        sitemap index."""
        from lxml import etree

        try:
            root = etree.fromstring(
                body, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
            )
        except etree.XMLSyntaxError as e:
            raise Skip(f"not a feed or sitemap (XML error: {e})") from None
        tag = etree.QName(root).localname
        if tag == "rss" or tag == "RDF":
            links = [(x.text or "").strip() for x in root.iter() if etree.QName(x).localname == "link"
                     and etree.QName(x.getparent()).localname == "item"]  # fmt: skip
        elif tag == "feed":
            links = [
                x.get("href", "")
                for x in root.iter("{*}link")
                if etree.QName(x.getparent()).localname == "entry"
                and x.get("rel", "alternate") == "alternate"
            ]
        elif tag in ("urlset", "sitemapindex"):
            links = [(x.text or "").strip() for x in root.iter("{*}loc")]
        else:
            raise Skip(f"an XML document that is neither a feed nor a sitemap (<{tag}>)")
        return [urljoin(url, x) for x in links if x][:MAX_LINKS]

    def _save(self, url: str, final: str, path: Path, body: bytes, headers: httpx.Headers) -> Saved:
        """The page as served, and its sidecar; both replace an older copy whole."""
        title, date = _metadata(body)
        meta = {
            "url": url,
            "final_url": final,
            "title": title,
            "date": date,
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "etag": headers.get("ETag"),
            "last_modified": headers.get("Last-Modified"),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for target, data in (
                (path, body),
                (sidecar(path), json.dumps(meta, ensure_ascii=False, indent=1).encode()),
            ):
                tmp = target.with_name(f".{target.name}.part")
                try:
                    tmp.write_bytes(data)
                    tmp.replace(target)
                finally:
                    tmp.unlink(missing_ok=True)
        except OSError as e:
            # the run stops: every later page would fail the same way
            raise CannotSave(
                f"cannot save {url} into {path.parent} ({e.strerror}); check the folder and free space"
            ) from e
        return Saved(url, path, title, date)


def _metadata(body: bytes) -> tuple[str | None, str | None]:
    """The page's title and published date as `de06qa index` will read them (trafilatura:
    article:published_time, JSON-LD datePublished, or the visible date)."""
    from de06qa.formats import DecodeError
    from de06qa.formats.html import extract

    try:
        got = extract(body)
    except DecodeError:
        return None, None
    return got.title, got.date


def _backoff(retry_after: str | None, attempt: int) -> float:
    if retry_after:
        if retry_after.strip().isdigit():
            return min(float(retry_after), MAX_BACKOFF)
        try:
            when = parsedate_to_datetime(retry_after)
            return max(0.0, min((when - datetime.now(UTC)).total_seconds(), MAX_BACKOFF))
        except (TypeError, ValueError):
            pass
    return min(0.5 * 2.0**attempt, MAX_BACKOFF)


def _reason(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:120]
