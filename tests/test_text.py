import unicodedata
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from de06qa.text import (
    fold,
    folded_terms,
    has_diacritics,
    normalise,
    sentences,
    tagged_words,
    unify_tones,
    word_terms,
    words,
)


def test_tone_mark_placement_is_unified():
    assert unify_tones("số hoá") == unify_tones("số hóa") == "số hóa"
    assert unify_tones("Hoà") == unify_tones("Hòa") == "Hòa"
    assert unify_tones("thuỷ") == "thủy"
    # closed syllables and "qu" are not open-syllable oa/uy: left alone
    assert unify_tones("hoàn") == "hoàn"
    assert unify_tones("quý") == "quý"
    assert unify_tones("hoặc") == "hoặc"


def test_unify_tones_keeps_length_so_offsets_carry_over():
    text = "Hoà Bình số hoá, thuỷ lợi và khoẻ mạnh"
    assert len(unify_tones(text)) == len(text)


def test_nfd_input_matches_nfc():
    nfd = unicodedata.normalize("NFD", "Hà Giang số hoá")
    assert normalise(nfd) == normalise("Hà Giang số hóa")


def test_folding():
    assert fold("Đề án số hoá") == "De an so hoa"
    assert fold("dê") == fold("dế") == "de"
    assert has_diacritics("Hà Giang") and not has_diacritics("ha giang")


def test_segmentation_joins_words_and_keeps_offsets():
    text = "Tỉnh Hà Giang có 665 dịch vụ công toàn trình."
    spans = words(text)
    assert all(text[s.start : s.end] == s.text for s in spans)
    assert "hà_giang" in word_terms(spans) and "dịch_vụ" in word_terms(spans)
    assert "ha_giang" in folded_terms(text)


def test_sentences_never_cross_lines():
    text = "Sớm đạt kết quả rõ nét\nTổ công tác vừa họp. Hội nghị đánh giá cao."
    got = [s.text for s in sentences(text)]
    assert got == ["Sớm đạt kết quả rõ nét", "Tổ công tác vừa họp.", "Hội nghị đánh giá cao."]


VIET = st.text(
    alphabet=st.sampled_from(
        list("aăâeêioôơuưyđAĐHGàáảãạầấẩẫậèéẻẽẹềếểễệòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ0123456789 .,;:?!%/\n-“”")
    ),
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(VIET)
def test_token_and_sentence_offsets_point_into_the_text(text):
    for s in sentences(text):
        assert text[s.start : s.end] == s.text
    for w in words(text):
        assert text[w.start : w.end] == w.text


def test_segmenter_is_safe_on_first_concurrent_use():
    """underthesea loads its model on first use; a server's first requests arrive together."""
    import subprocess
    import sys

    code = (
        "import threading; from de06qa.text import words; errors = [];\n"
        "def go():\n"
        "    try: words('Hà Giang có bao nhiêu dịch vụ công toàn trình?')\n"
        "    except Exception as e: errors.append(repr(e))\n"
        "ts = [threading.Thread(target=go) for _ in range(8)]; [t.start() for t in ts]; [t.join() for t in ts];"
        "print(errors)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_tagged_words_are_the_words_with_their_tags():
    text = (
        "Tỉnh đã cung cấp 1.899 dịch vụ công, trong đó có 573 dịch vụ toàn trình.\nHà Giang có 665 dịch vụ."
    )
    got = tagged_words(text)
    assert [s for s, _ in got] == words(text)
    assert all(text[s.start : s.end] == s.text for s, _ in got)
    tags = {s.text: tag for s, tag in got}
    assert tags["dịch vụ"] == "N" and tags[","] == "CH" and tags["Hà Giang"] == "Np"


def test_the_word_segmenter_is_loaded_our_faster_way_and_segments_as_underthesea_loads_it():
    from underthesea.models.fast_crf_sequence_tagger import FastCRFSequenceTagger
    from underthesea.pipeline import word_tokenize as module

    from de06qa.text import WORD_MODEL, _segmenter

    _segmenter()
    ours = module.word_tokenize_model
    assert isinstance(ours, FastCRFSequenceTagger)  # set by text._word_model, not left to underthesea
    theirs = FastCRFSequenceTagger()
    theirs.load(str(Path(module.__file__).parent / "models" / WORD_MODEL))
    texts = [
        "Tỉnh Hà Giang có 665 dịch vụ công toàn trình, trong đó 120 dịch vụ một phần.",
        "Bác sĩ bây giờ có thể thản nhiên báo tin bệnh nhân bị ung thư",
        "Công an tỉnh Thái Bình đã cấp hơn 1,5 triệu thẻ căn cước công dân gắn chip điện tử.",
        "Người dân đăng ký tài khoản định danh điện tử mức độ 2 qua ứng dụng VNeID.",
    ]
    try:
        got = [module.word_tokenize(t) for t in texts]
        module.word_tokenize_model = theirs
        assert [module.word_tokenize(t) for t in texts] == got
    finally:
        module.word_tokenize_model = ours
    assert "Hà Giang" in got[0] and "dịch vụ" in got[0]
