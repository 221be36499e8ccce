"""A corpus written by the tests: provinces whose figures are reported several times, each report
with its own figure and date, the older reports worded at least as closely to the questions as the
newer ones (so that similarity alone would pick an old figure); one pair of reports disagreeing on
the figure for the same date; other provinces' reports around them.

`SERIES[(province, indicator)]` lists (as_of, figure as written), oldest first.
"""

from __future__ import annotations

from pathlib import Path

from tests import province_corpus

ACCOUNTS = "tài khoản định danh điện tử"
SERVICES = "dịch vụ công trực tuyến toàn trình"

# (file, province, published, paragraphs)
ARTICLES: list[tuple[str, str, str, list[str]]] = [
    (
        "lao-cai-2023-03",
        "Lào Cai",
        "Thứ sáu - 17/03/2023 08:00",
        [
            "Tính đến ngày 15/3/2023, tỉnh Lào Cai đã kích hoạt 180.512 tài khoản định danh điện tử cho người dân trên địa bàn tỉnh Lào Cai.",
            "Công an tỉnh Lào Cai tiếp tục đẩy mạnh việc hướng dẫn người dân kích hoạt tài khoản định danh điện tử và sử dụng ứng dụng VNeID.",
        ],
    ),
    (
        "lao-cai-2024-01",
        "Lào Cai",
        "Thứ hai - 08/01/2024 09:30",
        [
            "Đến hết ngày 31/12/2023, tỉnh Lào Cai đã kích hoạt 352.004 tài khoản định danh điện tử.",
            "Năm 2024, tỉnh đặt mục tiêu đưa các tiện ích của ứng dụng VNeID đến mọi người dân.",
        ],
    ),
    (
        "lao-cai-2024-07",
        "Lào Cai",
        "Thứ ba - 02/07/2024 10:00",
        [
            "Tính đến ngày 30/6/2024, Lào Cai đã kích hoạt 421.870 tài khoản định danh điện tử.",
            "Tỉnh cũng hoàn thành việc làm sạch dữ liệu dân cư tại 152 xã, phường, thị trấn.",
        ],
    ),
    (
        "binh-dinh-2023-06",
        "Bình Định",
        "Thứ ba - 20/06/2023 14:00",
        [
            "Tính đến ngày 15/6/2023, tỉnh Bình Định có 620 dịch vụ công trực tuyến toàn trình được cung cấp cho người dân và doanh nghiệp tỉnh Bình Định.",
            "Tỷ lệ hồ sơ trực tuyến toàn trình của tỉnh đạt 38%.",
        ],
    ),
    (
        "binh-dinh-2024-02",
        "Bình Định",
        "Thứ bảy - 10/02/2024 07:45",
        [
            "Tính đến ngày 31/1/2024, Bình Định có 1.096 dịch vụ công trực tuyến toàn trình.",
            "Tỉnh đã số hóa 85% hồ sơ, kết quả giải quyết thủ tục hành chính.",
        ],
    ),
    (
        "tay-ninh-a",
        "Tây Ninh",
        "Thứ năm - 04/01/2024 16:20",
        [
            "Tính đến ngày 31/12/2023, tỉnh Tây Ninh đã kích hoạt 301.200 tài khoản định danh điện tử cho công dân.",
            "Tỉnh tiếp tục triển khai các mô hình điểm của Đề án 06.",
        ],
    ),
    (
        "tay-ninh-b",
        "Tây Ninh",
        "Thứ sáu - 05/01/2024 11:00",
        [
            "Tính đến ngày 31/12/2023, Tây Ninh đã kích hoạt 310.200 tài khoản định danh điện tử.",
            "Nhiều xã đã hoàn thành chỉ tiêu cấp căn cước công dân gắn chip.",
        ],
    ),
    (
        "phu-yen",
        "Phú Yên",
        "Thứ tư - 15/05/2024 08:10",
        [
            "Tính đến ngày 10/5/2024, tỉnh Phú Yên đã kích hoạt 260.330 tài khoản định danh điện tử và có 733 dịch vụ công trực tuyến toàn trình.",
            "Tỉnh tổ chức 14 hội nghị tập huấn cho cán bộ cấp xã.",
        ],
    ),
]

SERIES: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("Lào Cai", ACCOUNTS): [("2023-03-15", "180.512"), ("2023-12-31", "352.004"), ("2024-06-30", "421.870")],
    ("Bình Định", SERVICES): [("2023-06-15", "620"), ("2024-01-31", "1.096")],
}


def question(province: str, indicator: str, when: str = "") -> str:
    if indicator == ACCOUNTS:
        return f"{when}{province} đã kích hoạt bao nhiêu {ACCOUNTS}?"
    return f"{when}{province} có bao nhiêu {SERVICES}?"


def write(folder: Path) -> Path:
    return province_corpus.write(folder, ARTICLES)
