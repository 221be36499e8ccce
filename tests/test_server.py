"""A live `de06qa serve` on 127.0.0.1 over real HTTP, and the page in a real headless Chromium (slow)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("de06qa"))
Q = "Hà Giang có bao nhiêu dịch vụ công toàn trình?"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], timeout: float = 180) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [EXE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(base + "/health", timeout=2).status_code in (200, 503):
                return proc, base
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("server did not start")


def stop_server(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


@pytest.fixture(scope="module")
def server(real_settings, real_searcher) -> Iterator[str]:
    env = {
        **os.environ,
        "DE06QA_CACHE_DIR": str(real_settings.cache_dir),
        "DE06QA_INDEX_DIR": str(real_settings.index_dir),
    }
    proc, base = start_server(env)
    yield base
    out = stop_server(proc)
    assert "Traceback" not in out, out


def test_search_over_http(server: str):
    r = httpx.get(server + "/search", params={"q": Q, "k": 3}, timeout=30)
    assert r.status_code == 200
    d = r.json()
    assert d["answerable"] and d["answer"]["text"].split()[0] == "665" and len(d["results"]) == 3
    doc = httpx.get(f"{server}/documents/{d['answer']['doc_id']}", timeout=30).json()
    assert doc["text"][d["answer"]["start"] : d["answer"]["end"]] == d["answer"]["text"]
    h = httpx.get(server + "/health", timeout=30).json()
    assert h["status"] == "ok" and h["model"] == "intfloat/multilingual-e5-small" and h["documents"] == 5


def test_bad_input_over_http_is_4xx(server: str):
    host, port = server.removeprefix("http://").split(":")
    # Raw bytes on the wire: an invalid UTF-8 escape and a broken JSON body.
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/search?q=%FF%FEabc")
    r = conn.getresponse()
    assert r.status == 400 and "UTF-8" in json.loads(r.read())["detail"]
    conn.request("POST", "/search", body=b'{"q": "\xff"', headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 400 and json.loads(r.read())["detail"]
    conn.close()
    for params in ({"q": ""}, {"q": "x" * 1001}, {"q": "x", "k": 0}, {"q": "x", "k": "abc"}):
        r = httpx.get(server + "/search", params=params, timeout=30)
        assert r.status_code == 422 and r.json()["detail"]
    assert httpx.get(server + "/documents/nope", timeout=30).status_code == 404


def test_eight_concurrent_clients(server: str):
    questions = [Q, "ha giang co bao nhieu dich vu cong toan trinh", "Giá vàng hôm nay bao nhiêu?", Q]
    expected = {q: httpx.get(server + "/search", params={"q": q}, timeout=30).json() for q in set(questions)}

    def client(i: int) -> list[tuple[int, str, dict]]:
        with httpx.Client(base_url=server, timeout=60) as c:
            out = []
            for j in range(6):
                q = questions[(i + j) % len(questions)]
                r = c.get("/search", params={"q": q})
                out.append((r.status_code, q, r.json()))
            return out

    with ThreadPoolExecutor(8) as pool:
        rows = [row for rows in pool.map(client, range(8)) for row in rows]
    assert len(rows) == 48 and all(status == 200 for status, _, _ in rows)
    for _, q, d in rows:
        assert d["answer"] == expected[q]["answer"]
        assert [r["chunk_id"] for r in d["results"]] == [r["chunk_id"] for r in expected[q]["results"]]


def chromium(*args: str, tmp: Path) -> str:
    assert CHROMIUM, "chromium is not installed (.ci/run installs Debian's chromium)"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
        f"--user-data-dir={tmp}", "--virtual-time-budget=15000", *args,
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed")
def test_page_in_headless_chromium(server: str, tmp_path: Path):
    import html as htmllib
    import re

    dom = chromium("--dump-dom", f"{server}/?q={quote(Q)}", tmp=tmp_path / "a")
    assert re.search(r"<mark>665 dịch vụ[^<]*</mark>", dom)  # the reader's span: the figure and its unit
    answer = dom[dom.index('id="answer"') :]
    links = re.findall(r'<a class="cite" href="([^"]+)"[^>]*>([^<]+)</a>', answer)
    assert links, "no citation link"
    href, title = htmllib.unescape(links[0][0]), links[0][1]
    assert "doc=002_956fdc6dbb6455d8" in href and title.startswith("Hà Giang")
    # Following the citation opens the article with the passage highlighted and the figure marked.
    article = chromium("--dump-dom", server + href, tmp=tmp_path / "b")
    assert '<mark class="passage" id="passage">' in article
    inner, rest, _ = article.split('id="passage">', 1)[1].split("</mark>", 2)
    assert "<mark>665" in inner and "<mark" not in rest  # the figure sits inside the passage
    assert f"<h2>{title}</h2>" in article
    assert 'class="meta read-as"' not in dom  # typed with its marks: nothing to say
    # Typed without marks: the page says how it was read, and answers the same.
    plain = chromium("--dump-dom", f"{server}/?q={quote('ha giang co bao nhieu dich vu cong toan trinh')}",
                     tmp=tmp_path / "d")  # fmt: skip
    assert '<div class="meta read-as">Đọc là: hà giang có bao nhiêu dịch vụ công toàn trình</div>' in plain
    assert re.search(r"<mark>665 dịch vụ[^<]*</mark>", plain)
    # A question no article answers says so.
    none = chromium("--dump-dom", f"{server}/?q={quote('Giá vàng hôm nay bao nhiêu?')}", tmp=tmp_path / "c")
    assert "Không có câu trả lời" in none and "<mark>" not in none.split('id="answer"')[1].split("</div>")[0]


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed")
def test_compare_view_draws_table_and_chart_in_headless_chromium(server: str, tmp_path: Path):
    import html as htmllib

    dom = chromium("--dump-dom", f"{server}/?compare={quote('dịch vụ công toàn trình')}", tmp=tmp_path / "a")
    view = dom[dom.index('id="compare"') :]
    assert "Cao nhất: Hà Giang — 665" in view
    chart = view[view.index('id="compare-chart"') : view.index("</svg>")]
    bars = re.findall(r'<a href="([^"]+)"[^>]*>.*?<rect [^>]*width="([\d.]+)"', chart)
    assert len(bars) == 2 and float(bars[0][1]) > float(bars[1][1])  # 665 drawn longer than 573
    rows = re.findall(
        r"<tr(?: class=\"\w*\")?><td class=\"num\">(\d)</td><td>([^<]+)</td><td class=\"num\">([^<]+)</td>",
        view,
    )
    assert [(n, place.split(" (")[0], value) for n, place, value in rows] == [
        ("1", "Hà Giang", "665"),
        ("2", "Hải Dương", "573"),
    ]
    # a bar opens the article at the cited sentence with the figure marked
    article = chromium("--dump-dom", server + htmllib.unescape(bars[1][0]), tmp=tmp_path / "b")
    inner = article.split('id="passage">', 1)[1].split("</mark>", 2)
    assert inner[0].endswith("<mark>573")
    # the same question typed in the search box: the table above the passages, answered by its leader
    q = "Tỉnh nào có nhiều dịch vụ công trực tuyến toàn trình nhất?"
    dom = chromium("--dump-dom", f"{server}/?q={quote(q)}", tmp=tmp_path / "c")
    answer = dom[dom.index('id="answer"') :]
    assert 'class="figure">Hà Giang: 665<' in answer and answer.index('id="compare"') < answer.index(
        "Các đoạn liên quan"
    )


def test_server_switches_to_a_rebuilt_index_without_failing_a_request(
    real_settings, real_searcher, tmp_path: Path
):
    folder, src = tmp_path / "idx", tmp_path / "src"
    shutil.copytree(real_settings.index_dir, folder)
    shutil.copytree(Path(__file__).resolve().parents[1] / "seeds", src)
    env = {**os.environ, "DE06QA_CACHE_DIR": str(real_settings.cache_dir), "DE06QA_INDEX_DIR": str(folder)}
    proc, base = start_server(env)
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            while not stop.is_set():
                statuses.append(
                    c.get(
                        "/search", params={"q": "Cao Bằng có bao nhiêu dịch vụ công toàn trình?"}
                    ).status_code
                )

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    try:
        for w in workers:
            w.start()
        (src / "010_caobang.txt").write_text(
            "Cao Bằng: Đẩy mạnh dịch vụ công trực tuyến\nĐến nay, tỉnh Cao Bằng đã cung cấp 512 dịch vụ công toàn trình.",
            encoding="utf-8",
        )
        r = subprocess.run([EXE, "index", str(src)], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "1 new or changed, 5 unchanged" in r.stderr, r.stderr
        deadline = time.monotonic() + 60
        while httpx.get(base + "/health", timeout=30).json()["documents"] != 6:
            assert time.monotonic() < deadline, "the server did not pick up the rebuilt index"
            time.sleep(0.5)
        d = httpx.get(
            base + "/search", params={"q": "Cao Bằng có bao nhiêu dịch vụ công toàn trình?"}, timeout=30
        ).json()
        assert d["answer"]["text"].split()[0] == "512"
        time.sleep(1)
    finally:
        stop.set()
        for w in workers:
            w.join()
        out = stop_server(proc)
    assert len(statuses) > 20 and set(statuses) == {200}, (len(statuses), set(statuses))
    assert "Traceback" not in out


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed")
def test_page_filters_facets_and_grouping_in_headless_chromium(server: str, tmp_path: Path):
    import html as htmllib
    import re

    url = f"{server}/?q={quote('chuyển đổi số')}&province={quote('Tuyên Quang')}"
    dom = chromium("--dump-dom", url, tmp=tmp_path / "a")
    # the filter from the URL is applied and shown as an active chip; every passage is Hà Giang's
    assert re.search(r'<a class="chip on" href="[^"]*"[^>]*>Tuyên Quang ×</a>', dom)
    groups = re.findall(r'<li class="card result group">(.*?)</li>', dom, re.S)
    assert len(groups) == 1 and "doc=002_956fdc6dbb6455d8" in groups[0]
    assert groups[0].count('class="passage-item"') == 5  # five passages of one article, under one heading
    # Without the filter: passages grouped per article, one heading each; facet chips apply filters.
    dom = chromium("--dump-dom", f"{server}/?q={quote('dịch vụ công trực tuyến')}", tmp=tmp_path / "b")
    groups = re.findall(r'<li class="card result group">(.*?)</li>', dom, re.S)
    titles = [re.search(r"<h3><a [^>]*>([^<]+)</a></h3>", g)[1] for g in groups]  # type: ignore[index]
    assert len(titles) == len(set(titles)) >= 2
    assert sum(g.count('class="passage-item"') for g in groups) == 5
    chips = dict(
        (htmllib.unescape(t).rsplit(" (", 1)[0], htmllib.unescape(h))
        for h, t in re.findall(r'<a class="chip" href="([^"]+)"[^>]*>([^<]+)</a>', dom)
    )
    assert "Bến Tre" in chips and "2024" in chips
    # Following the year chip narrows to that year and tells of the undated articles left out.
    dom = chromium("--dump-dom", server + chips["2024"], tmp=tmp_path / "c")
    assert "since=2024-01-01&amp;until=2024-12-31" in chips["2024"].replace("&", "&amp;")
    assert "bài không có ngày đăng đã bị bộ lọc ngày loại ra" in dom
    assert re.search(r'<a class="chip on" href="[^"]*"[^>]*>2024-01-01 – 2024-12-31 ×</a>', dom)


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed")
@pytest.mark.parametrize(("path", "rendered"), [("/docs", 'class="opblock'), ("/redoc", "api-content")])
def test_api_docs_render_offline_in_headless_chromium(server: str, tmp_path: Path, path: str, rendered: str):
    """Every other host is unresolvable for the browser: the docs must render from this server alone."""
    log = tmp_path / "net.json"
    dom = chromium(
        "--dump-dom", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--log-net-log={log}", server + path, tmp=tmp_path / "p",
    )  # fmt: skip
    assert rendered in dom and "/search" in dom
    hosts = set(re.findall(r'"url":"(?:https?|wss?)://([^/:"]+)', log.read_text(encoding="utf-8")))
    # Chromium itself tries its update and account services (unresolvable here); the page must
    # ask no other host (a CDN for Swagger UI or ReDoc, Google Fonts).
    browser_own = {h for h in hosts if h.endswith((".google.com", ".googleapis.com", ".gvt1.com"))}
    assert hosts - browser_own <= {"127.0.0.1"}, hosts
