"""Failing well (issue 20): special files, a missing format library, a full or unwritable disk,
bytes that are not UTF-8 in a question; each is one line, nothing indexed is lost, nothing hangs."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from de06qa import store
from de06qa.api import create_app
from de06qa.errors import IndexUnwritable
from de06qa.indexing import build_index
from de06qa.ingest import read_folder

from .conftest import SEEDS, FakeEmbedder, FakeReader

EXE = str(Path(sys.executable).with_name("de06qa"))
ARTICLE = "Hà Giang đẩy mạnh Đề án 06\nTỉnh Hà Giang có 665 dịch vụ công toàn trình.\n"


def test_pipes_sockets_and_link_loops_are_skipped_with_a_reason_not_waited_on(tmp_path):
    import socket

    (tmp_path / "a.txt").write_text(ARTICLE, encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.txt")  # opening it would wait for a writer forever
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.txt"))
    (tmp_path / "loop.txt").symlink_to(tmp_path / "loop.txt")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)  # a folder loop
    try:
        articles, skipped = read_folder(tmp_path)
    finally:
        sock.close()
    assert [a.doc_id for a in articles] == ["a"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons["pipe.txt"] == "a named pipe, not a regular file"
    assert reasons["sock.txt"] == "a socket, not a regular file"
    assert "symbolic links" in reasons["loop.txt"]


def test_a_format_whose_library_is_missing_is_skipped_naming_the_package(tmp_path):
    """A real process in which trafilatura cannot be imported (a stub on the path shadows it)."""
    stub = tmp_path / "stub" / "trafilatura"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError(\"No module named 'trafilatura'\")\n")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(ARTICLE, encoding="utf-8")
    (folder / "page.html").write_text("<html><body><p>Hà Giang</p></body></html>", encoding="utf-8")
    code = textwrap.dedent(f"""
        import json, sys
        from de06qa.ingest import read_folder
        a, s = read_folder(__import__('pathlib').Path({str(folder)!r}))
        print(json.dumps([[x.doc_id for x in a], [[x.path, x.reason] for x in s]]))
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "stub")}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    docs, skipped = json.loads(r.stdout)
    assert docs == ["a"]
    [(path, reason)] = skipped
    assert path.endswith("page.html") and "pip install trafilatura lxml_html_clean" in reason
    assert "\n" not in reason


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 600 KB file system (tmpfs; needs root, as CI is)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_one_message_and_the_previous_index_survives(tiny_disk, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_text(ARTICLE, encoding="utf-8")
    settings = store_settings(tiny_disk / "index")
    build_index(settings, small, FakeEmbedder())
    before = store.load(settings.index_dir)
    with pytest.raises(IndexUnwritable) as e:
        build_index(settings, SEEDS, FakeEmbedder())  # the seeds' index (~780 KB) does not fit
    msg = str(e.value)
    assert "is full" in msg and "MB free" in msg and "needs about" in msg and "\n" not in msg
    after = store.load(settings.index_dir)
    assert list(after.articles) == list(before.articles) == ["a"]
    assert not [p for p in tiny_disk.iterdir() if ".tmp-" in p.name]  # no half-written folder left


def test_an_unwritable_index_folder_is_one_message(tiny_disk, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text(ARTICLE, encoding="utf-8")
    settings = store_settings(tiny_disk / "index")
    build_index(settings, tmp_path / "src", FakeEmbedder())
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    with pytest.raises(IndexUnwritable) as e:
        build_index(settings, tmp_path / "src", FakeEmbedder(), rebuild=True)
    assert "cannot write the index" in str(e.value) and "Read-only file system" in str(e.value)
    assert list(store.load(settings.index_dir).articles) == ["a"]


def store_settings(index_dir: Path):  # type: ignore[no-untyped-def]
    from de06qa.config import Settings

    return Settings(index_dir=index_dir, cache_dir=index_dir.parent / "cache", reload_poll_s=0)


def test_http_refuses_a_question_with_lone_surrogates(fake_index):
    with TestClient(create_app(fake_index, FakeEmbedder(), FakeReader())) as c:
        r = c.post(
            "/search",
            content=b'{"q": "Ha Giang \\udcff\\udcfe", "k": 2}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422, r.text
        assert "q:" in r.json()["detail"] and "unicode" in r.json()["detail"]
        r = c.get("/search", params={"q": b"Ha Giang \xff\xfe".decode("latin-1")})  # percent-encoded Latin-1
        assert r.status_code in (200, 422), r.text
        r = c.get("/search?q=Ha%20Giang%20%FF%FE")  # bytes that are not UTF-8
        assert r.status_code == 400 and "UTF-8" in r.json()["detail"]
        assert c.get("/search", params={"q": "Hà Giang dịch vụ công"}).status_code == 200


@pytest.mark.slow
def test_cli_refuses_bytes_that_are_not_utf8_in_every_entry_point(real_settings, real_searcher, tmp_path):
    env = {
        **os.environ,
        "DE06QA_CACHE_DIR": str(real_settings.cache_dir),
        "DE06QA_INDEX_DIR": str(real_settings.index_dir),
    }
    arg = subprocess.run(
        [os.fsencode(EXE), b"ask", b"Ha Giang \xff\xfe"], env=env, capture_output=True, timeout=120
    )
    assert arg.returncode == 2
    err = arg.stderr.decode()
    assert err.count("\n") == 1 and "not UTF-8" in err and "Traceback" not in err
    lines = "Hà Giang có bao nhiêu dịch vụ công toàn trình?\n".encode() + b"Ha Giang \xff\n"
    f = tmp_path / "qs.txt"
    f.write_bytes(lines)
    for how in (["--file", str(f)], ["--file", "-"]):
        r = subprocess.run([EXE, "ask", "--json", *how], input=lines if how[1] == "-" else None, env=env,
                           capture_output=True, timeout=120)  # fmt: skip
        assert r.returncode == 2 and b"Traceback" not in r.stderr
        assert b"line 2" in r.stderr and b"not UTF-8" in r.stderr
        assert (
            json.loads(r.stdout.decode().splitlines()[0])["answer"]["text"].split()[0] == "665"
        )  # the good line answered


@pytest.mark.slow
def test_cli_index_of_a_folder_with_a_pipe_does_not_hang(real_settings, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text(ARTICLE, encoding="utf-8")
    os.mkfifo(src / "pipe.txt")
    env = {**os.environ, "DE06QA_CACHE_DIR": str(real_settings.cache_dir)}
    r = subprocess.run([EXE, "index", str(src), "--index-dir", str(tmp_path / "idx")], env=env,
                       capture_output=True, text=True, timeout=180)  # fmt: skip
    assert r.returncode == 3, r.stderr  # indexed, with a file skipped
    assert "pipe.txt: a named pipe, not a regular file" in r.stderr and "Indexed 1 document" in r.stderr


@pytest.mark.slow
def test_cli_full_disk_is_one_line_and_exit_2(real_settings, tiny_disk):
    env = {**os.environ, "DE06QA_CACHE_DIR": str(real_settings.cache_dir)}
    r = subprocess.run([EXE, "index", str(SEEDS), "--index-dir", str(tiny_disk / "idx")], env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the disk holding") and "is full" in last and "Traceback" not in r.stderr
    # The half-written folder was removed; the batches already embedded stay for the next run.
    parts = tiny_disk / ".idx.parts"
    held = sum(f.stat().st_size for f in parts.glob("*/*")) if parts.exists() else 0
    assert held or not parts.exists()  # nothing finished: nothing left behind
    assert shutil.disk_usage(tiny_disk).used < 100_000 + held
    assert not held or f"stay in {parts}" in last
    assert not [p for p in tiny_disk.iterdir() if ".tmp-" in p.name]


def test_a_file_name_that_is_not_utf8_is_indexed_under_a_readable_escaped_name(tmp_path):
    """Bytes from another system's archive in a file name: the article is indexed, its id and
    source show the bytes as \\xNN, and the index is written (no UnicodeEncodeError)."""
    from de06qa.search import Searcher

    src = tmp_path / "src"
    src.mkdir()
    name = os.fsdecode(b"b\xe1o-c\xe1o.txt")  # Latin-1 "báo-cáo": not UTF-8
    (src / name).write_text("Hà Giang: báo cáo\n\nTỉnh Hà Giang có 665 dịch vụ công toàn trình.\n", "utf-8")
    (src / os.fsdecode(b"\xff.pdf")).write_bytes(b"not a pdf")
    settings = store_settings(tmp_path / "index")
    summary = build_index(settings, src, FakeEmbedder())
    assert summary.documents == 1
    assert [(Path(s.path).name, bool(s.reason)) for s in summary.skipped] == [("\\xff.pdf", True)]
    s = Searcher.open(settings, FakeEmbedder(), reader=FakeReader())
    [article] = s.backend.data.articles.values()
    assert article.doc_id == "b\\xe1o-c\\xe1o" and article.source.endswith("b\\xe1o-c\\xe1o.txt")
    assert s.document(article.doc_id).text.startswith("Hà Giang")
