"""Figures across provinces with the real model and index: the seeds, a corpus the test writes
(a dozen provinces among distracting numbers), through the Python API, the CLI and HTTP (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from de06qa.api import create_app
from de06qa.compare import compare, indicator_of
from de06qa.filters import parse_filters
from tests import province_corpus as pc
from tests.conftest import searcher_over

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("de06qa"))
ROW_KEYS = {
    "province",
    "value",
    "number",
    "unit",
    "qualifier",
    "as_of",
    "as_of_from",
    "doc_id",
    "start",
    "end",
    "page",
    "sentence",
    "confidence",
}  # fmt: skip  (the contract in DESIGN.md; rows carry more)


@pytest.fixture(scope="module")
def provinces(real_settings, real_embedder, real_reader, tmp_path_factory):
    """A searcher over the corpus the test writes."""
    return searcher_over(
        pc.write, real_settings, real_embedder, real_reader, tmp_path_factory.mktemp("provinces")
    )


def _table(c) -> dict[str, tuple[str, float, str | None]]:
    return {r.province: (r.figure.value, r.figure.number, r.as_of) for r in c.rows}


def test_the_seeds_figures_per_province(real_searcher):
    c = compare(real_searcher, "dịch vụ công toàn trình")
    assert _table(c) == {"Hà Giang": ("665", 665, "2023-12-03"), "Hải Dương": ("573", 573, "2024-06-03")}
    hg = c.rows[0]
    assert hg.as_of_from == "paragraph" and hg.figure.unit == "dịch vụ công"
    assert real_searcher.document(hg.doc_id).text[hg.figure.start : hg.figure.end] == "665"
    assert c.leader is not None and c.leader.province == "Hà Giang"
    assert set(c.silent) == {"Bến Tre", "Thái Bình", "Thái Nguyên"}
    chips = _table(compare(real_searcher, "căn cước công dân gắn chip"))
    assert chips["Bến Tre"] == ("1.306.180", 1306180, "2023-04-19")
    assert chips["Thái Bình"] == ("hơn 1,5 triệu", 1_500_000, None)  # the article has no date
    accounts = compare(real_searcher, "So sánh số tài khoản định danh điện tử đã kích hoạt giữa các tỉnh")
    assert {p: v for p, (v, _, _) in _table(accounts).items()} == {
        "Hà Giang": "484.526/ 318.910",
        "Thái Bình": "958.367",
    }


def test_a_superlative_question_is_answered_by_the_leading_row(real_searcher):
    q = "Tỉnh nào có nhiều dịch vụ công trực tuyến toàn trình nhất?"
    assert indicator_of(q) == ("dịch vụ công trực tuyến toàn trình", [])
    c = compare(real_searcher, q)
    assert c.leader is not None and (c.leader.province, c.leader.figure.value) == ("Hà Giang", "665")
    assert (
        real_searcher.search(q).comparative
        and not real_searcher.search("Hà Giang có bao nhiêu dịch vụ công toàn trình?").comparative
    )


@pytest.mark.parametrize("indicator", [pc.SERVICES, pc.ACCOUNTS])
def test_every_reported_province_and_no_invented_row(provinces, indicator):
    c = compare(provinces, indicator)
    assert _table(c) == pc.EXPECTED[indicator]
    assert set(c.silent) >= pc.SILENT and not pc.SILENT & set(_table(c))
    numbers = [r.figure.number for r in c.rows]
    assert numbers == sorted(numbers, reverse=True)


def test_rows_that_do_not_compare_say_why(provinces):
    services = {r.province: r for r in compare(provinces, pc.SERVICES).rows}
    assert services["Lào Cai"].notes == ("14 months after most figures",)
    assert services["Lạng Sơn"].notes == ()
    accounts = compare(provinces, pc.ACCOUNTS)
    nghe_an = next(r for r in accounts.rows if r.province == "Nghệ An")
    assert nghe_an.figure.qualifier == "hơn" and nghe_an.notes == ("“hơn”: not exact",)
    assert accounts.leader is None  # "hơn 1,2 triệu" may exceed or not: no single leader


def test_one_province_over_time_and_a_merged_name(provinces):
    c = compare(provinces, pc.SERVICES, "date", parse_filters(["Sơn La"]))
    assert [(r.figure.value, r.as_of) for r in c.rows] == [("300", "2023-06-30"), ("420", "2024-05-31")]
    merged = compare(provinces, pc.SERVICES, None, parse_filters(["Lào Cai"]))
    assert {(r.province, r.province_2025, r.figure.value) for r in merged.rows} == {
        ("Lào Cai", "Lào Cai", "690"), ("Yên Bái", "Lào Cai", "350"),
    }  # fmt: skip
    over_time = compare(provinces, f"Sơn La có bao nhiêu {pc.SERVICES} qua các năm?")
    assert over_time.by == "date" and len(over_time.rows) == 2
    every = compare(provinces, pc.SERVICES, "date")  # no province named: each one's series
    assert [r.figure.value for r in every.rows if r.province == "Sơn La"] == ["300", "420"]
    assert len({r.province for r in every.rows}) == len(pc.EXPECTED[pc.SERVICES])


def test_compare_over_http(provinces):
    with TestClient(create_app(provinces.settings, provinces.embedder, provinces.reader)) as client:
        r = client.get("/compare", params={"q": pc.ACCOUNTS})
        assert r.status_code == 200
        d = r.json()
        assert d["by"] == "province" and set(d["rows"][0]) >= ROW_KEYS
        assert {row["province"]: row["value"] for row in d["rows"]} == {
            p: v for p, (v, _, _) in pc.EXPECTED[pc.ACCOUNTS].items()
        }
        row = d["rows"][0]
        text = client.get(f"/documents/{row['doc_id']}").json()["text"]
        assert text[row["start"] : row["end"]] == row["value"]
        r = client.get("/compare", params={"q": pc.SERVICES, "by": "date", "province": "Sơn La"})
        assert [x["value"] for x in r.json()["rows"]] == ["300", "420"]
        for params in (
            {"q": pc.SERVICES, "by": "week"},
            {"q": ""},
            {"q": pc.SERVICES, "province": "Atlantis"},
        ):
            bad = client.get("/compare", params=params)
            assert bad.status_code == 422 and bad.json()["detail"], params
        schema = client.get("/openapi.json").json()
        assert "/compare" in schema["paths"] and "CompareRowOut" in schema["components"]["schemas"]


def test_compare_from_the_command_line(provinces):
    env = {**os.environ, "DE06QA_CACHE_DIR": str(provinces.settings.cache_dir),
           "DE06QA_INDEX_DIR": str(provinces.settings.index_dir)}  # fmt: skip
    r = subprocess.run(
        [EXE, "compare", pc.SERVICES, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {row["province"]: row["number"] for row in d["rows"]} == {
        p: n for p, (_, n, _) in pc.EXPECTED[pc.SERVICES].items()
    }
    r = subprocess.run([EXE, "compare", pc.ACCOUNTS], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1.506.331" in r.stdout and "No figure in the articles of:" in r.stdout and "Điện Biên" in r.stdout
    # a comparative question asked in the terminal prints the table above the passages
    ask = subprocess.run(
        [EXE, "ask", f"Tỉnh nào có nhiều {pc.SERVICES} nhất?"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ask.returncode == 0, ask.stderr
    assert ask.stdout.index("— by province") < ask.stdout.index("Lạng Sơn: kết quả") and "1.024" in ask.stdout
    bad = subprocess.run(
        [EXE, "compare", pc.SERVICES, "--by", "week"], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: unknown by='week'; use province or date"
    ]
