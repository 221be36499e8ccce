"""The `de06qa` command as a user runs it: real processes, real files, a real terminal (slow)."""

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("de06qa"))


def _env(settings, index_dir: Path) -> dict[str, str]:
    return {**os.environ, "DE06QA_CACHE_DIR": str(settings.cache_dir), "DE06QA_INDEX_DIR": str(index_dir)}


@pytest.fixture(scope="module")
def built(real_settings, real_searcher, tmp_path_factory):
    """An index built by the command itself, as the README says."""
    index_dir = tmp_path_factory.mktemp("cli") / "index"
    env = _env(real_settings, index_dir)
    seeds = Path(__file__).resolve().parents[1] / "seeds"
    r = subprocess.run([EXE, "index", str(seeds)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Indexed 5 documents" in r.stderr
    assert (index_dir / "manifest.json").exists() and (index_dir / "vectors.faiss").exists()
    return env


def test_ask_json(built):
    r = subprocess.run(
        [EXE, "ask", "--json", "--k", "2", "Hà Giang có bao nhiêu dịch vụ công toàn trình?"],
        env=built,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["answer"]["text"] == "665" and len(d["results"]) == 2


def test_ask_file_from_stdin_gives_json_lines(built):
    qs = "Hà Giang có bao nhiêu dịch vụ công toàn trình?\n\nGiá vàng hôm nay?\n"
    r = subprocess.run(
        [EXE, "ask", "--json", "--file", "-"],
        input=qs,
        env=built,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["answerable"] for x in lines] == [True, False]


def test_ask_human_output_fits_80_columns(built):
    r = subprocess.run(
        [EXE, "ask", "Chủ tịch UBND tỉnh Bến Tre là ai?"],
        env=built,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Answer: Trần Ngọc Tam" in r.stdout and "seeds/004_f8e44593c0f403ee.txt" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


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


def test_interactive_prompt_in_a_real_terminal(built):
    pid, fd = pty.fork()
    if pid == 0:  # child: the prompt, attached to a pseudo-terminal
        os.execve(EXE, [EXE, "ask"], {**built, "TERM": "dumb", "COLUMNS": "100"})
    seen = b""

    def read_until(token: bytes, timeout: float = 120) -> None:
        nonlocal seen
        end = time.time() + timeout
        while token not in seen and time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break
        assert token in seen, seen[-500:]

    read_until("câu hỏi> ".encode())
    os.write(fd, "Hà Giang có bao nhiêu dịch vụ công toàn trình?\r".encode())
    read_until(b"Answer: 665")
    seen = b""
    os.write(fd, "Chủ tịch UBND tỉnh Bến Tre là ai?\r".encode())
    read_until("Trần Ngọc Tam".encode())
    os.write(fd, b"exit\r")
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
