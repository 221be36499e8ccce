"""A corpus written by the tests: articles about a dozen provinces, each giving its figures for two
indicators among distracting numbers (other indicators, document dates, percentages, "mức độ 2"),
some provinces silent, one reported twice at different dates, one under its 2025 merged name.

`EXPECTED[indicator]` is what `compare` must return by province: {province: (value as written,
number, as_of)}; `SILENT` the provinces whose articles give neither figure.
"""

from __future__ import annotations

from pathlib import Path

SERVICES = "dịch vụ công trực tuyến toàn trình"
ACCOUNTS = "tài khoản định danh điện tử đã kích hoạt"

# (file, province, published, paragraphs)
ARTICLES: list[tuple[str, str, str, list[str]]] = [
    (
        "lang-son",
        "Lạng Sơn",
        "Thứ hai - 15/07/2024 08:30",
        [
            "Tính đến ngày 30/6/2024, tỉnh Lạng Sơn đã cung cấp 512 dịch vụ công trực tuyến toàn trình trên Cổng dịch vụ công quốc gia, đạt tỷ lệ 61,5% tổng số thủ tục hành chính.",
            "Về định danh điện tử, Công an tỉnh Lạng Sơn đã kích hoạt 412.530 tài khoản định danh điện tử mức độ 2 cho người dân. Thực hiện Kế hoạch số 15/KH-UBND ngày 10/3/2024, 200 xã đã triển khai mô hình tổ công nghệ số cộng đồng.",
            "Năm 2023, tỉnh tiếp nhận 98.765 hồ sơ trực tuyến, tiết kiệm khoảng 12 tỷ đồng chi phí cho người dân.",
        ],
    ),
    (
        "nghe-an",
        "Nghệ An",
        "Thứ ba - 20/08/2024 09:00",
        [
            "Đến hết tháng 7/2024, tỉnh Nghệ An có 1.024 dịch vụ công trực tuyến toàn trình, trong đó 85% được tích hợp lên Cổng dịch vụ công quốc gia.",
            "Toàn tỉnh Nghệ An hiện có hơn 1,2 triệu tài khoản định danh điện tử đã được kích hoạt, chiếm 48,3% dân số.",
            "Theo Quyết định số 2201/QĐ-UBND ngày 5/8/2024, tỉnh sẽ đầu tư 35 tỷ đồng cho hạ tầng số.",
        ],
    ),
    (
        "quang-ninh",
        "Quảng Ninh",
        "Thứ năm - 16/01/2025 10:15",
        [
            "Năm 2024, tỉnh Quảng Ninh đưa 798 dịch vụ công trực tuyến toàn trình vào vận hành, tăng 120 dịch vụ so với năm 2023.",
            "Tính đến ngày 31/12/2024, Quảng Ninh đã kích hoạt 856.002 tài khoản định danh điện tử cho công dân.",
            "Tỷ lệ hồ sơ giải quyết đúng hạn của tỉnh đạt 99,2%; 13 huyện, thị xã, thành phố hoàn thành chỉ tiêu.",
        ],
    ),
    (
        "thanh-hoa",
        "Thanh Hóa",
        "Thứ sáu - 27/09/2024 14:00",
        [
            "Tỉnh Thanh Hóa đang cung cấp 645 dịch vụ công trực tuyến toàn trình; tỷ lệ hồ sơ trực tuyến toàn trình đạt 52%.",
            "Đến ngày 15/9/2024, Công an tỉnh Thanh Hóa đã kích hoạt 1.506.331 tài khoản định danh điện tử, cao nhất từ trước đến nay.",
            "Tỉnh đã tổ chức 27 hội nghị tập huấn cho 3.500 cán bộ cấp xã.",
        ],
    ),
    (
        "ca-mau",
        "Cà Mau",
        "Thứ tư - 12/06/2024 07:45",
        [
            "Tính đến tháng 5/2024, Cà Mau có 433 dịch vụ công trực tuyến toàn trình được cung cấp trên Cổng dịch vụ công của tỉnh.",
            "Tỉnh Cà Mau đã kích hoạt 390.117 tài khoản định danh điện tử, đạt 70% chỉ tiêu Bộ Công an giao.",
            "100% dịch vụ công trực tuyến mức độ 2 đã được rà soát theo Nghị quyết số 01/NQ-CP ngày 6/1/2023.",
        ],
    ),
    (
        "gia-lai",
        "Gia Lai",
        "Thứ hai - 04/11/2024 16:20",
        [
            "Đến ngày 31/10/2024, tỉnh Gia Lai đã đưa 587 dịch vụ công trực tuyến toàn trình lên Cổng dịch vụ công quốc gia.",
            "Gia Lai sẽ tiếp tục vận động người dân kích hoạt tài khoản định danh điện tử trong thời gian tới.",
            "Tỉnh Gia Lai đã cấp 14.500 chữ ký số công cộng và lắp đặt 320 điểm phát sóng wifi miễn phí.",
        ],
    ),
    (
        "lam-dong",
        "Lâm Đồng",
        "Thứ bảy - 06/07/2024 11:00",
        [
            "Đến hết ngày 30/6/2024, tỉnh Lâm Đồng cung cấp 701 dịch vụ công trực tuyến toàn trình, đạt tỷ lệ 58,7%.",
            "Tổng số tài khoản định danh điện tử đã kích hoạt trên địa bàn tỉnh Lâm Đồng là 620.450 tài khoản.",
            "Năm 2022, tỉnh mới có 15 xã triển khai thanh toán không dùng tiền mặt.",
        ],
    ),
    (
        "son-la-2023",
        "Sơn La",
        "Thứ hai - 10/07/2023 08:00",
        [
            "Tính đến ngày 30/6/2023, tỉnh Sơn La có 300 dịch vụ công trực tuyến toàn trình.",
            "Tỉnh Sơn La đã triển khai 25 dịch vụ công thiết yếu theo Đề án 06 và tổ chức 40 lớp tập huấn.",
        ],
    ),
    (
        "son-la-2024",
        "Sơn La",
        "Thứ tư - 12/06/2024 09:30",
        [
            "Đến ngày 31/5/2024, tỉnh Sơn La đã nâng số dịch vụ công trực tuyến toàn trình lên 420 dịch vụ.",
            "Công an tỉnh Sơn La đã kích hoạt 300.200 tài khoản định danh điện tử cho người dân trên địa bàn.",
        ],
    ),
    (
        "yen-bai",
        "Yên Bái",
        "Thứ năm - 14/03/2024 15:00",
        [
            "Tính đến ngày 29/2/2024, tỉnh Yên Bái có 350 dịch vụ công trực tuyến toàn trình.",
            "Tỉnh Yên Bái đã kích hoạt 280.000 tài khoản định danh điện tử, vượt chỉ tiêu được giao.",
        ],
    ),
    (
        "lao-cai-2025",
        "Lào Cai",
        "Thứ ba - 14/10/2025 10:00",
        [
            "Sau sáp nhập, tính đến ngày 30/9/2025, tỉnh Lào Cai (mới) cung cấp 690 dịch vụ công trực tuyến toàn trình cho người dân.",
            "Tỉnh Lào Cai đã sắp xếp 99 đơn vị hành chính cấp xã và bố trí 1.200 cán bộ hỗ trợ người dân.",
        ],
    ),
    (
        "bac-giang",
        "Bắc Giang",
        "Thứ ba - 20/08/2024 10:00",
        [
            "Số dịch vụ công trực tuyến toàn trình của tỉnh Bắc Giang đạt 1.214, tăng 34 dịch vụ so với cuối năm 2023.",
            "Bắc Giang phấn đấu đến năm 2025 có 90% hồ sơ được giải quyết trực tuyến.",
        ],
    ),
    (
        "dien-bien",
        "Điện Biên",
        "Thứ sáu - 22/03/2024 08:10",
        [
            "Tỉnh Điện Biên đang chuẩn bị triển khai dịch vụ công trực tuyến toàn trình trong thời gian tới.",
            "Năm 2023, Điện Biên tiếp nhận 45.210 hồ sơ; 100% cơ quan nhà nước của tỉnh Điện Biên kết nối mạng truyền số liệu chuyên dùng.",
        ],
    ),
    (
        "cao-bang",
        "Cao Bằng",
        "Thứ hai - 19/02/2024 13:30",
        [
            "Tỉnh Cao Bằng tổ chức 12 hội nghị về chuyển đổi số, thu hút 2.300 đại biểu tham dự.",
            "Theo Kế hoạch số 08/KH-UBND ngày 2/2/2024, tỉnh Cao Bằng dành 18 tỷ đồng cho chương trình chuyển đổi số.",
        ],
    ),
    (
        "ha-tinh",
        "Hà Tĩnh",
        "Thứ ba - 09/04/2024 10:40",
        [
            "Hà Tĩnh đặt mục tiêu đến năm 2025 có 80% người dân sử dụng dịch vụ công trực tuyến.",
            "Tỉnh Hà Tĩnh đã lắp đặt 1.500 camera giám sát an ninh tại 216 xã, phường.",
        ],
    ),
]

EXPECTED: dict[str, dict[str, tuple[str, float, str]]] = {
    SERVICES: {
        "Lạng Sơn": ("512", 512, "2024-06-30"),
        "Nghệ An": ("1.024", 1024, "2024-07"),
        "Quảng Ninh": ("798", 798, "2024"),
        "Thanh Hóa": ("645", 645, "2024-09-27"),
        "Cà Mau": ("433", 433, "2024-05"),
        "Gia Lai": ("587", 587, "2024-10-31"),
        "Lâm Đồng": ("701", 701, "2024-06-30"),
        "Sơn La": ("420", 420, "2024-05-31"),  # its newer report
        "Yên Bái": ("350", 350, "2024-02-29"),
        "Lào Cai": ("690", 690, "2025-09-30"),
        "Bắc Giang": ("1.214", 1214, "2024-08-20"),  # "Số … của <tỉnh> đạt N": the figure names no noun
    },
    ACCOUNTS: {
        "Lạng Sơn": ("412.530", 412530, "2024-07-15"),
        "Nghệ An": ("hơn 1,2 triệu", 1_200_000, "2024-08-20"),
        "Quảng Ninh": ("856.002", 856002, "2024-12-31"),
        "Thanh Hóa": ("1.506.331", 1506331, "2024-09-15"),
        "Cà Mau": ("390.117", 390117, "2024-06-12"),
        "Lâm Đồng": ("620.450", 620450, "2024-07-06"),
        "Sơn La": ("300.200", 300200, "2024-06-12"),
        "Yên Bái": ("280.000", 280000, "2024-03-14"),
    },
}
SILENT = {"Điện Biên", "Cao Bằng", "Hà Tĩnh"}


def write(folder: Path, articles: list[tuple[str, str, str, list[str]]] = ARTICLES) -> Path:
    """(file, province, published, paragraphs) as .txt articles in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, province, published, paragraphs in articles:
        title = f"{province}: kết quả thực hiện Đề án 06"
        (folder / f"{name}.txt").write_text("\n\n".join([title, published, *paragraphs]) + "\n", "utf-8")
    return folder
