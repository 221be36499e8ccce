import json
from pathlib import Path

import numpy as np
import pytest

from de06qa import store
from de06qa.config import Settings
from de06qa.dense import DenseIndex
from de06qa.embedding import model_info
from de06qa.errors import IndexDamaged, IndexIncompatible, IndexMissing
from de06qa.indexing import build_index
from de06qa.search import Searcher


def _unit(n, d, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_flat_search_drops_minus_one_when_k_exceeds_size(tmp_path: Path):
    vecs = _unit(3, 8)
    idx = DenseIndex.build(vecs)
    hits = idx.search(vecs[:1], k=10)[0]
    assert len(hits) == 3 and hits[0][0] == 0 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    idx.save(tmp_path)
    assert DenseIndex.load(tmp_path).search(vecs[1:2], 1)[0][0][0] == 1


def test_hnsw_agrees_with_flat_on_top_hit():
    vecs = _unit(500, 32, seed=1)
    flat, hnsw = DenseIndex.build(vecs), DenseIndex.build(vecs, "hnsw")
    q = vecs[:20]
    assert [r[0][0] for r in flat.search(q, 1)] == [r[0][0] for r in hnsw.search(q, 1)]


def test_index_roundtrip_and_refusals(tmp_path: Path, seeds_copy: Path, fake_embedder):
    settings = Settings(index_dir=tmp_path / "idx", cache_dir=tmp_path / "cache")
    summary = build_index(settings, seeds_copy, fake_embedder)
    assert (summary.documents, summary.skipped) == (5, ())
    manifest = json.loads((settings.index_dir / "manifest.json").read_text())
    assert manifest["model"]["model"] == "fake/hash-64" and len(manifest["documents"]) == 5
    assert all(len(d["content_hash"]) == 64 for d in manifest["documents"].values())
    data = store.load(settings.index_dir)
    assert len(data.chunks) == summary.chunks == data.dense.size

    with pytest.raises(IndexMissing, match="de06qa index"):
        store.load(tmp_path / "nowhere")
    other = store.ModelInfo("intfloat/multilingual-e5-small", "e5", 384, model_info(fake_embedder).segmenter)
    with pytest.raises(IndexIncompatible, match="rebuild"):
        store.check_model(data.manifest, other, str(settings.index_dir))
    (settings.index_dir / "vectors.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexDamaged, match="rebuild"):
        store.load(settings.index_dir)


def test_searcher_with_fake_embedder_finds_lexical_match(
    tmp_path: Path, seeds_copy: Path, fake_embedder, fake_reader
):
    settings = Settings(index_dir=tmp_path / "idx")
    build_index(settings, seeds_copy, fake_embedder)
    s = Searcher.open(settings, fake_embedder, reader=fake_reader)
    res = s.search("ha giang co bao nhieu dich vu cong toan trinh", k=20)
    assert res.passages[0].chunk.doc_id.startswith("002_")
    assert len(res.passages) == 20
    # The learned ranker puts a neighbouring chunk of the same article first with the fake
    # embedder; the chunk with the figure must still be among the first passages.
    assert any("665" in p.chunk.text for p in res.passages[:3])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("exact_below", [20_000, 10])
def test_filtered_search_only_returns_allowed_rows(kind: str, exact_below: int, monkeypatch):
    """Narrow filters are scored exactly; wide ones go through FAISS's ID selector."""
    import de06qa.dense as dense_mod

    monkeypatch.setattr(dense_mod, "EXACT_FILTERED", exact_below)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = DenseIndex.build(x, kind)
    allowed = np.arange(0, 500, 7)
    rows, scores = index.search_arrays(x[14][None, :], 5, allowed)
    assert set(rows.tolist()) <= set(allowed.tolist()) and rows[0] == 14
    best = allowed[np.argsort(-(x[allowed] @ x[14]))[:5]]
    assert rows.tolist() == best.tolist()
    assert np.allclose(scores, x[rows] @ x[14], atol=1e-5)
    assert len(index.search_arrays(x[0][None, :], 5, np.zeros(0, np.int64))[0]) == 0


def test_auto_is_exact_for_small_collections_and_hnsw_for_large(monkeypatch, tmp_path):
    import faiss

    import de06qa.dense as dense_mod

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert type(DenseIndex.build(x, "auto")._index) is faiss.IndexFlatIP
    monkeypatch.setattr(dense_mod, "HNSW_FROM", 200)
    big = DenseIndex.build(x, "auto")
    assert isinstance(big._index, faiss.IndexHNSWFlat)
    big.save(tmp_path)
    again = DenseIndex.load(tmp_path)
    assert again.search(x[:1], 3)[0][0][0] == 0 and again.size == 300


def test_rows_removed_from_an_hnsw_graph_are_dead_not_rebuilt(tmp_path: Path):
    """An incremental build keeps the graph and marks removed rows dead (while they are few):
    searches, filters, scores and the saved index see only the live rows, in their new order."""
    x = _unit(400, 16, seed=3)
    old = DenseIndex.build(x, "hnsw")
    graph = old._index
    keep = np.array([i for i in range(400) if i % 10], np.int64)[::-1]  # 360 rows, reordered
    new = old.keeping(keep, "hnsw", total=len(keep) + 20)
    assert new._index is graph  # 40 dead of 420: the graph is kept
    new.add(_unit(20, 16, seed=4))
    assert new.size == 380
    live = np.concatenate([x[keep], _unit(20, 16, seed=4)])
    assert np.allclose(new.vectors(), live)
    for q in (0, 9, 10, 200, 370):
        rows = [r for r, _ in new.search(live[q : q + 1], 5)[0]]
        assert rows[0] == q and all(0 <= r < 380 for r in rows)
    gone = x[10]  # a removed row is never found, even as its own nearest neighbour
    assert all(
        np.linalg.norm(live[r] - gone) > 1e-4 for r in new.search(gone[None, :], 20)[0] for r in [r[0]]
    )
    allowed = np.arange(0, 380, 3)
    got, _ = new.search_arrays(live[3], 5, allowed)
    assert got[0] == 3 and set(got) <= set(allowed)
    new.save(tmp_path)
    again = DenseIndex.load(tmp_path)
    assert again.size == 380 and np.allclose(again.score(live[7], np.array([7, 8])), live[[7, 8]] @ live[7])
    # Many removed: a new graph of the live vectors.
    rebuilt = DenseIndex.build(x, "hnsw").keeping(np.arange(100), "hnsw", total=100)
    assert rebuilt._ids is None and rebuilt.size == 100 and np.allclose(rebuilt.vectors(), x[:100])


@pytest.mark.parametrize("block", [2048, 64])  # counted in one block, and in several
def test_bm25_from_streamed_counts_scores_as_bm25s_does(block: int, monkeypatch):
    import bm25s

    from de06qa.lexical import FieldCounts, LexicalIndex

    monkeypatch.setattr(FieldCounts, "BLOCK", block)
    rng = np.random.default_rng(2)
    vocab = [f"t{i}" for i in range(60)]
    docs = [list(rng.choice(vocab, size=int(rng.integers(0, 30)))) for _ in range(200)]
    ours = LexicalIndex.build(docs, docs)
    theirs = bm25s.BM25()
    theirs.index([d or [""] for d in docs], show_progress=False)
    for q in (["t1"], ["t2", "t3", "t3"], ["t59", "nothing"]):
        known = [t for t in q if t in theirs.vocab_dict]
        assert np.allclose(ours.scores("words", q), theirs.get_scores(known), atol=1e-6)
    assert ours.idf("folded", ("t5",))["t5"] > 0
