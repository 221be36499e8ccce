"""`de06qa doctor` as a user runs it, and the Python API exactly as the README shows it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from de06qa.doctor import FAIL, OK, WARN, Check, packages
from de06qa.errors import De06qaError

EXE = str(Path(sys.executable).with_name("de06qa"))


def _doctor(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **env_extra}
    return subprocess.run([EXE, "doctor"], env=env, capture_output=True, text=True, timeout=120)


def test_doctor_reports_each_part_and_passes_on_a_working_install(fake_index, tmp_path):
    r = _doctor({"DE06QA_INDEX_DIR": str(fake_index.index_dir), "DE06QA_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    status = {line.split()[1].rstrip(":"): line.split()[0] for line in lines}
    assert status["python"] == "ok" and status["index"] == "ok" and status["reader"] == "ok"
    assert status["accents"] == "ok"
    assert status["packages"] in ("ok", "warn")  # warn: a version other than the lock's
    index_line = next(line for line in lines if line.split()[1] == "index:")
    assert "5 articles" in index_line and "fake/hash-64" in index_line
    # nothing exported into a fresh cache yet: a warning with what happens, not a failure
    onnx = next(line for line in lines if line.split()[1] == "onnx" and "fp32" in line)
    assert onnx.startswith("warn") and "first question" in onnx
    assert any(line.startswith("ok    format .html .htm") for line in lines)
    assert not (tmp_path / "cache" / "models").exists()  # doctor converts nothing


def test_doctor_fails_with_the_fix_on_a_damaged_index(tmp_path):
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "manifest.json").write_text("{not json", encoding="utf-8")
    r = _doctor({"DE06QA_INDEX_DIR": str(tmp_path / "idx"), "DE06QA_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 1
    [line] = [x for x in r.stdout.splitlines() if x.startswith("FAIL")]
    assert " index:" in line and "de06qa index FOLDER --rebuild" in line


def test_doctor_says_an_index_of_another_precision_is_re_embedded_by_the_next_build(tmp_path):
    from de06qa.config import DEFAULT_MODEL, Settings
    from de06qa.doctor import index
    from de06qa.store import FORMAT_VERSION

    folder = tmp_path / "idx"
    folder.mkdir()
    manifest = {
        "format_version": FORMAT_VERSION,
        "counts": {"documents": 5, "chunks": 115},
        "model": {"model": DEFAULT_MODEL, "runtime": "onnx-fp32"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    got = index(Settings(index_dir=folder))
    assert (
        got.status == WARN
        and "onnx-fp32" in got.detail
        and "re-embeds every article (onnx-int8 now)" in got.fix
    )
    assert index(Settings(index_dir=folder, build_precision="fp32")).status == OK


def test_doctor_names_packages_that_differ_from_the_lock(tmp_path):
    lock = tmp_path / "default.lock"
    lock.write_text("numpy==0.0.1 \\\n    --hash=sha256:00\nno-such-package-de06qa==1.0\n", encoding="utf-8")
    c = packages(lock)
    assert c.status == FAIL and "numpy" in c.detail and "no-such-package-de06qa missing" in c.detail
    assert c.fix == "bash .ci/setup (installs the lock into .venv)"
    lock.write_text(f"numpy=={__import__('numpy').__version__}\n", encoding="utf-8")
    assert packages(lock).status == OK
    assert WARN != OK


@pytest.mark.slow
def test_the_python_api_as_the_readme_shows_it(model_cache, seeds_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("DE06QA_CACHE_DIR", str(model_cache))
    monkeypatch.chdir(tmp_path)
    seeds_copy.rename(tmp_path / "myreports")
    # -- the README's example, as written --
    from de06qa import index_folder, open_index, search_json

    summary = index_folder("myreports", index_dir="myreports-index")
    searcher = open_index("myreports-index")
    result = searcher.search("Hà Giang có bao nhiêu dịch vụ công toàn trình?", k=3)
    print(result.answer.text if result.answerable else "no answer")
    print(json.dumps(search_json(result), ensure_ascii=False)[:200])
    # -- what it gives --
    assert summary.documents == 5 and not summary.skipped
    assert result.answerable and result.answer.text.split()[0] == "665"
    d = search_json(result)
    assert d["answer"]["text"].split()[0] == "665" and len(d["results"]) == 3
    assert index_folder("myreports", index_dir="myreports-index").changed is False


def test_doctor_names_the_reader_file_a_question_would_read(tmp_path):
    from de06qa.config import Settings
    from de06qa.doctor import model

    def reader_line(**kw: str) -> Check:
        return next(c for c in model(Settings(cache_dir=tmp_path, **kw)) if c.what == "reader")

    fresh = reader_line()
    assert fresh.status == OK and "int8; not exported yet" in fresh.detail
    with pytest.raises(
        De06qaError, match=r"^unknown reader precision 'bf16' \(DE06QA_READER_PRECISION\); use int8 or fp32$"
    ):
        reader_line(reader_precision="bf16")
