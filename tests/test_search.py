"""End-to-end search with the real default model over the seeds (slow)."""

from pathlib import Path

import pytest

from de06qa.contract import search_json
from de06qa.errors import BadQuery
from de06qa.evaluation import evaluate, load_questions, run_file

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_the_core_promise(real_searcher):
    res = real_searcher.search("Hà Giang có bao nhiêu dịch vụ công toàn trình?")
    d = search_json(res)
    # the reader's span: the figure as the article writes it, with its unit noun ("665 dịch vụ")
    assert d["answerable"] is True and d["answer"]["text"].split()[0] == "665"
    doc = real_searcher.document(d["answer"]["doc_id"]).text
    assert doc[d["answer"]["start"] : d["answer"]["end"]] == d["answer"]["text"]
    assert d["answer"]["sentence"].startswith("Trong đó có 665 dịch vụ công toàn trình")
    top = d["results"][0]
    assert top["doc_id"] == "002_956fdc6dbb6455d8" and top["source"].endswith("002_956fdc6dbb6455d8.txt")
    assert doc[top["start"] : top["end"]] == top["text"]
    assert set(top["scores"]) == {"lexical", "dense"} and 0 <= d["confidence"] <= 1


@pytest.mark.parametrize(
    "question",
    [
        "ha giang co bao nhieu dich vu cong toan trinh",
        "How many end-to-end online public services does Ha Giang have?",
    ],
)
def test_accentless_and_english_questions_find_the_passage(real_searcher, question):
    """Typed without diacritics or in English, the question still finds the right article first and
    the passage with the figure among the first three (the answer span and the confidence for these
    are weaker: eval/RESULTS.md)."""
    d = search_json(real_searcher.search(question))
    assert d["results"][0]["doc_id"] == "002_956fdc6dbb6455d8"
    assert any("665 dịch vụ công toàn trình" in r["text"] for r in d["results"][:3])


def test_merged_province_name_finds_the_old_provinces_report(real_searcher):
    d = search_json(real_searcher.search("Tuyên Quang có bao nhiêu dịch vụ công toàn trình?"))
    assert d["answerable"] is True and d["answer"]["doc_id"] == "002_956fdc6dbb6455d8"
    assert d["results"][0]["doc_id"] == "002_956fdc6dbb6455d8" and "665" in d["results"][0]["text"]


@pytest.mark.parametrize(
    ("question", "figure"),
    [
        ("Thái Bình có bao nhiêu thẻ căn cước gắn chip?", "hơn 1,5 triệu"),
        ("What percentage of online public services did Ha Giang reach?", "96,9%"),
    ],
)
def test_the_answer_is_the_articles_figure_in_vietnamese_and_in_english(real_searcher, question, figure):
    """The reader's span holds the figure as the article writes it (qualifier, decimal comma), not
    a number from another sentence; an English question over Vietnamese text is answered too."""
    d = search_json(real_searcher.search(question))
    a = d["answer"]
    assert d["answerable"] is True and figure in a["text"], (a, d["confidence"])
    doc = real_searcher.document(a["doc_id"]).text
    assert doc[a["start"] : a["end"]] == a["text"] and a["text"] in a["sentence"]
    assert doc[a["sentence_start"] : a["sentence_end"]] == a["sentence"]


@pytest.mark.parametrize("question", ["Hà Nội có bao nhiêu dịch vụ công trực tuyến?", "Giá vàng hôm nay?"])
def test_unanswerable_questions_say_so_and_still_list_results(real_searcher, question):
    d = search_json(real_searcher.search(question, k=3))
    assert d["answerable"] is False and d["answer"] is None
    assert len(d["results"]) == 3 and d["confidence"] < 0.5


def test_json_contract_keys(real_searcher):
    d = search_json(real_searcher.search("Chủ tịch UBND tỉnh Bến Tre là ai?", k=2))
    assert set(d) == {
        "query",
        "read_as",
        "answerable",
        "confidence",
        "answer",
        "results",
        "filters",
        "facets",
        "comparative",
        "timings_ms",
    }
    assert {"text", "sentence", "doc_id", "start", "end", "as_of", "as_of_from", "others", "conflict"} <= set(
        d["answer"]
    )
    assert d["answer"]["text"] == "Trần Ngọc Tam"
    assert set(d["results"][0]) == {
        "rank",
        "chunk_id",
        "doc_id",
        "title",
        "source",
        "url",
        "date",
        "text",
        "start",
        "end",
        "page",
        "score",
        "scores",
    }
    assert d["results"][0]["url"] is None  # a file, not a fetched page
    assert d["results"][0]["page"] is None and d["answer"]["page"] is None  # .txt has no pages
    assert d["results"][0]["date"] == "2023-04-19"
    assert d["timings_ms"]["total"] > 0


def test_bad_queries(real_searcher):
    with pytest.raises(BadQuery):
        real_searcher.search("   ")
    with pytest.raises(BadQuery):
        real_searcher.search("x" * 1001)


@pytest.fixture(scope="module")
def evaluated(real_searcher, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    questions = load_questions(ROOT / "eval" / "questions.jsonl")
    return questions, evaluate(real_searcher, questions, out=out), out


def test_question_set_meets_targets(evaluated):
    _, report, _ = evaluated
    hybrid = report["modes"]["hybrid"]
    # The ranker and the answer models are fitted on external data, not on this set; these floors
    # are the measured values (eval/RESULTS.md) less a margin: a regression check.
    assert hybrid["all"]["hit@1"] >= 0.88
    # (0.978 since builds embed with int8: one question fell to rank 6; held-out sets unchanged)
    assert hybrid["all"]["hit@5"] >= 0.97
    assert hybrid["all"]["mrr@10"] >= 0.92
    assert hybrid["answer_sentence_accuracy"] >= 0.86
    # the reader's span holds the gold figure (0.798 measured; issue 21's target 0.90 is not met)
    assert hybrid["answer_holds_gold"] >= 0.74 and hybrid["answer_f1"] >= 0.54
    assert hybrid["abstention"]["recall"] >= 0.75
    assert hybrid["abstention"]["answerable_wrongly_flagged"] <= 0.07
    # English questions are answered now that the models were fitted on some (2 of 10 still flagged)
    assert hybrid["by_kind"]["english"]["answerable_flagged"] <= 0.3
    assert hybrid["by_kind"]["direct"]["answerable_flagged"] == 0.0
    # hybrid beats each of its parts and both baselines
    for other in ("bm25-syllables", "bm25-words", "bm25", "dense"):
        assert hybrid["all"]["mrr@10"] > report["modes"][other]["all"]["mrr@10"], other
    assert hybrid["by_kind"]["accentless"]["hit@1"] >= 0.8


@pytest.mark.parametrize("mode", ["bm25-syllables", "bm25-words", "bm25", "dense", "hybrid"])
def test_metrics_agree_with_ir_measures(evaluated, mode):
    ir_measures = pytest.importorskip("ir_measures")
    questions, report, out = evaluated
    qrels = list(ir_measures.read_trec_qrels(str(out / "qrels.trec")))
    run = list(ir_measures.read_trec_run(str(out / run_file(mode))))
    answerable = {q.qid for q in questions if q.answerable}
    run = [r for r in run if r.query_id in answerable]
    measures = [ir_measures.RR @ 10, ir_measures.nDCG @ 10, ir_measures.R @ 10, ir_measures.Success @ 1]
    agg = ir_measures.calc_aggregate(measures, qrels, run)
    ours = report["modes"][mode]["all"]
    assert agg[ir_measures.RR @ 10] == pytest.approx(ours["mrr@10"], abs=1e-3)
    assert agg[ir_measures.nDCG @ 10] == pytest.approx(ours["ndcg@10"], abs=1e-3)
    assert agg[ir_measures.R @ 10] == pytest.approx(ours["recall@10"], abs=1e-3)
    assert agg[ir_measures.Success @ 1] == pytest.approx(ours["hit@1"], abs=1e-3)


def test_the_cli_loads_the_model_and_the_reader_while_the_index_opens(real_searcher, real_settings, tmp_path):
    import threading

    from de06qa.errors import IndexMissing
    from de06qa.loading import loading_ahead
    from de06qa.search import open_searcher

    def loading() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "de06qa-load"]

    real_searcher.search("khởi động")  # the model and the reader exported: loading ahead is for then
    with loading_ahead(real_settings) as (embedder, reader):
        searcher = open_searcher(real_settings, embedder, reader)
    assert not loading()  # joined on the way out
    assert embedder._state is not None and reader._state is not None  # loaded before any question
    assert searcher.search("Hà Giang có bao nhiêu dịch vụ công toàn trình?").answer.text.startswith("665")
    # An error meanwhile is raised as it is, and the loading thread is joined all the same
    with pytest.raises(IndexMissing), loading_ahead(real_settings) as (embedder, reader):
        open_searcher(real_settings.with_(index_dir=tmp_path / "none"), embedder, reader)
    assert not loading()
