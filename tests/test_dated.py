"""Answers that know their date: the newest figure first, the figure for the time asked, the others
beside it. The choice itself on plain values; then, with the real model and index, a corpus the test
writes (provinces reported several times) through Python, the CLI, HTTP and the page in Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from de06qa.contract import search_json
from de06qa.dated import choose, conflict, newest_first, shown
from de06qa.figures import time_asked
from tests import dated_corpus as dc
from tests.conftest import searcher_over

EXE = str(Path(sys.executable).with_name("de06qa"))


@dataclass(frozen=True)
class A:
    text: str
    as_of: str | None
    confidence: float = 0.9


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        ("Lào Cai đã kích hoạt bao nhiêu tài khoản định danh điện tử?", None),
        ("Năm 2022 Lào Cai kích hoạt bao nhiêu tài khoản?", "2022"),
        ("Đến hết năm 2023 tỉnh có bao nhiêu dịch vụ công toàn trình?", "2023"),
        ("Tháng 3/2023 tỉnh có bao nhiêu dịch vụ công toàn trình?", "2023-03"),
        ("Quý I/2024 tỉnh tiếp nhận bao nhiêu hồ sơ?", "2024-03"),
        ("Tính đến ngày 30/6/2024 có bao nhiêu tài khoản?", "2024-06-30"),
        # a document's issuing date is not a time asked
        ("Nghị quyết 01/NQ-CP ngày 06/01/2023 giao chỉ tiêu bao nhiêu dịch vụ?", None),
    ],
)
def test_the_time_a_question_names(question: str, asked: str | None):
    assert time_asked(question) == asked


def test_the_newest_wins_unless_a_time_is_asked():
    old, mid, new = A("180.512", "2023-03-15"), A("352.004", "2023-12-31"), A("421.870", "2024-06-30")
    assert choose([old, mid, new], None) == 2
    assert choose([old, mid, new], "2023") == 1  # within the year asked
    assert choose([new, old, mid], "2023-03") == 1
    assert choose([old, mid, new], "2023-09") == 0  # none in September: the closest before it
    assert choose([new, mid], "2022") == 0  # nothing before the time asked: the reader's choice stays
    # an undated best answer stays: nothing says it is older
    assert choose([A("7", None), new], None) == 0
    # precision: a year's figure is newer than any day of the year before
    assert choose([A("1", "2023-12-31"), A("2", "2024")], None) == 1
    assert [x for x in newest_first([old, A("9", None), new, mid])] == [2, 3, 0, 1]


def test_different_figures_for_one_date_are_a_conflict():
    a, b = A("301.200", "2023-12-31"), A("310.200 tài khoản", "2023-12-31")
    assert conflict([a, b], 0) and conflict([a, b], 1)
    assert not conflict([a, A("301.200 tài khoản", "2023-12-31")], 0)  # the same figure, worded apart
    assert not conflict([a, A("310.200", "2024-01-31")], 0)
    assert shown("2023-12-03") == "03/12/2023" and shown("2023-12") == "12/2023" and shown(None) == ""


@pytest.fixture(scope="module")
def archive(real_settings, real_embedder, real_reader, tmp_path_factory):
    """A searcher over the dated corpus the test writes."""
    return searcher_over(
        dc.write, real_settings, real_embedder, real_reader, tmp_path_factory.mktemp("dated")
    )


def _figures(series: list[tuple[str, str]], answer: dict) -> list[tuple[str, str]]:
    """(as_of, figure) of the answer and its others, as far as they give a figure of the series."""
    got = []
    for a in [answer, *answer["others"]]:
        figure = next((f for _, f in series if a["text"].startswith(f)), None)
        if figure:
            got.append((a["as_of"], figure))
    return got


@pytest.mark.slow
@pytest.mark.parametrize("key", list(dc.SERIES))
def test_without_a_time_the_newest_figure_and_the_older_ones_beside_it(archive, key):
    series = dc.SERIES[key]
    r = archive.search(dc.question(*key))
    a = search_json(r)["answer"]
    assert r.answerable and a["text"].startswith(series[-1][1]) and a["as_of"] == series[-1][0]
    assert a["as_of_from"] == "sentence" and not a["conflict"]
    # the older reports, newest first, each with its date and a citation that holds its text
    assert _figures(series, a) == [*reversed(series)]
    for o in a["others"]:
        text = archive.document(o["doc_id"]).text
        assert text[o["start"] : o["end"]] == o["text"] and o["sentence"] in text
        assert o["confidence"] >= archive.models.threshold


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "when", "expected"),
    [
        (("Lào Cai", dc.ACCOUNTS), "Năm 2023, ", ("2023-12-31", "352.004")),
        (("Lào Cai", dc.ACCOUNTS), "Tính đến tháng 3/2023, ", ("2023-03-15", "180.512")),
        (("Lào Cai", dc.ACCOUNTS), "Đến tháng 9/2023, ", ("2023-03-15", "180.512")),  # the closest before
        (("Bình Định", dc.SERVICES), "Năm 2023, ", ("2023-06-15", "620")),
    ],
)
def test_a_question_naming_a_time_gets_that_times_figure(archive, key, when, expected):
    a = search_json(archive.search(dc.question(*key, when=when)))["answer"]
    assert (a["as_of"], a["text"][: len(expected[1])]) == expected
    assert {o["as_of"] for o in a["others"]} == {d for d, _ in dc.SERIES[key]} - {expected[0]}


@pytest.mark.slow
def test_two_reports_disagreeing_for_one_date_are_said_to(archive):
    a = search_json(archive.search(dc.question("Tây Ninh", dc.ACCOUNTS)))["answer"]
    assert a["conflict"] and a["as_of"] == "2023-12-31"
    assert {a["text"][:7], *(o["text"][:7] for o in a["others"])} == {"301.200", "310.200"}


@pytest.mark.slow
def test_the_seeds_answer_with_its_date(real_searcher):
    r = real_searcher.search("Hà Giang có bao nhiêu dịch vụ công toàn trình?")
    a = r.answer
    assert a is not None and a.text.startswith("665")
    assert (a.as_of, a.as_of_from) == ("2023-12-03", "paragraph")


@pytest.mark.slow
def test_dated_answers_over_http_and_the_command_line(archive):
    from de06qa.api import create_app

    q = dc.question("Lào Cai", dc.ACCOUNTS)
    with TestClient(create_app(archive.settings, archive.embedder, archive.reader)) as client:
        for r in (client.get("/search", params={"q": q}), client.post("/search", json={"q": q})):
            assert r.status_code == 200
            a = r.json()["answer"]
            assert (a["as_of"], a["number"]) == ("2024-06-30", 421870)
            assert [o["as_of"] for o in a["others"]] == ["2023-12-31", "2023-03-15"]
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert {"as_of", "as_of_from", "others", "conflict"} <= set(schema["AnswerOut"]["properties"])
    env = {**os.environ, "DE06QA_CACHE_DIR": str(archive.settings.cache_dir),
           "DE06QA_INDEX_DIR": str(archive.settings.index_dir)}  # fmt: skip
    run = subprocess.run([EXE, "ask", q], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    answer = next(line for line in lines if line.startswith("Answer: "))
    assert "421.870" in answer and "as of 30/06/2024" in answer
    older = lines[lines.index("Other reports, newest first:") + 1 :][:2]
    assert "352.004" in older[0] and "31/12/2023" in older[0] and "180.512" in older[1]
    run = subprocess.run([EXE, "ask", "--json", q], env=env, capture_output=True, text=True, timeout=120)
    assert json.loads(run.stdout)["answer"]["as_of"] == "2024-06-30"


@pytest.mark.slow
@pytest.mark.skipif(
    not (os.environ.get("CI") or __import__("shutil").which("chromium")), reason="chromium not installed"
)
def test_the_page_shows_the_date_and_the_figures_over_time(archive, tmp_path):
    import html as htmllib

    from tests.test_server import chromium, start_server, stop_server

    env = {**os.environ, "DE06QA_CACHE_DIR": str(archive.settings.cache_dir),
           "DE06QA_INDEX_DIR": str(archive.settings.index_dir)}  # fmt: skip
    proc, base = start_server(env)
    try:
        dom = chromium(
            "--dump-dom", f"{base}/?q={quote(dc.question('Lào Cai', dc.ACCOUNTS))}", tmp=tmp_path / "a"
        )
        card = dom[dom.index('id="answer"') :]
        assert 'class="figure">421.870' in card and "Tính đến 30/06/2024" in card
        over = card[card.index('id="over-time"') :]
        chart = over[over.index('id="over-time-chart"') : over.index("</svg>")]
        bars = re.findall(
            r'<a href="([^"]+)"[^>]*><text[^>]*>([^<]+)</text><rect [^>]*width="([\d.]+)"', chart
        )
        assert [d for _, d, _ in bars] == ["15/03/2023", "31/12/2023", "30/06/2024"]
        widths = [float(w) for _, _, w in bars]
        assert widths == sorted(widths)  # the figure grew
        items = re.findall(r'<li><a class="cite" href="([^"]+)"[^>]*>([^<]+)</a> \(([^)]+)\)', over)
        assert [(t[:7], d) for _, t, d in items] == [("352.004", "31/12/2023"), ("180.512", "15/03/2023")]
        # an older figure opens its article at its sentence with the figure marked
        article = chromium("--dump-dom", base + htmllib.unescape(items[1][0]), tmp=tmp_path / "b")
        assert article.split('id="passage">', 1)[1].startswith("Tính đến ngày 15/3/2023")
        assert "<mark>180.512" in article
        # two points: the list without a chart
        dom = chromium(
            "--dump-dom", f"{base}/?q={quote(dc.question('Bình Định', dc.SERVICES))}", tmp=tmp_path / "c"
        )
        card = dom[dom.index('id="answer"') :]
        assert 'id="over-time"' in card and 'id="over-time-chart"' not in card
    finally:
        out = stop_server(proc)
    assert "Traceback" not in out, out
