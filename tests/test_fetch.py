"""`de06qa fetch` against a web site the test serves on 127.0.0.1: pages, an RSS feed, an Atom feed,
a sitemap index, robots.txt, a 404, a slow page, a flaky 503, a non-HTML file and conditional
requests (304), through a real process; then `de06qa index` of what was saved, whose results cite
the page's address and published date. No request goes to any other address."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from de06qa.fetch import USER_AGENT, page_path

EXE = str(Path(sys.executable).with_name("de06qa"))


def page(title: str, published: str, body: str) -> bytes:
    return f"""<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{title}</title>
<meta property="article:published_time" content="{published}T08:00:00+07:00"></head>
<body><nav><a href="/">Trang chủ</a> | <a href="/tin">Tin tức</a></nav>
<article><h1>{title}</h1><p>{body}</p>
<p>Công an tỉnh tiếp tục phối hợp với các sở, ngành triển khai các nhiệm vụ của Đề án 06 trong thời gian tới,
bảo đảm người dân được hưởng lợi từ dữ liệu dân cư và định danh điện tử.</p></article>
<footer>Bản quyền thuộc về Báo tỉnh</footer></body></html>""".encode()


PAGES = {
    "/tin/ha-giang.html": page(
        "Hà Giang đẩy mạnh dịch vụ công toàn trình",
        "2024-03-05",
        "Tính đến ngày 29/2/2024, tỉnh Hà Giang có 702 dịch vụ công trực tuyến toàn trình, tăng 37 dịch vụ so với cuối năm 2023.",
    ),
    "/tin/son-la.html": page(
        "Sơn La kích hoạt tài khoản định danh điện tử",
        "2024-04-10",
        "Đến hết tháng 3/2024, Sơn La đã kích hoạt 401.233 tài khoản định danh điện tử mức độ 2 cho người dân.",
    ),
    "/tin/bac-kan.html": page(
        "Bắc Kạn số hóa hồ sơ thủ tục hành chính",
        "2024-05-20",
        "Tỉnh Bắc Kạn đã số hóa 91% hồ sơ, kết quả giải quyết thủ tục hành chính trong 4 tháng đầu năm 2024.",
    ),
    "/tin/flaky.html": page(
        "Cao Bằng cấp căn cước",
        "2024-06-01",
        "Cao Bằng đã cấp 350.120 thẻ căn cước cho công dân trên địa bàn tỉnh tính đến ngày 31/5/2024.",
    ),
}
ETAG = '"v1-ha-giang"'
LAST_MODIFIED = "Tue, 05 Mar 2024 01:00:00 GMT"
RSS = b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Tin</title>
<item><title>Ha Giang</title><link>/tin/ha-giang.html</link></item>
<item><title>Son La</title><link>http://HOST/tin/son-la.html#top</link></item>
<item><title>Bi mat</title><link>/private/bi-mat.html</link></item>
<item><title>Mat</title><link>/tin/khong-co.html</link></item>
</channel></rss>"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
<entry><title>Bac Kan</title><link rel="alternate" href="/tin/bac-kan.html"/></entry></feed>"""
SITEMAP_INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>http://HOST/sitemap-tin.xml</loc></sitemap></sitemapindex>"""
SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>http://HOST/tin/ha-giang.html</loc></url><url><loc>http://HOST/tin/flaky.html</loc></url></urlset>"""


class Site:
    """The test's web site: what it serves, and every request it got (path, time, headers)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, float, dict[str, str]]] = []
        self.flaky = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site.requests.append((self.path, time.monotonic(), dict(self.headers)))
                host = self.headers["Host"].encode()
                p = self.path
                if p == "/robots.txt":
                    return self.send(200, "text/plain", b"User-agent: *\nDisallow: /private/\n")
                if p == "/rss.xml":
                    return self.send(200, "application/rss+xml", RSS.replace(b"HOST", host))
                if p == "/atom.xml":
                    return self.send(200, "application/atom+xml", ATOM)
                if p == "/sitemap.xml":
                    return self.send(200, "application/xml", SITEMAP_INDEX.replace(b"HOST", host))
                if p == "/sitemap-tin.xml":
                    return self.send(200, "text/xml", SITEMAP.replace(b"HOST", host))
                if p == "/tin/slow.html":
                    time.sleep(3)
                    return self.send(200, "text/html", PAGES["/tin/bac-kan.html"])
                if p == "/tin/anh.png":
                    return self.send(200, "image/png", b"\x89PNG\r\n\x1a\n")
                if p == "/tin/flaky.html":
                    site.flaky += 1
                    if site.flaky == 1:
                        return self.send(503, "text/plain", b"busy", {"Retry-After": "0"})
                if p == "/tin/ha-giang.html" and (
                    self.headers.get("If-None-Match") == ETAG
                    or self.headers.get("If-Modified-Since") == LAST_MODIFIED
                ):
                    return self.send(304, "", b"")
                if p in PAGES:
                    extra = (
                        {"ETag": ETAG, "Last-Modified": LAST_MODIFIED} if p == "/tin/ha-giang.html" else {}
                    )
                    return self.send(200, "text/html; charset=utf-8", PAGES[p], extra)
                return self.send(404, "text/plain", b"not found")

            def send(self, code: int, kind: str, body: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(code)
                if kind:
                    self.send_header("Content-Type", kind)
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if code != 304:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.requests]


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    s.thread.start()
    yield s
    s.server.shutdown()
    s.server.server_close()


def fetch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "fetch", *args], capture_output=True, text=True, timeout=timeout)


def test_feeds_sitemaps_robots_and_failures(site: Site, tmp_path: Path):
    into = tmp_path / "web"
    b = site.base
    urls = tmp_path / "urls.txt"
    urls.write_text(
        f"# sources\n{b}/atom.xml\n{b}/tin/anh.png\n{b}/tin/slow.html\n{b}/rss.xml  # listed twice\n"
    )
    r = fetch(f"{b}/rss.xml", f"{b}/sitemap.xml", "--urls", str(urls), "--into", str(into),
              "--delay", "0.2", "--timeout", "1")  # fmt: skip
    assert r.returncode == 3, r.stderr
    skipped = {line.split(": ", 1)[0][len("skipped ") :]: line.split(": ", 1)[1]
               for line in r.stderr.splitlines() if line.startswith("skipped ")}  # fmt: skip
    assert skipped == {
        f"{b}/private/bi-mat.html": "disallowed by the site's robots.txt",
        f"{b}/tin/khong-co.html": "HTTP 404 Not Found",
        f"{b}/tin/anh.png": "not an HTML page (image/png)",
        f"{b}/tin/slow.html": "timed out after 1 s",
    }
    assert "Traceback" not in r.stderr
    saved = sorted(p.name for p in into.rglob("*.html"))
    assert len(saved) == 4  # ha-giang, son-la, bac-kan, flaky (after one 503)
    assert "Saved 4 pages" in r.stdout and "4 skipped" in r.stdout
    # robots.txt read once, the disallowed page never requested, every URL requested once
    paths = site.paths()
    assert paths.count("/robots.txt") == 1 and "/private/bi-mat.html" not in paths
    assert paths.count("/rss.xml") == 1 and paths.count("/tin/ha-giang.html") == 1
    assert paths.count("/tin/flaky.html") == 2  # the 503, then the page
    # polite: requests to the host at least --delay apart, each naming de06qa
    times = [t for _, t, _ in site.requests]
    assert min(b2 - a2 for a2, b2 in zip(times, times[1:])) >= 0.18
    assert all(h["User-Agent"] == USER_AGENT for _, _, h in site.requests)
    # what is kept beside each page
    page = page_path(into, f"{b}/tin/son-la.html")
    meta = json.loads(page.with_name(f".{page.name}.json").read_text())
    assert meta["url"] == f"{b}/tin/son-la.html" and meta["date"] == "2024-04-10"
    assert meta["title"] == "Sơn La kích hoạt tài khoản định danh điện tử" and meta["fetched_at"]
    assert page.read_bytes() == PAGES["/tin/son-la.html"]  # as served


def test_a_second_fetch_downloads_no_unchanged_page(site: Site, tmp_path: Path):
    into = tmp_path / "web"
    url = f"{site.base}/tin/ha-giang.html"
    assert fetch(url, "--into", str(into), "--delay", "0").returncode == 0
    page = page_path(into, url)
    before = page.stat().st_mtime_ns
    r = fetch(url, url, "--into", str(into), "--delay", "0")
    assert r.returncode == 0 and "0 pages" in r.stdout and "1 unchanged" in r.stdout
    last = [h for p, _, h in site.requests if p == "/tin/ha-giang.html"]
    assert len(last) == 2  # once a run, though listed twice
    assert last[-1]["If-None-Match"] == ETAG and last[-1]["If-Modified-Since"] == LAST_MODIFIED
    assert page.stat().st_mtime_ns == before


def test_a_refused_connection_and_bad_input_are_one_line(tmp_path: Path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    r = fetch(f"http://127.0.0.1:{port}/tin/a.html", "ftp://127.0.0.1/x", "--into", str(tmp_path / "w"))
    assert r.returncode == 3
    lines = [x for x in r.stderr.splitlines() if x.startswith("skipped ")]
    assert len(lines) == 2 and "cannot connect" in lines[0] and "not an http(s) address" in lines[1]
    r = fetch("--urls", str(tmp_path / "none.txt"), "--into", str(tmp_path / "w"))
    assert r.returncode == 2 and r.stderr.strip().startswith("error: cannot read the URL list")
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_fetched_pages_are_indexed_with_their_address_and_date(site: Site, tmp_path: Path, real_settings):
    into = tmp_path / "web"
    assert fetch(f"{site.base}/rss.xml", "--into", str(into), "--delay", "0").returncode == 3  # 404 + robots
    env = {
        **os.environ,
        "DE06QA_CACHE_DIR": str(real_settings.cache_dir),
        "DE06QA_INDEX_DIR": str(tmp_path / "idx"),
    }
    r = subprocess.run([EXE, "index", str(into)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([EXE, "ask", "--json", "Sơn La đã kích hoạt bao nhiêu tài khoản định danh điện tử?"],
                       env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    top = d["results"][0]
    assert top["url"] == f"{site.base}/tin/son-la.html" and top["date"] == "2024-04-10"
    assert top["source"].endswith(".html") and "401.233" in d["answer"]["text"]
