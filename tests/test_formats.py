"""Articles as people keep them: saved web pages, PDFs, Word files, Markdown; each read from real
files written here, with what must be skipped (and why) and what must never reach a passage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from de06qa.chunking import chunk_article
from de06qa.config import Settings
from de06qa.indexing import build_index
from de06qa.ingest import read_folder
from tests.documents_on_disk import (
    DOCX_FACT,
    DOCX_TITLE,
    HTML_FACT,
    HTML_FURNITURE,
    PDF_FOOTER,
    PDF_HEADER,
    PDF_PAGES,
    PDF_TITLE,
    write_corrupt_docx,
    write_docx,
    write_html,
    write_pdf,
    write_scanned_pdf,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("formats") / "reports"
    (root / "2024").mkdir(parents=True)
    write_html(root / "ha-giang.html")
    write_pdf(root / "2024" / "ben-tre.pdf")
    write_docx(root / "can-tho.docx")
    write_scanned_pdf(root / "scan.pdf")
    write_corrupt_docx(root / "broken.docx")
    (root / "ghi-chu.md").write_text(
        "# Đồng Tháp mở rộng thanh toán không dùng tiền mặt\n\n"
        "**Tỉnh Đồng Tháp** đã có [1.250 điểm](http://127.0.0.1/x) chấp nhận thanh toán bằng mã QR tại chợ.\n",
        encoding="utf-8",
    )
    (root / "notes.doc").write_bytes(b"\xd0\xcf\x11\xe0 old word")
    (root / ".cache").mkdir()
    (root / ".cache" / "old.txt").write_text("Bản nháp cũ không được lập chỉ mục.", encoding="utf-8")
    (root / ".~lock.can-tho.docx#").write_text("lock", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def read(folder: Path):  # type: ignore[no-untyped-def]
    articles, skipped = read_folder(folder)
    return {a.doc_id: a for a in articles}, {Path(s.path).name: s.reason for s in skipped}


def test_every_format_is_read_recursively_and_hidden_files_are_not(read):
    articles, skipped = read
    assert sorted(articles) == ["2024/ben-tre", "can-tho", "ghi-chu", "ha-giang"]
    assert skipped == {
        "scan.pdf": "no text layer (scanned?); OCR is not supported",
        "broken.docx": skipped["broken.docx"],
        "notes.doc": "old Word .doc format; save it as .docx",
    }
    assert skipped["broken.docx"].startswith("not a readable Word .docx file")
    assert all(Path(a.file).is_file() and Path(a.file).is_absolute() for a in articles.values())


def test_web_page_keeps_the_article_and_drops_menus_related_links_comments_footer(read):
    a = read[0]["ha-giang"]
    assert a.title == "Hà Giang có 665 dịch vụ công toàn trình"
    assert a.date == "2024-03-12"  # from the page's metadata
    assert HTML_FACT in a.text
    for furniture in HTML_FURNITURE:
        assert furniture not in a.text
    assert a.pages == () and a.page_at(10) is None


def test_pdf_pages_are_kept_and_running_header_footer_dropped(read):
    a = read[0]["2024/ben-tre"]
    assert a.title == PDF_TITLE
    assert len(a.pages) == 3
    for n, page_text in enumerate(PDF_PAGES, start=1):
        first_words = page_text[:40]
        at = a.text.index(first_words)
        assert a.page_at(at) == n
    fact = a.text.index("412.000")
    assert a.page_at(fact) == 2
    # running header, footer and page numbers are gone from the text
    assert PDF_HEADER not in a.text and PDF_FOOTER not in a.text and "Trang 2/3" not in a.text
    # layout line breaks are joined: the fact's sentence is one line
    assert "kích hoạt 412.000 tài khoản định danh điện tử mức độ 2 cho công dân" in a.text


def test_pdf_chunks_stay_on_their_page(read):
    a = read[0]["2024/ben-tre"]
    for c in chunk_article(a, chunk_chars=200, overlap=1):
        assert a.page_at(c.start) == a.page_at(c.end - 1), c.text


def test_docx_reads_heading_paragraphs_and_tables(read):
    a = read[0]["can-tho"]
    assert a.title == DOCX_TITLE
    assert DOCX_FACT in a.text
    assert "Ninh Kiều | 98%" in a.text
    assert a.text.index(DOCX_TITLE) < a.text.index(DOCX_FACT) < a.text.index("Ninh Kiều")


def test_markdown_is_read_as_text_without_its_marks(read):
    a = read[0]["ghi-chu"]
    assert a.title == "Đồng Tháp mở rộng thanh toán không dùng tiền mặt"
    assert "Tỉnh Đồng Tháp đã có 1.250 điểm chấp nhận thanh toán" in a.text
    assert "**" not in a.text and "http" not in a.text and "#" not in a.text


def test_encrypted_and_broken_pdfs_are_skipped_with_their_reason(tmp_path: Path):
    from fpdf import FPDF
    from fpdf.enums import EncryptionMethod

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica")
    pdf.cell(0, 10, "secret report")
    pdf.set_encryption(owner_password="o", user_password="u", encryption_method=EncryptionMethod.RC4)
    pdf.output(str(tmp_path / "locked.pdf"))
    (tmp_path / "cut.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog")
    (tmp_path / "ok.txt").write_text("Bến Tre có 157 xã kết nối dữ liệu dân cư.", encoding="utf-8")
    _, skipped = read_folder(tmp_path)
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons["locked.pdf"] == "encrypted PDF (password needed); save an unprotected copy"
    assert reasons["cut.pdf"].startswith("broken PDF (")


def test_same_name_in_two_formats_gets_two_ids(tmp_path: Path):
    write_docx(tmp_path / "report.docx")
    write_html(tmp_path / "report.html")
    articles, _ = read_folder(tmp_path)
    assert sorted(a.doc_id for a in articles) == ["report.docx", "report.html"]


# -- with the real model: found with the right source and page, over HTTP and in the CLI ----------
@pytest.fixture(scope="module")
def indexed(folder: Path, real_settings: Settings, real_embedder, tmp_path_factory):  # type: ignore[no-untyped-def]
    settings = real_settings.with_(index_dir=tmp_path_factory.mktemp("fmt") / "index", reload_poll_s=0.0)
    s = build_index(settings, folder, real_embedder)
    assert s.documents == 4 and len(s.skipped) == 3
    return settings


@pytest.fixture(scope="module")
def client(indexed: Settings, real_embedder, real_reader):  # type: ignore[no-untyped-def]
    from de06qa.api import create_app

    with TestClient(create_app(indexed, real_embedder, real_reader)) as c:
        yield c


FURNITURE = (*HTML_FURNITURE, PDF_HEADER, PDF_FOOTER, "Trang 1/3", "Trang 2/3", "Trang 3/3")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "doc_id", "page", "answer"),
    [
        (
            "Bến Tre đã kích hoạt bao nhiêu tài khoản định danh điện tử mức độ 2?",
            "2024/ben-tre",
            2,
            "412.000",
        ),
        ("Hà Giang có bao nhiêu dịch vụ công toàn trình?", "ha-giang", None, "665"),
        ("Cần Thơ đã số hóa bao nhiêu phần trăm hồ sơ hộ tịch?", "can-tho", None, "95%"),
    ],
)
def test_fact_found_with_source_and_page_over_http(client, question, doc_id, page, answer):
    d = client.get("/search", params={"q": question, "k": 5}).json()
    top = d["results"][0]
    assert (top["doc_id"], top["page"]) == (doc_id, page)
    assert answer in d["answer"]["text"]
    assert d["answer"]["page"] == page
    for r in d["results"]:
        assert not any(f in r["text"] for f in FURNITURE), r["text"]


@pytest.mark.slow
def test_source_returns_the_original_file_with_its_media_type(client, folder: Path):
    r = client.get("/documents/2024/ben-tre/source")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith("inline")
    assert r.content == (folder / "2024" / "ben-tre.pdf").read_bytes()
    r = client.get("/documents/can-tho/source")
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument")
    doc = client.get("/documents/2024/ben-tre").json()
    assert (doc["pages"], doc["media_type"]) == (3, "application/pdf")
    assert client.get("/documents/nope/source").status_code == 404


@pytest.mark.slow
def test_cli_shows_the_page_and_exits_2_on_an_empty_folder(indexed: Settings, tmp_path: Path):
    exe = str(Path(sys.executable).with_name("de06qa"))
    env = {
        **os.environ,
        "DE06QA_CACHE_DIR": str(indexed.cache_dir),
        "DE06QA_INDEX_DIR": str(indexed.index_dir),
    }
    r = subprocess.run(
        [exe, "ask", "Bến Tre đã kích hoạt bao nhiêu tài khoản định danh điện tử mức độ 2?"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "2024/ben-tre.pdf [1] tr. 2 · chars" in out, out
    manifest = (indexed.index_dir / "manifest.json").read_bytes()
    (tmp_path / "empty").mkdir()
    r = subprocess.run(
        [exe, "index", str(tmp_path / "empty")], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: nothing to index:") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr
    assert (indexed.index_dir / "manifest.json").read_bytes() == manifest
