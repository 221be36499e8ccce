from hypothesis import given, settings
from hypothesis import strategies as st

from de06qa.chunking import chunk_article, chunk_articles
from de06qa.documents import Article
from de06qa.ingest import read_folder

from .conftest import SEEDS

SYLLABLES = [
    "Hà",
    "Giang",
    "có",
    "665",
    "dịch",
    "vụ",
    "công",
    "toàn",
    "trình",
    "đạt",
    "88,6%",
    "số",
    "hoá",
    "tỉnh",
    "Bến",
    "Tre",
    "1.818/1.876",
    "người",
    "dân",
    "“điểm",
    "nghẽn”",
]
SENTENCE = st.lists(st.sampled_from(SYLLABLES), min_size=1, max_size=40).map(lambda w: " ".join(w))
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=6).map(lambda s: ". ".join(s) + ".")
DOC = st.lists(PARAGRAPH, min_size=1, max_size=6).map("\n".join)


@settings(max_examples=40, deadline=None)
@given(DOC, st.integers(min_value=80, max_value=600), st.integers(min_value=0, max_value=2))
def test_chunk_offsets_point_into_the_document(text, size, overlap):
    art = Article("d", "d.txt", "t", text)
    chunks = chunk_article(art, size, overlap)
    assert chunks, "every non-empty document yields chunks"
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert all(text[s.start : s.end] == s.text for s in c.sentences)
        assert c.doc_id == "d"
    # every sentence unit is covered by some chunk
    covered = {(s.start, s.end) for c in chunks for s in c.sentences}
    assert max(e for _, e in covered) == chunks[-1].end


def test_seed_chunks_are_readable_stable_and_never_cross_articles():
    articles, _ = read_folder(SEEDS)
    first = chunk_articles(articles)
    again = chunk_articles(articles)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    texts = {a.doc_id: a.text for a in articles}
    for c in first:
        assert texts[c.doc_id][c.start : c.end] == c.text
        assert c.chunk_id.startswith(c.doc_id + "#")
    mean = sum(len(c.text) for c in first) / len(first)
    assert 200 < mean <= 600
    # no chunk is a strict subset of its predecessor (useless overlap)
    for a, b in zip(first, first[1:]):
        if a.doc_id == b.doc_id:
            assert b.end > a.end
    assert any("hà_giang" in c.words for c in first)
