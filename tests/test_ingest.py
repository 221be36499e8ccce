import codecs
import unicodedata
from pathlib import Path

import pytest

from de06qa.errors import SourceNotFound
from de06qa.formats import DecodeError
from de06qa.formats.plain import decode
from de06qa.ingest import lead_title, read_folder

from .conftest import SEEDS

TEXT = "Hà Giang có 665 dịch vụ công toàn trình, số hoá đạt 88,6%."


@pytest.mark.parametrize(
    "data",
    [
        TEXT.encode("utf-8"),
        codecs.BOM_UTF8 + TEXT.encode("utf-8"),
        TEXT.encode("utf-16"),  # with BOM
        unicodedata.normalize("NFD", TEXT).encode("utf-8"),
    ],
    ids=["utf8", "utf8-bom", "utf16-bom", "utf8-nfd"],
)
def test_decodes_to_nfc(data):
    assert decode(data) == unicodedata.normalize("NFC", TEXT)


def _cp1258(text: str) -> bytes:
    """Encode the way legacy Vietnamese Windows files are: base letters (â, ơ, đ…) precomposed,
    tone marks as separate combining characters."""
    tones = "\u0300\u0301\u0303\u0309\u0323"
    out = []
    for ch in text:
        d = unicodedata.normalize("NFD", ch)
        base = unicodedata.normalize("NFC", "".join(c for c in d if c not in tones))
        out.append(base + "".join(c for c in d if c in tones))
    return "".join(out).encode("cp1258")


def test_decodes_cp1258_with_decomposed_tones():
    data = _cp1258(TEXT)
    assert b"\xcc" in data or b"\xec" in data  # combining tone bytes really are there
    assert decode(data) == unicodedata.normalize("NFC", TEXT)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"  \n ", "empty"),
        (b"\x00\x01\x02PNG\x00", "binary"),
        (b"\x81\x8d\x8f\x90" * 10, "not UTF-8"),
    ],
)
def test_unusable_bytes_are_refused_with_a_reason(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(data)


def test_folder_skips_bad_files_and_keeps_good_ones(tmp_path: Path):
    (tmp_path / "good.txt").write_text("Bến Tre: tin mới\nBến Tre có 157 xã kết nối.", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blob.txt").write_bytes(b"\x00\xff\x00binary")
    (tmp_path / "menu.txt").write_text("Xem với cỡ chữ\nNhững tin mới hơn\nfacebook", encoding="utf-8")
    articles, skipped = read_folder(tmp_path)
    assert [a.doc_id for a in articles] == ["good"]
    assert {Path(s.path).name: s.reason for s in skipped} == {
        "blob.txt": "binary file (NUL bytes), not text",
        "empty.txt": "empty file",
        "menu.txt": "no article text (only boilerplate)",
    }


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SourceNotFound, match="does not exist"):
        read_folder(tmp_path / "nope")


@pytest.fixture(scope="module")
def seeds():
    articles, skipped = read_folder(SEEDS)
    assert skipped == []
    return {a.doc_id[:3]: a for a in articles}


def test_boilerplate_dropped_per_seed(seeds):
    assert seeds["000"].dropped_lines == ()
    assert seeds["001"].dropped_lines == (
        "Thứ sáu, ngày 22/11/2024",
        "Thứ Hai 03/06/2024 14:26",
        "Xem với cỡ chữ",
        "nm_2021_hi_dng_phn_u_xay_dng_it_nht_1_sn_phm_ocop_t_5_sao_20_sn_phm_t_4_sao_va_30_sn_phm_t_3_sao.jpg",
        "CÁC BÀI VIẾT KHÁC:",
        "VPTU",
    )
    assert seeds["002"].dropped_lines == ("Minh Yến",)
    assert seeds["003"].dropped_lines == ("Thông tin bạn đọc", "Đóng Lưu thông tin")
    d4 = seeds["004"].dropped_lines
    assert d4[:3] == (
        "Thứ tư - 19/04/2023 09:47",
        "Bến Tre: Thực hiện đồng bộ Đề án 06 gắn với 3 trụ cột chính của chuyển đổi số - Ảnh 1.",
        "Tác giả: baochinhphu.vn",
    )
    assert "Ý kiến bạn đọc" in d4 and "Những tin mới hơn" in d4 and "• Tổng lượt truy cập25,455,581" in d4
    assert d4[-1].startswith("Bạn đã không sử dụng Site")


def test_article_sentences_survive_cleaning(seeds):
    assert "Trong đó có 665 dịch vụ công toàn trình" in seeds["002"].text
    assert "Khai trương giải pháp ký số từ xa" in seeds["003"].text and " |" not in seeds["003"].text
    assert "Tỉnh cũng đã hoàn thành kết nối" in seeds["004"].text
    assert "Những tin" not in seeds["004"].text and "Xem với cỡ chữ" not in seeds["001"].text


def test_titles_dates_provinces(seeds):
    assert seeds["000"].title.startswith("Thái Bình: Phấn đấu tỷ lệ")
    assert seeds["001"].title.startswith("Hải Dương: Một số kết quả chuyển đổi số")
    assert seeds["002"].title == "Hà Giang: Sớm đạt kết quả rõ nét"
    # no headline: a title from the lead's subject (README: "Readable titles")
    assert (
        seeds["003"].title
        == "Thái Nguyên: Nghị quyết số 01-NQ/TU về Chương trình chuyển đổi số của tỉnh giai đoạn 2020-2025"
    )
    assert (
        seeds["004"].title == "Bến Tre: Thực hiện đồng bộ Đề án 06 gắn với 3 trụ cột chính của chuyển đổi số"
    )
    assert [seeds[k].date for k in sorted(seeds)] == [None, "2024-06-03", None, None, "2023-04-19"]
    assert [seeds[k].provinces for k in sorted(seeds)] == [
        ("Thái Bình",),
        ("Hải Dương",),
        ("Hà Giang",),
        ("Thái Nguyên",),
        ("Bến Tre",),
    ]
    assert seeds["002"].provinces_2025 == ("Tuyên Quang",)
    assert seeds["004"].provinces_2025 == ("Vĩnh Long",)


def test_seeds_are_a_byte_copy_of_shared():
    shared = SEEDS.parent.parent / "shared" / "seeds"
    if not shared.is_dir():
        pytest.skip("../shared/seeds not present in this checkout")
    for f in shared.iterdir():
        assert (SEEDS / f.name).read_bytes() == f.read_bytes()


@pytest.mark.parametrize(
    ("lead", "title"),
    [
        (
            "Kế hoạch số 25/KH-UBND ngày 12/3/2024 của UBND tỉnh Cao Bằng về triển khai Đề án 06 năm 2024, "
            "đã được các sở, ngành thực hiện nghiêm túc và đạt nhiều kết quả quan trọng trong quý đầu năm.",
            "Kế hoạch số 25/KH-UBND về triển khai Đề án 06 năm 2024",
        ),
        (
            "Sáng nay, tại Hà Nội, Bộ Công an tổ chức hội nghị sơ kết việc triển khai thực hiện Đề án 06 trên "
            "phạm vi toàn quốc trong 6 tháng đầu năm với sự tham dự của đại diện 63 tỉnh, thành phố trực thuộc Trung ương.",
            "Sáng nay, tại Hà Nội, Bộ Công an tổ chức hội nghị sơ kết việc triển khai thực hiện Đề án…",
        ),
    ],
)
def test_a_lead_without_headline_gets_a_title_a_reader_recognises(lead: str, title: str):
    assert lead_title(lead) == title
