"""SQuAD-format data → corpus + questions, and `de06qa eval` on it end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from de06qa.errors import De06qaError
from de06qa.evaluation import load_questions
from de06qa.ingest import read_folder
from de06qa.squad import convert

from .conftest import SEEDS

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("de06qa"))


def squad_from_seeds(path: Path) -> int:
    """A SQuAD 2.0 file made of two seed articles (one context per paragraph) and the project's
    own questions about them, plus one impossible question."""
    articles = {a.doc_id[:3]: a for a in read_folder(SEEDS)[0]}
    qs = [
        q
        for q in load_questions(ROOT / "eval" / "questions.jsonl")
        if q.doc_id and q.doc_id[:3] in ("002", "004")
    ]
    data = []
    for key in ("002", "004"):
        a = articles[key]
        paras = []
        for line in a.text.split("\n")[1:]:
            qas = [
                {"id": q.qid, "question": q.question, "is_impossible": False,
                 "answers": [{"text": x, "answer_start": line.index(x)} for x in q.answers if x in line]}
                for q in qs if q.doc_id == a.doc_id and any(x in line for x in q.answers)
            ]  # fmt: skip
            paras.append({"context": line, "qas": qas})
        data.append({"title": a.title, "paragraphs": paras})
    data[0]["paragraphs"][0]["qas"].append(
        {
            "id": "imp1",
            "question": "Giá vé máy bay Hà Nội - Đà Nẵng là bao nhiêu?",
            "is_impossible": True,
            "answers": [],
        }
    )
    path.write_text(json.dumps({"version": "v2.0", "data": data}, ensure_ascii=False), encoding="utf-8")
    return sum(len(p["qas"]) for d in data for p in d["paragraphs"])


def test_convert_writes_corpus_and_questions(tmp_path: Path):
    n = squad_from_seeds(tmp_path / "squad.json")
    c = convert(tmp_path / "squad.json", tmp_path / "out")
    assert c.articles == 2 and c.answerable + c.unanswerable == n and c.unanswerable == 1
    files = sorted(p.name for p in c.corpus.glob("*.txt"))
    assert files[0].startswith("0000_ha_giang") and files[1].startswith("0001_")
    docs = {a.doc_id: a for a in read_folder(c.corpus)[0]}
    for q in load_questions(c.questions):
        if q.answerable:
            assert any(x in docs[q.doc_id].text for x in q.answers), q
        else:
            assert q.kind == "unanswerable" and q.doc_id is None


def test_convert_refuses_what_is_not_squad(tmp_path: Path):
    (tmp_path / "x.json").write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(De06qaError, match="not a SQuAD JSON file"):
        convert(tmp_path / "x.json", tmp_path / "out")


@pytest.mark.slow
def test_eval_command_on_converted_squad(real_settings, tmp_path: Path):
    squad_from_seeds(tmp_path / "squad.json")
    env = {**os.environ, "DE06QA_CACHE_DIR": str(real_settings.cache_dir)}
    r = subprocess.run([EXE, "convert-squad", str(tmp_path / "squad.json"), "--out", str(tmp_path / "d")],
                       env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0 and "Wrote 2 articles" in r.stderr, r.stderr
    d = tmp_path / "d"
    r = subprocess.run(
        [EXE, "eval", "--corpus", str(d / "corpus"), "--questions", str(d / "questions.jsonl"),
         "--index-dir", str(d / "index"), "--out", str(d / "out")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for mode in ("bm25-syllables", "bm25-words", "bm25", "dense", "hybrid"):
        assert mode in r.stdout
    report = json.loads((d / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert report["modes"]["hybrid"]["all"]["hit@5"] >= 0.8
    assert report["modes"]["hybrid"]["abstention"]["recall"] == 1.0
    for name in ("run.trec", "run.dense.trec", "qrels.trec", "failures.jsonl"):
        assert (d / "out" / name).exists()
    # every question's answer, scored as the metrics score it
    rows = [
        json.loads(line) for line in (d / "out" / "answers.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(rows) == report["questions"]
    answerable = [row for row in rows if row["answers"]]
    hybrid = report["modes"]["hybrid"]
    assert sum(row["f1"] for row in answerable) / len(answerable) == pytest.approx(
        hybrid["answer_f1"], abs=1e-3
    )
    assert sum(row["em"] for row in answerable) / len(answerable) == pytest.approx(
        hybrid["answer_exact_match"], abs=1e-3
    )
    assert all(row["answer"] is None for row in rows if row["flagged"])
