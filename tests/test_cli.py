"""The `de06qa` command as a user runs it: real processes, real files, a real terminal (slow)."""

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("de06qa"))
SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def _env(settings, index_dir: Path) -> dict[str, str]:
    return {**os.environ, "DE06QA_CACHE_DIR": str(settings.cache_dir), "DE06QA_INDEX_DIR": str(index_dir)}


def _ask(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`de06qa ask ARGS` as a user runs it from a shell."""
    return subprocess.run(
        [EXE, "ask", *args], input=stdin, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def built(real_settings, real_searcher, tmp_path_factory):
    """An index built by the command itself, as the README says."""
    index_dir = tmp_path_factory.mktemp("cli") / "index"
    env = _env(real_settings, index_dir)
    r = subprocess.run([EXE, "index", str(SEEDS)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Indexed 5 documents" in r.stderr
    assert (index_dir / "manifest.json").exists() and (index_dir / "vectors.faiss").exists()
    return env


def test_ask_json(built):
    r = _ask(built, "--json", "--k", "2", "Hà Giang có bao nhiêu dịch vụ công toàn trình?")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["answer"]["text"].split()[0] == "665" and len(d["results"]) == 2


def test_ask_without_marks_reads_the_question_with_them(built):
    r = _ask(built, "ha giang co bao nhieu dich vu cong toan trinh")
    assert r.returncode == 0, r.stderr
    assert "(read as: hà giang có bao nhiêu dịch vụ công toàn trình)" in r.stdout
    assert re.search(r"^Answer: 665\b", r.stdout, re.M), r.stdout


def test_ask_file_from_stdin_gives_json_lines(built):
    qs = "Hà Giang có bao nhiêu dịch vụ công toàn trình?\n\nGiá vàng hôm nay?\n"
    r = _ask(built, "--json", "--file", "-", stdin=qs)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["answerable"] for x in lines] == [True, False]


def test_ask_human_output_fits_80_columns(built):
    r = _ask(built, "Chủ tịch UBND tỉnh Bến Tre là ai?")
    assert "Answer: Trần Ngọc Tam" in r.stdout and "seeds/004_f8e44593c0f403ee.txt" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert not [line for line in r.stdout.splitlines() if line.endswith(" ")]  # no padding in a pipe


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "/no/such/folder"], "does not exist"),
        (["ask", "   "], "the question is empty"),
        (["ask", "--file", "/no/such/file.txt", "--json"], "cannot read"),
    ],
)
def test_user_errors_are_one_line(built, args, message):
    r = subprocess.run([EXE, *args], env=built, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_index_without_seeds_names_the_fix(real_settings, tmp_path):
    env = {**_env(real_settings, tmp_path / "none"), "DE06QA_SEEDS_DIR": str(tmp_path / "noseeds")}
    r = subprocess.run([EXE, "ask", "x"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "de06qa index" in r.stderr and "Traceback" not in r.stderr


def test_first_question_builds_the_seeds_index_then_answers(real_settings, tmp_path):
    """No index/ yet: `de06qa ask` builds it from the seeds with the model it is already loading
    on its second thread (loading.py), then answers."""
    env = {k: v for k, v in os.environ.items() if k != "DE06QA_INDEX_DIR"}
    env.update(DE06QA_CACHE_DIR=str(real_settings.cache_dir), DE06QA_SEEDS_DIR=str(SEEDS))
    r = subprocess.run(
        [EXE, "ask", "--json", "Hà Giang có bao nhiêu dịch vụ công toàn trình?"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "building it from" in r.stderr and (tmp_path / "index" / "manifest.json").exists()
    assert json.loads(r.stdout)["answer"]["text"].startswith("665")


class Terminal:
    """`de06qa ask` (the prompt) attached to a pseudo-terminal, as a person runs it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child: the prompt
            os.execve(EXE, [EXE, "ask"], {**env, "TERM": "dumb", "COLUMNS": "100"})
        self.seen = b""

    def read(self, wait: float) -> None:
        if select.select([self.fd], [], [], wait)[0]:
            try:
                self.seen += os.read(self.fd, 4096)
            except OSError:
                pass

    def read_until(self, token: bytes, timeout: float = 120) -> None:
        end = time.time() + timeout
        while token not in self.seen and time.time() < end:
            self.read(0.2)
        assert token in self.seen, self.seen[-500:]

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def exit_status(self, timeout: float = 30) -> int:
        deadline = time.time() + timeout
        while time.time() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.WEXITSTATUS(status)
            self.read(0.2)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"the prompt is still running: {self.seen[-300:]!r}")


def test_interactive_prompt_in_a_real_terminal(built):
    t = Terminal(built)
    t.read_until("câu hỏi> ".encode())
    t.type("Hà Giang có bao nhiêu dịch vụ công toàn trình?\r")
    t.read_until(b"Answer: 665")
    t.seen = b""
    t.type("Chủ tịch UBND tỉnh Bến Tre là ai?\r")
    t.read_until("Trần Ngọc Tam".encode())
    t.type("exit\r")
    assert t.exit_status() == 0


def test_ctrl_d_typed_while_an_answer_prints_ends_the_prompt_after_it(built):
    t = Terminal(built)
    t.read_until("câu hỏi> ".encode())
    t.type("Hà Giang có bao nhiêu dịch vụ công toàn trình?\r")
    time.sleep(0.02)  # the question is being answered: the terminal is back in canonical mode
    t.type("\x04")
    t.read_until(b"Answer: 665")
    assert t.exit_status() == 0
    assert t.seen.count("câu hỏi> ".encode()) <= 2


def _ask_json(env: dict[str, str], question: str) -> dict:
    r = _ask(env, "--json", question)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _peak_rss_mb(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a command in a fresh Python child that reports the command's own peak RSS."""
    probe = (
        "import resource, subprocess, sys, json;"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "print(json.dumps([r.returncode, r.stdout, r.stderr,"
        " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))"
    )
    p = subprocess.run(
        [sys.executable, "-c", probe, *cmd], env=env, capture_output=True, text=True, timeout=600
    )
    code, out, err, rss = json.loads(p.stdout)
    return subprocess.CompletedProcess(cmd, code, out, err), rss


def test_mixed_folder_indexes_every_readable_article(real_settings, real_searcher, tmp_path):
    """Empty, binary, CP1258, UTF-16, boilerplate-only and a 21 MB file in one folder."""
    from .test_ingest import _cp1258

    src = tmp_path / "mixed"
    src.mkdir()
    seed = sorted(SEEDS.glob("000_*.txt"))[0].read_text(encoding="utf-8")
    (src / "a_utf8.txt").write_text(seed, encoding="utf-8")
    (src / "b_utf16.txt").write_bytes(seed.replace("Thái Bình", "Nam Định").encode("utf-16"))
    (src / "c_cp1258.txt").write_bytes(_cp1258(seed.replace("Thái Bình", "Ninh Bình")))
    (src / "d_empty.txt").write_bytes(b"")
    (src / "e_binary.txt").write_bytes(bytes(range(256)) * 40)
    (src / "f_menu.txt").write_text("Xem với cỡ chữ\nNhững tin mới hơn\nTin liên quan", encoding="utf-8")
    with (src / "g_huge.txt").open("w", encoding="utf-8") as f:
        for _ in range(21 * 1024 * 1024 // len(seed.encode()) + 1):
            f.write(seed + "\n")
    env = _env(real_settings, tmp_path / "index")
    r, rss = _peak_rss_mb([EXE, "index", str(src)], env)
    assert r.returncode == 3, r.stderr  # 3: indexed, but some files were skipped
    assert "Indexed 3 documents" in r.stderr and "Traceback" not in r.stderr
    reasons = {
        line.split(": ", 1)[0].rsplit("/", 1)[1]: line.split(": ", 1)[1]
        for line in r.stderr.splitlines()
        if "skipped" in line
    }
    assert set(reasons) == {"d_empty.txt", "e_binary.txt", "f_menu.txt", "g_huge.txt"}, r.stderr
    assert "empty" in reasons["d_empty.txt"] and "binary" in reasons["e_binary.txt"]
    assert "boilerplate" in reasons["f_menu.txt"] and "over the 5 MB limit" in reasons["g_huge.txt"]
    # The 21 MB file is never read into memory: the build's peak stays that of the model (~1 GB),
    # not model + 21 MB of text x its Python/segmentation overhead.
    small = tmp_path / "small"
    small.mkdir()
    (small / "a_utf8.txt").write_text(seed, encoding="utf-8")
    _, rss_small = _peak_rss_mb([EXE, "index", str(small), "--index-dir", str(tmp_path / "i2")], env)
    assert rss < rss_small + 100, (rss, rss_small)
    print(f"peak RSS with the 21 MB file {rss:.0f} MB; without {rss_small:.0f} MB")
    found = _ask_json(env, "Ninh Bình phấn đấu tỷ lệ dịch vụ công trực tuyến đạt bao nhiêu?")
    assert found["results"][0]["doc_id"] == "c_cp1258"


def test_damaged_index_from_the_cli_is_one_line(real_settings, real_searcher, tmp_path):
    folder = tmp_path / "idx"
    shutil.copytree(real_settings.index_dir, folder)
    (folder / "vectors.faiss").write_bytes(b"truncated")
    r = _ask(_env(real_settings, folder), "x")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: {folder} is incomplete or damaged (IndexDamaged); rebuild with: de06qa index --rebuild --index-dir {folder}"
    ]


def test_build_killed_mid_embedding_keeps_the_old_index(real_settings, real_searcher, tmp_path):
    folder = tmp_path / "idx"
    shutil.copytree(real_settings.index_dir, folder)
    env = _env(real_settings, folder)
    p = subprocess.Popen([EXE, "index", str(SEEDS), "--rebuild"], env=env, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    for line in p.stderr:  # kill it once it is embedding, i.e. well inside the build
        if line.startswith("embedding"):
            break
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert (
        _ask_json(env, "Hà Giang có bao nhiêu dịch vụ công toàn trình?")["answer"]["text"].split()[0] == "665"
    )
    r = subprocess.run([EXE, "index", str(SEEDS)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "0 new or changed, 5 unchanged" in r.stderr


def test_python_dash_m_runs_the_same_command():
    r = subprocess.run([sys.executable, "-m", "de06qa", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "ask" in r.stdout and "index" in r.stdout


def test_index_dir_without_an_index_is_an_error_not_a_build(built, tmp_path):
    typo = tmp_path / "indx"
    r = _ask(built, "x", "--index-dir", str(typo))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip()
        == f"error: no index in {typo}; build one with: de06qa index FOLDER --index-dir {typo}"
    )
    assert not typo.exists()  # the seeds were not quietly built there


def test_build_output_counts_what_it_counts(built, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.txt").write_text(
        "Bến Tre: tin mới\nBến Tre có 157 xã kết nối dữ liệu dân cư.", encoding="utf-8"
    )
    r = subprocess.run([EXE, "index", str(one), "--index-dir", str(tmp_path / "i")], env=built,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Read 1 of 1 file\n" in r.stderr and "Indexed 1 document (" in r.stderr
    # the last progress line: all done, with the rate
    assert re.search(r"embedded 1/1 articles \(100%, [\d.]+/s\)", r.stderr), r.stderr
    assert " 1 passage (" in r.stderr


def test_help_shows_flags_as_flags_without_padding():
    r = subprocess.run([EXE, "ask", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "<bool>" not in r.stdout and "--json " in r.stdout and "--province NAME" in r.stdout
    assert "(env DE06QA_INDEX_DIR; default" in " ".join(r.stdout.split())  # not eaten as markup
    assert not [line for line in r.stdout.splitlines() if line.endswith(" ")]
