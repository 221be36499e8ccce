"""Real files of each format, written by the tests: a saved news page with its furniture, a
multi-page PDF with running header/footer, a Word document, an image-only PDF, a corrupt .docx."""

from __future__ import annotations

from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian's fonts-dejavu-core

HTML_FACT = "Theo báo cáo của Ban Chỉ đạo Đề án 06 tỉnh Hà Giang, đến nay toàn tỉnh đã cung cấp 665 dịch vụ công trực tuyến toàn trình trên Cổng Dịch vụ công quốc gia."
# Everything around the article that must not reach any passage.
HTML_FURNITURE = (
    "Trang chủ",
    "Tuyên Quang triển khai Đề án 06 quyết liệt",
    "Bạn đọc Nguyễn Văn A",
    "Bản quyền thuộc Báo Hà Giang",
)

HTML = f"""<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8">
<title>Hà Giang có 665 dịch vụ công toàn trình - Báo Hà Giang</title>
<meta property="og:title" content="Hà Giang có 665 dịch vụ công toàn trình">
<meta property="article:published_time" content="2024-03-12T08:30:00+07:00"></head>
<body><header><nav><ul><li><a href="/">Trang chủ</a></li><li><a href="/thoi-su">Thời sự</a></li>
<li><a href="/kinh-te">Kinh tế</a></li></ul></nav></header>
<main><article><h1>Hà Giang có 665 dịch vụ công toàn trình</h1>
<p>{HTML_FACT}</p>
<p>Tỉnh đã cấp hơn 700.000 căn cước công dân gắn chip cho người dân trên địa bàn và đẩy mạnh thu nhận hồ sơ tại các xã vùng cao.</p>
<p>Trong thời gian tới, tỉnh tiếp tục đẩy mạnh thanh toán không dùng tiền mặt và số hóa hồ sơ, kết quả giải quyết thủ tục hành chính.</p>
</article>
<aside><h3>Tin liên quan</h3><ul><li><a href="/a">Tuyên Quang triển khai Đề án 06 quyết liệt</a></li>
<li><a href="/b">Cao Bằng đẩy mạnh chuyển đổi số</a></li></ul></aside>
<section id="comments"><h3>Bình luận</h3><div class="comment"><p>Bạn đọc Nguyễn Văn A: Bài viết rất hay, cảm ơn tác giả đã thông tin kịp thời!</p></div></section>
</main><footer><p>Bản quyền thuộc Báo Hà Giang. Giấy phép số 123/GP-BTTTT. Địa chỉ: số 1 đường Nguyễn Trãi.</p></footer>
</body></html>"""

PDF_TITLE = "Báo cáo sơ kết Đề án 06 tỉnh Bến Tre năm 2024"
PDF_HEADER = "BÁO CÁO SƠ KẾT ĐỀ ÁN 06 TỈNH BẾN TRE NĂM 2024"
PDF_FOOTER = "Văn phòng Ủy ban nhân dân tỉnh Bến Tre – Lưu hành nội bộ"
PDF_PAGES = (
    "I. Tình hình chung. Ban Chỉ đạo Đề án 06 tỉnh Bến Tre đã ban hành kế hoạch triển khai năm 2024 "
    "và giao chỉ tiêu cụ thể cho từng sở, ngành và địa phương. Các huyện đã kiện toàn tổ công tác "
    "triển khai Đề án 06 cấp xã, phân công cán bộ phụ trách từng ấp.",
    "II. Kết quả định danh điện tử. Đến hết tháng 6 năm 2024, Công an tỉnh Bến Tre đã kích hoạt "
    "412.000 tài khoản định danh điện tử mức độ 2 cho công dân trên địa bàn tỉnh. Tỷ lệ kích hoạt "
    "đạt cao nhất ở thành phố Bến Tre và huyện Châu Thành.",
    "III. Nhiệm vụ thời gian tới. Tỉnh tiếp tục rà soát, làm sạch dữ liệu dân cư, đẩy mạnh thanh toán "
    "không dùng tiền mặt trong chi trả an sinh xã hội và mở rộng các mô hình điểm về chuyển đổi số.",
)

DOCX_TITLE = "Cần Thơ số hóa dữ liệu hộ tịch"
DOCX_FACT = "Đến nay, thành phố Cần Thơ đã số hóa 95% hồ sơ hộ tịch, phục vụ tra cứu và cấp bản sao điện tử."


def write_html(path: Path) -> Path:
    path.write_text(HTML, encoding="utf-8")
    return path


def write_pdf(path: Path) -> Path:
    from fpdf import FPDF

    class Report(FPDF):
        def header(self) -> None:
            self.set_font("dv", size=9)
            self.cell(0, 8, PDF_HEADER, new_x="LMARGIN", new_y="NEXT", align="C")

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("dv", size=9)
            self.cell(0, 5, PDF_FOOTER, new_x="LMARGIN", new_y="NEXT", align="C")
            self.cell(0, 5, f"Trang {self.page_no()}/{{nb}}", align="C")

    pdf = Report()
    pdf.set_title(PDF_TITLE)
    pdf.add_font("dv", fname=str(FONT))
    for text in PDF_PAGES:
        pdf.add_page()
        pdf.set_font("dv", size=11)
        pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


def write_scanned_pdf(path: Path) -> Path:
    """A page that is only a picture of text: no text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(img).text((20, 80), "Scanned page 1", fill="black")
    png = path.with_suffix(".png.tmp")
    img.save(png, format="PNG")
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(png), x=10, y=10, w=180)
    pdf.output(str(path))
    png.unlink()
    return path


def write_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading(DOCX_TITLE, level=1)
    d.add_paragraph(DOCX_FACT)
    d.add_paragraph("Thành phố cũng hoàn thành kết nối dữ liệu hộ tịch với Cơ sở dữ liệu quốc gia về dân cư.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Quận", "Tỷ lệ số hóa"
    table.cell(1, 0).text, table.cell(1, 1).text = "Ninh Kiều", "98%"
    d.save(str(path))
    return path


def write_corrupt_docx(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    return path
