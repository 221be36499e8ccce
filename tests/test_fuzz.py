"""Property tests (hypothesis): ingestion, normalisation, segmentation offsets and chunking hold
their invariants on arbitrary bytes and Unicode, not only on the seeds."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from de06qa.chunking import chunk_article
from de06qa.config import Settings
from de06qa.errors import NothingToIndex
from de06qa.formats import DecodeError, extract
from de06qa.formats.plain import decode
from de06qa.indexing import build_index
from de06qa.ingest import build_article
from de06qa.text import fold, nfc, normalise, sentences, unify_tones, words
from tests.documents_on_disk import write_corrupt_docx, write_docx, write_pdf, write_scanned_pdf

VIET = "aăâbcdđeêghiklmnoôơpqrstuưvxyáàảãạắằẳẵặấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ"
# Mostly Vietnamese-looking text (words, numbers, punctuation, line breaks), with any character
# of Unicode mixed in: decomposed marks, controls, emoji, surrogates-free astral planes.
vietnamese_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(VIET + VIET.upper()),
        st.sampled_from(" \n\t.,;:!?%/-()\"'0123456789"),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=600,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=3000))
def test_decode_gives_nfc_text_or_a_reason(data: bytes):
    try:
        text = decode(data)
    except DecodeError as e:
        assert str(e)
    else:
        assert unicodedata.is_normalized("NFC", text)


@FUZZ
@given(vietnamese_text)
def test_decode_round_trips_utf8_and_utf16(text: str):
    if not text.strip() or "\x00" in text:
        return
    assert decode(text.encode("utf-8")) == nfc(text)
    assert decode(text.encode("utf-16")) == nfc(text)


@FUZZ
@given(vietnamese_text)
def test_normalisation_keeps_length_so_offsets_carry_over(text: str):
    t = nfc(text)
    assert len(unify_tones(t)) == len(t)
    assert len(fold(t)) == len(t)
    assert normalise(normalise(t)) == normalise(t)


@FUZZ
@given(vietnamese_text)
def test_segmentation_offsets_point_into_the_text(text: str):
    t = nfc(text)
    last = 0
    for s in sentences(t):
        assert t[s.start : s.end] == s.text and s.start >= last and s.text.strip()
        last = s.end
    last = 0
    for w in words(t):
        assert t[w.start : w.end] == w.text and w.start >= last
        last = w.end


@FUZZ
@given(vietnamese_text, st.integers(min_value=40, max_value=600), st.integers(min_value=0, max_value=2))
def test_chunks_are_spans_of_the_article(text: str, chunk_chars: int, overlap: int):
    try:
        article = build_article("doc", "doc.txt", nfc(text))
    except DecodeError:
        return  # nothing but boilerplate or blank
    chunks = chunk_article(article, chunk_chars, overlap)
    assert [c.chunk_id for c in chunks] == [f"doc#{i}" for i in range(len(chunks))]
    covered = set()
    for c in chunks:
        assert article.text[c.start : c.end] == c.text and c.text.strip()
        for s in c.sentences:
            assert c.start <= s.start < s.end <= c.end and article.text[s.start : s.end] == s.text
            covered.add((s.start, s.end))
    # Every sentence of the article is in some chunk (long ones may be cut into pieces).
    for s in sentences(article.text):
        assert any(a <= s.start < b for a, b in covered) or not s.text.strip()


@pytest.fixture(scope="module")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("real")
    return {".pdf": write_pdf(root / "a.pdf").read_bytes(), ".docx": write_docx(root / "a.docx").read_bytes()}


@FUZZ
@given(st.sampled_from([".html", ".htm", ".pdf", ".docx", ".md"]), st.binary(max_size=2000))
def test_any_bytes_in_any_format_give_text_or_a_one_line_reason(suffix: str, data: bytes):
    try:
        ex = extract(suffix, data)
    except DecodeError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert ex.pages and all(isinstance(p, str) for p in ex.pages)


@FUZZ
@given(st.sampled_from([".pdf", ".docx"]), st.data())
def test_damaged_real_files_give_text_or_a_one_line_reason(real_files, suffix: str, data):  # type: ignore[no-untyped-def]
    """A real PDF or Word file with a stretch of its bytes overwritten or cut off."""
    good = real_files[suffix]
    at = data.draw(st.integers(0, len(good) - 1))
    junk = data.draw(st.binary(min_size=1, max_size=64))
    damaged = good[:at] + junk + good[at + len(junk) :] if data.draw(st.booleans()) else good[:at]
    try:
        extract(suffix, damaged)
    except DecodeError as e:
        assert str(e) and "\n" not in str(e)


@pytest.mark.parametrize("make", ["empty", "all-skipped"])
def test_nothing_indexable_is_a_clear_error_and_the_index_is_untouched(make, tmp_path, fake_embedder):
    settings = Settings(cache_dir=tmp_path / "cache", index_dir=tmp_path / "index")
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.txt").write_text("Hà Giang có 665 dịch vụ công toàn trình.", encoding="utf-8")
    build_index(settings, good, fake_embedder)

    def snapshot() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in sorted(settings.index_dir.rglob("*")) if p.is_file()}

    before = snapshot()
    src = tmp_path / "src"
    src.mkdir()
    if make == "all-skipped":
        write_scanned_pdf(src / "scan.pdf")
        write_corrupt_docx(src / "broken.docx")
    with pytest.raises(NothingToIndex) as e:
        build_index(settings, src, fake_embedder)
    msg = str(e.value)
    assert "\n" not in msg and "the index is unchanged" in msg
    if make == "empty":
        assert "has no article files (.txt, .md, .html, .htm, .pdf, .docx)" in msg
    else:
        assert "scan.pdf (no text layer (scanned?); OCR is not supported)" in msg and "broken.docx (" in msg
    assert snapshot() == before
