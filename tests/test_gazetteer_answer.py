import pytest

from de06qa.gazetteer import MERGED_2025, NEW_NAME, PROVINCES, covered_by, find_provinces
from de06qa.locate import locate
from de06qa.query import question_kind


def test_gazetteer_has_63_old_and_34_new_provinces():
    assert len(PROVINCES) == 63 and len(MERGED_2025) == 34
    assert NEW_NAME["Hà Giang"] == "Tuyên Quang" and NEW_NAME["Bến Tre"] == "Vĩnh Long"
    assert covered_by("Tuyên Quang") == {"Tuyên Quang", "Hà Giang"}


def test_find_provinces_with_and_without_diacritics():
    assert find_provinces("ha giang co bao nhieu") == ["Hà Giang"]
    assert find_provinces("Thanh Hoá và TP.HCM, Bà Rịa - Vũng Tàu") == [
        "Thanh Hóa",
        "Hồ Chí Minh",
        "Bà Rịa - Vũng Tàu",
    ]
    assert find_provinces("Đề án 06 của Chính phủ") == []


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Hà Giang có bao nhiêu dịch vụ công toàn trình?", "count"),
        ("Tỷ lệ dịch vụ công toàn trình của Hà Giang?", "percent"),
        ("Thái Nguyên đứng thứ mấy?", "rank"),
        ("Tiết kiệm được bao nhiêu tiền?", "money"),
        ("Chủ tịch UBND tỉnh là ai?", "person"),
        ("Hoàn thành khi nào?", "date"),
        ("How many accounts?", "count"),
        ("Who is the chairman?", "person"),
    ],
)
def test_question_kind(question, kind):
    assert question_kind(question) == kind


@pytest.mark.parametrize(
    ("sentence", "question", "answer"),
    [
        (
            "Trong đó có 665 dịch vụ công toàn trình, đạt tỷ lệ 88,6% theo chỉ tiêu.",
            "Có bao nhiêu dịch vụ công toàn trình?",
            "665",
        ),
        (
            "Trong đó có 665 dịch vụ công toàn trình, đạt tỷ lệ 88,6% theo chỉ tiêu.",
            "Tỷ lệ dịch vụ công toàn trình?",
            "88,6%",
        ),
        ("Tỉnh đạt tỷ lệ 96,9%. Có 1.818/1.876 thủ tục.", "Bao nhiêu thủ tục?", "1.818/1.876"),
        ("Doanh thu kinh tế số 26 tỷ USD.", "Doanh thu kinh tế số là bao nhiêu?", "26 tỷ USD"),
        (
            "Với kết quả đó, Chủ tịch UBND tỉnh Nguyễn Văn Sơn nêu rõ.",
            "Chủ tịch UBND tỉnh là ai?",
            "Nguyễn Văn Sơn",
        ),
        ("Ngày 13/6/2023, tỉnh về đích sớm hơn 48 ngày.", "Tỉnh về đích khi nào?", "13/6/2023"),
        ("Năm 2022, tỉnh đứng thứ 8/63 tỉnh, thành.", "Đứng thứ mấy?", "8/63"),
    ],
)
def test_locate_picks_the_span_of_the_wanted_kind(sentence, question, answer):
    span = locate(sentence, question, question_kind(question))
    assert span is not None and sentence[span[0] : span[1]] == answer


def test_no_candidate_of_the_kind_gives_none():
    assert locate("Không có con số nào ở đây.", "Bao nhiêu?", "count") is None


def test_a_comparative_question_is_told_from_a_superlative_word_alone():
    from de06qa.query import comparative

    assert comparative("Tỉnh nào có nhiều dịch vụ công trực tuyến toàn trình nhất?")
    assert comparative("So sánh số tài khoản định danh điện tử giữa các tỉnh")
    assert comparative("tinh nao co it ho so truc tuyen nhat")
    assert not comparative("Hà Giang thống nhất triển khai Đề án 06 như thế nào?")
    assert not comparative("Đây có phải là cơ sở dữ liệu duy nhất?")
