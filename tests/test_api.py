"""The HTTP contract through FastAPI's TestClient: routes, models, every bad input → 4xx."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from de06qa.api import create_app
from de06qa.config import Settings

from .conftest import FakeEmbedder, FakeReader

LOCAL = ("127.0.0.1", 50000)
Q = "Hà Giang có bao nhiêu dịch vụ công toàn trình?"


@pytest.fixture(scope="module")
def client(fake_index: Settings):
    with TestClient(create_app(fake_index, FakeEmbedder(), FakeReader()), client=LOCAL) as c:
        yield c


@pytest.mark.parametrize(
    ("request_args", "status", "reason"),
    [
        (("GET", "/search?q="), 422, "empty"),
        (("GET", "/search?q=%20%09%20"), 422, "empty"),
        (("GET", "/search"), 422, "q: Field required"),
        (("GET", "/search?q=" + "a" * 1001), 422, "1001 characters; the limit is 1000"),
        (("GET", "/search?q=x&k=0"), 422, "k: Input should be greater than or equal to 1"),
        (("GET", "/search?q=x&k=51"), 422, "k: Input should be less than or equal to 50"),
        (("GET", "/search?q=x&k=five"), 422, "k: Input should be a valid integer"),
        (("GET", "/search?q=x&mode=magic"), 422, "mode:"),
        (("GET", "/search?q=%C3%28%FF"), 400, "not valid UTF-8"),
        (("GET", "/documents/no_such_doc"), 404, "no article 'no_such_doc'"),
        (
            ("POST", "/search", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
            422,
            "not valid JSON",
        ),
        (("POST", "/search", {"json": {"k": 3}}), 422, "q: Field required"),
        (("POST", "/search", {"json": {"q": "x", "k": "many"}}), 422, "k: Input should be a valid integer"),
        (
            ("POST", "/search", {"json": {"q": "x", "k": 99}}),
            422,
            "k: Input should be less than or equal to 50",
        ),
        (("POST", "/search", {"json": {"q": "   "}}), 422, "empty"),
        (("POST", "/search", {"json": ["q"]}), 422, "valid dictionary"),
        (
            ("POST", "/search", {"content": "q=x", "headers": {"content-type": "text/plain"}}),
            415,
            "Content-Type text/plain is not JSON",
        ),
        (
            (
                "POST",
                "/search",
                {"content": "q=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            ),
            415,
            "send Content-Type: application/json",
        ),
        (("GET", "/search?q=x&province=Atlantis"), 422, "province='Atlantis' is not a Vietnamese province"),
        (("GET", "/search?q=x&since=2024-13-01"), 422, "since='2024-13-01' is not a date"),
        (("POST", "/search", {"json": {"q": "x", "until": "3/2024"}}), 422, "until='3/2024' is not a date"),
        (("GET", "/search?q=x&sort=oldest"), 422, "sort:"),
        (
            ("POST", "/search", {"json": {"q": "x", "province": "Hà Giang"}}),
            422,
            "province: Input should be a valid list",
        ),
    ],
)
def test_bad_input_is_a_4xx_with_a_reason(client: TestClient, request_args, status: int, reason: str):
    method, url, *kw = request_args
    r = client.request(method, url, **(kw[0] if kw else {}))
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert reason in detail


def test_wrong_method_lists_the_allowed_ones(client: TestClient):
    r = client.request("PUT", "/search", json={"q": "x"})
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    assert r.json()["detail"] == "PUT is not allowed here; use GET or POST"


def test_get_and_post_give_the_same_search(client: TestClient):
    g = client.get("/search", params={"q": Q, "k": 3}).json()
    p = client.post("/search", json={"q": Q, "k": 3}).json()
    g.pop("timings_ms"), p.pop("timings_ms")
    assert g == p and len(g["results"]) == 3
    assert [r["rank"] for r in g["results"]] == [1, 2, 3]


def test_offsets_point_into_the_document_text(client: TestClient):
    d = client.get("/search", params={"q": Q, "k": 10}).json()
    texts: dict[str, str] = {}
    for r in d["results"]:
        doc = texts.setdefault(r["doc_id"], client.get(f"/documents/{r['doc_id']}").json()["text"])
        assert doc[r["start"] : r["end"]] == r["text"]
    a = d["answer"]
    if a:
        doc = client.get(f"/documents/{a['doc_id']}").json()["text"]
        assert doc[a["start"] : a["end"]] == a["text"]
        assert doc[a["sentence_start"] : a["sentence_end"]] == a["sentence"]


def test_documents_and_health(client: TestClient, fake_index: Settings):
    docs = client.get("/documents").json()["documents"]
    seeds = sorted(p.stem for p in fake_index.seeds_dir.glob("*.txt"))
    assert sorted(d["doc_id"] for d in docs) == seeds
    one = client.get(f"/documents/{docs[0]['doc_id']}").json()
    assert one["title"] == docs[0]["title"] and len(one["text"]) == docs[0]["chars"]
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["documents"] == 5 and h["chunks"] > 50
    assert h["model"] == FakeEmbedder.model_id and re.match(r"\d{4}-\d\d-\d\dT", h["built_at"])


def test_openapi_describes_the_routes(client: TestClient):
    spec = client.get("/openapi.json").json()
    assert {"/search", "/documents", "/documents/{doc_id}", "/health"} <= set(spec["paths"])
    assert "post" in spec["paths"]["/search"] and client.get("/docs").status_code == 200


def test_page_is_self_contained(client: TestClient):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'lang="vi"' in html and "<mark" not in html.split("<script>")[0]
    # No external fonts, scripts, styles or images: every src/href is local.
    for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert ref.startswith("/"), ref
    # The SVG namespace is a name the browser never fetches; any other address would be a fetch.
    assert not re.search(r"https?:|@import|url\(", html.replace('"http://www.w3.org/2000/svg"', ""))


def test_reload_only_from_loopback(fake_index: Settings):
    app = create_app(fake_index, FakeEmbedder(), FakeReader())
    with TestClient(app, client=("192.0.2.7", 4000)) as remote:
        r = remote.post("/admin/reload")
        assert r.status_code == 403 and "127.0.0.1" in r.json()["detail"]
    with TestClient(app, client=LOCAL) as local:
        r = local.post("/admin/reload")
        assert r.status_code == 200 and r.json()["documents"] == 5


def test_missing_or_damaged_index_is_503_with_the_fix(tmp_path: Path, fake_index: Settings):
    missing = fake_index.with_(index_dir=tmp_path / "nothing")
    with TestClient(create_app(missing, FakeEmbedder(), FakeReader()), client=LOCAL) as c:
        for url in ("/search?q=abc", "/documents", "/health"):
            r = c.get(url)
            assert r.status_code == 503 and "de06qa index" in (r.json().get("detail") or r.json()["reason"])
        assert c.get("/").status_code == 200  # the page still loads and shows the reason
    damaged = tmp_path / "damaged"
    shutil.copytree(fake_index.index_dir, damaged)
    (damaged / "chunks.jsonl").write_text('{"chunk_id": ', encoding="utf-8")
    with TestClient(
        create_app(fake_index.with_(index_dir=damaged), FakeEmbedder(), FakeReader()), client=LOCAL
    ) as c:
        r = c.get("/search", params={"q": "abc"})
        assert r.status_code == 503 and "--rebuild" in r.json()["detail"]


# -- filters, facets, order ------------------------------------------------------------------------
def _docs(d: dict) -> set[str]:  # type: ignore[type-arg]
    return {r["doc_id"] for r in d["results"]}


def test_province_filter_applies_before_ranking_and_a_2025_name_covers_its_former_provinces(client):
    docs = client.get("/documents").json()["documents"]
    ha_giang = {x["doc_id"] for x in docs if "Hà Giang" in x["provinces"]}
    assert ha_giang  # seed 002
    for name in ("Hà Giang", "ha giang", "Tuyên Quang"):
        d = client.get("/search", params={"q": "chuyển đổi số", "k": 5, "province": name}).json()
        # k passages come back (the article has more than 5 chunks), all from matching articles
        assert len(d["results"]) == 5 and _docs(d) <= ha_giang, name
        assert set(d["facets"]["province"]) >= {"Hà Giang"}
    assert client.get("/search", params={"q": "chuyển đổi số", "province": "Tuyên Quang"}).json()["filters"][
        "province"
    ] == ["Tuyên Quang"]
    # repeatable: the union of the provinces
    both = client.get(
        "/search",
        params=[("q", "chuyển đổi số"), ("k", 50), ("province", "Hà Giang"), ("province", "Bến Tre")],
    ).json()
    assert len(_docs(both)) == 2


def test_date_filter_excludes_undated_articles_and_says_how_many(client):
    docs = client.get("/documents").json()["documents"]
    dated_2024 = {x["doc_id"] for x in docs if (x["date"] or "").startswith("2024")}
    undated = sum(x["date"] is None for x in docs)
    d = client.get(
        "/search", params={"q": "dịch vụ công", "k": 10, "since": "2024", "until": "2024-12"}
    ).json()
    assert d["filters"]["since"] == "2024-01-01" and d["filters"]["until"] == "2024-12-31"
    assert _docs(d) == dated_2024
    assert d["filters"]["undated_excluded"] == undated > 0
    assert set(d["facets"]["year"]) == {"2024"}
    for empty in ({"since": "2030-01-01"}, {"since": "2025", "until": "2024"}):  # nothing in the range
        nothing = client.get("/search", params={"q": "dịch vụ công", **empty}).json()
        assert nothing["results"] == [] and nothing["answer"] is None and nothing["answerable"] is False
    # a day past the month's end means its last day
    assert (
        client.get("/search", params={"q": "x", "until": "2024-02-31"}).json()["filters"]["until"]
        == "2024-02-29"
    )


def test_sort_by_date_gives_the_same_passages_newest_first(client):
    rel = client.get("/search", params={"q": "dịch vụ công trực tuyến", "k": 8}).json()
    new = client.get("/search", params={"q": "dịch vụ công trực tuyến", "k": 8, "sort": "date"}).json()
    assert sorted(r["chunk_id"] for r in rel["results"]) == sorted(r["chunk_id"] for r in new["results"])
    dates = [r["date"] for r in new["results"]]
    dated = [x for x in dates if x]
    assert dated == sorted(dated, reverse=True) and dates[: len(dated)] == dated  # undated last
    assert [r["rank"] for r in new["results"]] == list(range(1, 9))
    assert new["filters"]["sort"] == "date"


def test_facets_count_the_retrieved_passages_per_province_and_year(client):
    d = client.get("/search", params={"q": "dịch vụ công", "k": 3}).json()
    years = d["facets"]["year"]
    counts = list(d["facets"]["province"].values())
    assert counts == sorted(counts, reverse=True) and counts[0] > 0
    numbered = [y for y in years if y != "undated"]
    assert numbered == sorted(numbered, reverse=True)
    assert sum(years.values()) >= len(d["results"])  # every passage counted once per year bucket
    post = client.post(
        "/search", json={"q": "dịch vụ công", "k": 3, "province": ["Bến Tre"], "sort": "date"}
    ).json()
    assert set(post["facets"]["province"]) >= {"Bến Tre"} and post["filters"]["sort"] == "date"


def test_api_docs_are_served_from_the_package(client):
    for path in ("/docs", "/redoc"):
        page = client.get(path).text
        urls = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert urls and all(u.startswith("/") for u in urls), urls  # nothing from another host
        for u in urls:
            if not u.endswith(".json"):
                assert client.get(u).status_code == 200, u


def test_backend_settings_errors_name_the_fix(tmp_path):
    from de06qa.backends import milvus_uri
    from de06qa.errors import De06qaError

    assert milvus_uri(Settings()) is None
    with pytest.raises(De06qaError, match="--backend milvus needs --milvus-uri URI"):
        milvus_uri(Settings(backend="milvus"))
    with pytest.raises(
        De06qaError, match=r"unknown backend 'solr' \(DE06QA_BACKEND\); use embedded or milvus"
    ):
        Settings(backend="solr")  # type: ignore[arg-type]
    assert milvus_uri(Settings(backend="milvus", milvus_uri="x.db")) == str((Path.cwd() / "x.db").resolve())
    assert (
        milvus_uri(Settings(backend="milvus", milvus_uri="http://127.0.0.1:19530"))
        == "http://127.0.0.1:19530"
    )


def test_filters_become_milvus_expressions():
    from de06qa.backends.milvus import _expr
    from de06qa.filters import parse_filters

    assert _expr(None) == "" and _expr(parse_filters()) == ""
    assert _expr(parse_filters(["Tuyên Quang"], "2024", "2024-06")) == (
        'array_contains_any(provinces, ["Hà Giang", "Tuyên Quang"]) and date >= "2024-01-01" '
        'and date != "" and date <= "2024-06-30"'
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DE06QA_RUNTIME": "tensorflow"},
            "unknown runtime 'tensorflow' (DE06QA_RUNTIME); use onnx or torch",
        ),
        ({"DE06QA_PRECISION": "fp16"}, "unknown precision 'fp16' (DE06QA_PRECISION); use int8 or fp32"),
        (
            {"DE06QA_FAISS_INDEX": "ivf"},
            "unknown faiss index 'ivf' (DE06QA_FAISS_INDEX); use auto or flat or hnsw",
        ),
        ({"DE06QA_THREADS": "two"}, "DE06QA_THREADS='two' is not a whole number"),
    ],
)
def test_a_setting_the_product_does_not_offer_fails_at_start_with_one_line(env, message):
    """Checked where the settings are read, before any model loads or any embedding is done; the
    CLI prints the line and exits 2."""
    from de06qa.errors import De06qaError

    with pytest.raises(De06qaError) as e:
        Settings.from_env(env)
    assert str(e.value) == message
    r = subprocess.run(
        [sys.executable, "-m", "de06qa", "index", "seeds", "--index-dir", "/nonexistent/never-written"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip() == f"error: {message}"
