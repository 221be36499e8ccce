"""Vietnamese figures and their dates: parsing is pure text, no model."""

from __future__ import annotations

import pytest

from de06qa.figures import as_of, dates_in, figure_at, parse_number


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("412.530", 412530),  # dots group thousands
        ("1.306.180", 1306180),
        ("88,6", 88.6),  # the comma is the decimal mark
        ("1,5", 1.5),
        ("120,7", 120.7),
        ("1.000,5", 1000.5),
        ("1,234,567", 1234567),  # English grouping, unambiguous
        ("1.5", 1.5),  # one short group: a decimal point
        ("665", 665),
    ],
)
def test_numbers_in_vietnamese_notation(text: str, number: float) -> None:
    assert parse_number(text) == pytest.approx(number)


def test_a_non_number_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_number("12a")


@pytest.mark.parametrize(
    ("sentence", "digits", "value", "number", "unit", "kind", "qualifier", "total", "upper"),
    [
        (
            "Trong đó có 665 dịch vụ công toàn trình, đạt",
            "665",
            "665",
            665,
            "dịch vụ công",
            "count",
            None,
            None,
            None,
        ),
        (
            "với hơn 1,5 triệu thẻ, 958.367 tài khoản",
            "1,5",
            "hơn 1,5 triệu",
            1_500_000,
            "thẻ",
            "count",
            "hơn",
            None,
            None,
        ),
        ("đạt tỷ lệ 88,6% theo chỉ tiêu", "88,6", "88,6%", 88.6, "%", "percent", None, None, None),
        (
            "đối với 1.818/1.876 thủ tục hành chính",
            "1.818/1.876",
            "1.818/1.876",
            1818,
            "thủ tục hành",
            "fraction",
            None,
            1876,
            None,
        ),
        ("Bến Tre xếp thứ 8/63 tỉnh", "8/63", "8/63", 8, "tỉnh", "rank", None, 63, None),
        ("tiết kiệm gần 15 tỷ đồng.", "15", "gần 15 tỷ", 15e9, "đồng", "money", "gần", None, None),
        ("giải quyết trong 10 - 15 ngày", "10", "10 - 15", 10, "ngày", "count", None, None, 15),
        ("khoảng 2 nghìn tỷ đồng", "2", "khoảng 2 nghìn tỷ", 2e12, "đồng", "money", "khoảng", None, None),
        ("thu hút trên 3.500 đại biểu", "3.500", "trên 3.500", 3500, "đại biểu", "count", "trên", None, None),
    ],
)
def test_a_figure_is_read_with_its_qualifier_scale_and_unit(
    sentence, digits, value, number, unit, kind, qualifier, total, upper
) -> None:
    i = sentence.index(digits)
    f = figure_at(sentence, i, i + len(digits))
    assert f is not None
    assert (f.value, f.unit, f.kind, f.qualifier, f.total, f.upper) == (
        value,
        unit,
        kind,
        qualifier,
        total,
        upper,
    )
    assert f.number == pytest.approx(number)
    assert sentence[f.start : f.end] == value  # the offsets cite exactly what is shown


def test_no_figure_without_digits() -> None:
    assert figure_at("không có số nào", 0, 5) is None


@pytest.mark.parametrize(
    ("sentence", "earlier", "article", "expected"),
    [
        ("Tính đến ngày 30/11/2023, tỉnh có 100 tài khoản.", [], "2024-01-05", ("2023-11-30", "sentence")),
        ("Năm 2022, tỉnh đã cung cấp 23/25 dịch vụ.", [], "2023-04-19", ("2022", "sentence")),
        ("Đến hết tháng 7/2024, có 1.024 dịch vụ.", [], "2024-08-20", ("2024-07", "sentence")),
        ("Tính đến tháng 6, tỉnh có 100 tài khoản.", [], "2023-09-01", ("2023-06", "sentence")),
        ("Tính đến tháng 6, tỉnh có 100 tài khoản.", [], "2023-04-19", ("2022-06", "sentence")),  # last June
        ("Trong quý II/2024, tỉnh có 100 tài khoản.", [], "2024-08-01", ("2024-06", "sentence")),
        # a document's issuing date is not when the figure holds; the previous sentence's cue is
        (
            "Trong đó có 665 dịch vụ công toàn trình theo Nghị quyết số 01/NQ-CP ngày 06/01/2023.",
            ["Nổi bật đến thời điểm ngày 03/12/2023, tỉnh đã hoàn thành 1.818/1.876 thủ tục."],
            "2024-01-10",
            ("2023-12-03", "paragraph"),
        ),
        # a baseline, a plan's horizon and a target later than the article are not as-of dates
        ("Số hồ sơ năm nay tăng 38% so với cuối năm 2022.", [], "2024-06-03", ("2024-06-03", "article")),
        ("Phấn đấu đến năm 2025 có 100 tài khoản.", [], "2023-04-19", ("2023-04-19", "article")),
        ("Giai đoạn 2021 - 2025, tỉnh có 100 tài khoản.", [], "2023-04-19", ("2023-04-19", "article")),
        ("Hiện nay tỉnh có 100 tài khoản.", [], "2023-04-19", ("2023-04-19", "article")),
        ("Tỉnh có 100 tài khoản.", [], None, (None, "none")),
    ],
)
def test_the_date_a_figure_holds_for(sentence, earlier, article, expected) -> None:
    assert as_of(sentence, len(sentence) // 2, earlier, article) == expected


def test_an_impossible_date_is_ignored() -> None:
    assert dates_in("ngày 31/2/2024 và năm 2023", None)[0].when == "2023"
