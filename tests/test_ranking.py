"""Question analysis, the candidate seam, the learned ranker and the answer span (fake embedder)."""

import numpy as np
import pytest

from de06qa import store
from de06qa.filters import parse_filters
from de06qa.locate import locate
from de06qa.query import analyse
from de06qa.ranking import CONFIDENCE_FEATURES, RANK_FEATURES, load_models, rank_features
from de06qa.search import Searcher
from de06qa.search.passages import top_passages
from de06qa.search.retrieval import CANDIDATES, rank

from .conftest import ROOT, FakeEmbedder, FakeReader


@pytest.fixture(scope="module")
def searcher(fake_index):
    return Searcher.open(fake_index, FakeEmbedder(), reader=FakeReader())


def test_query_is_analysed_once_into_every_form():
    q = analyse("Hà Giang có bao nhiêu dịch vụ công toàn trình?", np.ones(4, np.float32))
    assert q.folded.startswith("ha giang co bao nhieu")
    assert "dịch_vụ" in q.words and "ha_giang" in q.folded_terms
    assert "ha" in q.terms and "bao" not in q.terms  # question words carry no topic
    assert q.kind == "count" and q.accented
    assert q.provinces == {"Hà Giang"}
    assert analyse("Tuyên Quang có bao nhiêu?").provinces == {"Tuyên Quang", "Hà Giang"}
    assert not analyse("ha giang co bao nhieu").accented


def test_candidates_are_the_union_of_lexical_and_dense_tops_with_raw_scores(searcher):
    q = searcher.analyse(["Hà Giang có bao nhiêu dịch vụ công toàn trình?"])[0]
    c = searcher.backend.candidates(q, 5)
    lex = searcher.backend.data.lexical.scores(
        "folded", list(q.folded_terms)
    ) + searcher.backend.data.lexical.scores("words", list(q.words))
    top_lex = set(np.argsort(-lex)[:5].tolist())
    top_dense = {r for r, _ in searcher.backend.data.dense.search(q.vector[None, :], 5)[0]}
    assert set(c.rows.tolist()) == top_lex | top_dense
    i = int(np.argmax(c.bm25_words + c.bm25_folded))
    assert c.bm25_words[i] + c.bm25_folded[i] == pytest.approx(lex.max())
    vecs = searcher.backend.data.dense.vectors()[c.rows]
    assert np.allclose(c.dense, vecs @ q.vector, atol=1e-5)


def test_filtered_candidates_are_the_tops_among_the_matching_articles_only(searcher):
    q = searcher.analyse(["Hà Giang có bao nhiêu dịch vụ công toàn trình?"])[0]
    f = parse_filters(["Bến Tre"])
    allowed = np.array(
        [
            i
            for i, c in enumerate(searcher.backend.data.chunks)
            if f.matches(searcher.backend.data.articles[c.doc_id])
        ]
    )
    assert 5 < len(allowed) < len(searcher.backend.data.chunks)
    c = searcher.backend.candidates(q, 5, f)
    lex = searcher.backend.data.lexical.scores(
        "folded", list(q.folded_terms)
    ) + searcher.backend.data.lexical.scores("words", list(q.words))
    top_lex = allowed[np.argsort(-lex[allowed], kind="stable")[:5]]
    cos = searcher.backend.data.dense.vectors()[allowed] @ q.vector
    top_dense = allowed[np.argsort(-cos)[:5]]
    assert set(c.rows.tolist()) == set(top_lex.tolist()) | set(top_dense.tolist())
    assert set(c.rows.tolist()) <= set(allowed.tolist())


def test_only_candidates_are_scored(searcher):
    r = rank(searcher.backend, searcher.models.ranker, searcher.analyse(["dịch vụ công trực tuyến"])[0])
    assert len(r.candidates) <= 2 * CANDIDATES
    assert r.features.shape == (len(r.candidates), len(RANK_FEATURES)) and np.isfinite(r.features).all()
    assert len(r.logits) == len(r.candidates)


def test_features_are_bounded_and_province_agreement_is_seen(searcher):
    q = searcher.analyse(["Hà Giang có bao nhiêu dịch vụ công toàn trình?"])[0]
    c = searcher.backend.candidates(q, 20)
    x = rank_features(q, c, c.view, searcher.backend.idf(q.terms))
    col = {f: i for i, f in enumerate(RANK_FEATURES)}
    for name in ("bm25_words_rel", "bm25_folded_rel", "idf_cover", "bigram_cover", "title_cover", "position"):
        assert (x[:, col[name]] >= 0).all() and (x[:, col[name]] <= 1 + 1e-6).all(), name
    docs = [searcher.backend.data.chunks[r].doc_id for r in c.rows.tolist()]
    match = x[:, col["province_match"]]
    assert all(m == (d == "002_956fdc6dbb6455d8") for m, d in zip(match, docs))


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_no_two_results_share_text(searcher, mode):
    res = searcher.search("dịch vụ công trực tuyến toàn trình", k=10, mode=mode)
    ps = res.passages
    assert len(ps) == 10
    for i, a in enumerate(ps):
        for b in ps[i + 1 :]:
            assert (
                a.chunk.doc_id != b.chunk.doc_id
                or a.chunk.end <= b.chunk.start
                or b.chunk.end <= a.chunk.start
            )
    assert [p.rank for p in ps] == list(range(1, 11))
    assert all(x.score >= y.score for x, y in zip(ps, ps[1:]))


def test_packaged_models_load_and_are_named_in_the_manifest(fake_index):
    models = load_models()
    assert models.version.startswith("ranker-")
    assert models.ranker.features == RANK_FEATURES and 0 < models.threshold < 1
    x = np.zeros((3, len(RANK_FEATURES)), np.float32)
    x[0, RANK_FEATURES.index("sentence_idf_cover")] = 1.0  # the question's words all in one sentence
    assert models.ranker.logits(x).shape == (3,)
    assert store.read_manifest(fake_index.index_dir)["ranker"] == models.version
    # the confidence reads the answer path's features and gives a probability, higher with stronger evidence
    assert models.confidence.features == CONFIDENCE_FEATURES
    weak = np.zeros((1, len(CONFIDENCE_FEATURES)), np.float32)
    strong = np.ones((1, len(CONFIDENCE_FEATURES)), np.float32)
    for f, v in {
        "province_unknown": 0.0,
        "province_mismatch": 0.0,
        "passage_margin": 3.0,
        "bm25_top": 3.0,
    }.items():
        strong[0, CONFIDENCE_FEATURES.index(f)] = v
    low, high = float(models.confidence.proba(weak)[0]), float(models.confidence.proba(strong)[0])
    assert 0.0 <= low < models.threshold <= high <= 1.0


def test_span_never_repeats_a_number_the_question_gives():
    sentence = "Cao Bằng đã kích hoạt 120.345 tài khoản định danh điện tử mức độ 2, đạt 85%."
    q = "Cao Bằng đã kích hoạt bao nhiêu tài khoản định danh điện tử mức độ 2?"
    a, b = locate(sentence, q, "count")
    assert sentence[a:b] == "120.345"
    assert locate("Tài khoản mức độ 2 được cấp.", q, "count") is None


class _Spy(FakeReader):
    """The fake reader, recording what the answer path gives it."""

    def __init__(self) -> None:
        super().__init__()
        self.read_calls: list = []

    def read(self, items):  # type: ignore[no-untyped-def]
        self.read_calls.append(items)
        return super().read(items)


def test_the_answer_is_the_readers_span_in_the_sentence_it_finds_likeliest(fake_index):
    """The selector's first READ_SENTENCES sentences go to the reader one by one, as article
    offsets, until none unread can win; the answer is the reader's span (here the fake reader's
    first number) in the sentence whose selector x reader probability is highest: the same one
    reading every sentence gives, and for some questions after fewer reads."""
    from de06qa.evaluation import load_questions
    from de06qa.ranking import sigmoid
    from de06qa.reader import Text
    from de06qa.search import READ_SENTENCES

    spy = _Spy()
    s = Searcher.open(fake_index, FakeEmbedder(), reader=spy)
    questions = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl")][:30]
    fewer = 0
    for q in questions:
        spy.read_calls.clear()
        query = s.analyse([q])[0]
        r = rank(s.backend, s.models.ranker, query)
        passages = top_passages(r, r.logits, r.candidates.lexical, 5, 2 * s.settings.chunk_chars)
        got = s.answerer.read(r, passages)
        cands, x = s.answerer.sentences(r, passages)
        probs = s.models.sentence.proba(x)
        order = [int(i) for i in np.argsort(-probs, kind="stable")[:READ_SENTENCES] if probs[i] > 0]
        texts = [Text(cands[i][0].text, cands[i][0].start) for i in order]
        [every] = FakeReader().read([(query.marked, texts)])  # the question as read: marks restored
        products = [float(probs[i]) * (float(sigmoid(f.answers)) if f else 0.0) for i, f in zip(order, every)]
        assert all(len(call) == 1 and len(call[0][1]) == 1 for call in spy.read_calls)
        read = [call[0][1][0] for call in spy.read_calls]
        k = len(read)
        assert k >= 1 and read == texts[:k] and all(call[0][0] == query.marked for call in spy.read_calls)
        assert all(max(products[:j]) < probs[order[j]] for j in range(1, k)), "stopped late"
        assert k == len(texts) or max(products[:k]) >= probs[order[k]], "stopped early"
        fewer += k < len(texts)
        assert got is not None
        a, features = got
        pick = int(np.argmax(products))
        assert features.shape == (1, len(CONFIDENCE_FEATURES))
        assert (a.sentence_start, a.start, a.end) == (texts[pick].offset, every[pick].start, every[pick].end)
        doc = s.document(a.doc_id).text
        assert doc[a.start : a.end] == a.text and doc[a.sentence_start : a.sentence_end] == a.sentence
    assert fewer > 0


def test_reader_weights_are_stored_as_int8_rows_and_load_back_close(tmp_path):
    torch = pytest.importorskip("torch")
    from de06qa.reader.model import ReaderTop, save_top, tuned_state

    torch.manual_seed(0)
    top = ReaderTop([torch.nn.Linear(64, 64)], 64)
    save_top(top, tmp_path / "r.safetensors", {"version": "test"})
    got = tuned_state(tmp_path / "r.safetensors")
    assert set(got) == set(top.state_dict())
    for k, v in top.state_dict().items():
        tol = v.abs().amax(dim=-1, keepdim=True) / 127 if v.dim() == 2 else v.abs() * 1e-3 + 1e-4
        assert (got[k] - v).abs().le(tol).all(), k


def test_agreement_features_read_from_stored_term_sets_match_the_text(searcher, fake_index):
    """The term sets a build stores (and those computed for an index without them) give each
    candidate exactly the agreement its text has with the question: idf-weighted terms and pairs
    over the chunk, its best sentence, its title and its article's candidate chunks together, and
    whether it holds an answer of the kind asked."""
    from de06qa.backends.embedded import EmbeddedBackend
    from de06qa.locate import has_candidate
    from de06qa.ranking import query_bigrams
    from de06qa.termsets import terms_of

    data = searcher.backend.data
    assert data.term_sets is not None  # stored by the build
    computed = EmbeddedBackend(
        store.IndexData(*[getattr(data, f) for f in ("manifest", "articles", "chunks", "sentences",
                                                     "sentence_docs", "sentence_vectors", "dense", "lexical")]),
        fake_index.index_dir,
    )  # fmt: skip
    col = {f: RANK_FEATURES.index(f) for f in RANK_FEATURES}
    seen: dict[str, float] = {}
    gain = 0.0  # the most an article's other candidate chunks add to a chunk's own agreement
    for question in ("Hà Giang có bao nhiêu dịch vụ công toàn trình?", "Khi nào Bến Tre cấp căn cước gắn chip?",
                     "tỷ lệ hồ sơ trực tuyến đạt bao nhiêu phần trăm"):  # fmt: skip
        q = searcher.analyse([question])[0]
        c = searcher.backend.candidates(q, 30)
        idf = searcher.backend.idf(q.terms)
        weight = {t: sum(idf.get(t, 0.0) for u in q.terms if u == t) for t in q.terms}
        total = sum(weight.values()) or 1.0
        pairs = query_bigrams(q)
        by_article: dict[str, list[int]] = {}
        for row in c.rows.tolist():
            by_article.setdefault(data.chunks[row].doc_id, []).append(row)
        for backend in (searcher.backend, computed):
            x = rank_features(q, c, backend.view, idf)
            for i, row in enumerate(c.rows.tolist()):
                chunk = data.chunks[row]
                title = set(weight) & backend.view.doc_title_terms[backend.view.chunk_doc[row]]
                have = set(chunk.folded)
                # the article's candidate chunks together
                siblings = by_article[chunk.doc_id]
                article = set().union(*(data.chunks[r].folded for r in siblings)) & set(weight) | title
                sentences = [terms_of(s.text) for s in chunk.sentences]
                expect = {
                    "idf_cover": sum(weight[t] for t in (set(weight) & have) | title) / total,
                    "title_cover": sum(weight[t] for t in title) / total,
                    "bigram_cover": sum(t in have for t in pairs) / (len(pairs) or 1),
                    "sentence_idf_cover": max(
                        [sum(weight[t] for t in (set(weight) & syl) | title) / total for syl, _ in sentences],
                        default=0,
                    ),
                    "sentence_bigram_cover": max(
                        [sum(t in p for t in pairs) / (len(pairs) or 1) for _, p in sentences], default=0
                    ),
                    "has_kind": float(has_candidate(chunk.text, q.kind)),
                    "article_cover": sum(weight[t] for t in article) / total,
                    "article_candidates": np.log1p(len(siblings)),
                    "crowd": np.log1p(len(by_article)),
                }
                for name, value in expect.items():
                    assert x[i, col[name]] == pytest.approx(value, abs=1e-6), (question, row, name)
                    seen[name] = max(seen.get(name, 0.0), value)
                gain = max(gain, expect["article_cover"] - expect["idf_cover"])
    assert all(v > 0 for v in seen.values()) and len(seen) == 9  # every feature was seen non-zero
    assert gain > 0


def test_kinds_present_is_has_candidate_for_every_kind(searcher):
    """What a build stores per chunk (each pattern run once) is what the question-time check says."""
    from de06qa.locate import KIND_PATTERNS, has_candidate, kinds_present

    texts = [c.text for c in searcher.backend.data.chunks] + [
        "Ông Nguyễn Văn An cho biết năm 2023 tỉnh có 1.214 dịch vụ, đạt 85%, xếp thứ 3, chi 2 tỷ đồng trong 6 tháng.",
        "Không có con số nào ở đây.",
    ]
    seen = set()
    for text in texts:
        present = kinds_present(text)
        assert present == {k for k in KIND_PATTERNS if has_candidate(text, k)}, text
        seen |= present
    assert seen == set(KIND_PATTERNS)  # every kind was present somewhere
