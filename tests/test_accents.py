"""Questions typed without marks are read with their likeliest marks; the rest is left alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from de06qa.accents import AccentModel, with_marks
from de06qa.config import Settings
from de06qa.contract import search_json
from de06qa.errors import ModelUnavailable
from de06qa.reader import Found, Text
from de06qa.search import Searcher
from tests.conftest import FakeEmbedder, FakeReader


def test_pairs_choose_the_marks_a_syllable_alone_would_not():
    # "cá" is the commoner syllable, but "cà phê" the commoner pair
    m = AccentModel({"ca": 1, "cá": 5, "cà": 3, "phê": 4, "phe": 1, "cà phê": 3, "con": 6, "con cá": 4})
    assert m.restore("ca phe") == "cà phê"
    assert m.restore("con ca") == "con cá"
    assert m.restore("Ca phe!") == "Cà phê!"  # case and punctuation as typed


def test_packaged_counts_restore_a_question_in_place():
    typed = "Nam 2023, Thu do Ha Noi co bao nhieu nguoi dan?"
    marked = with_marks(typed)
    assert marked == "Năm 2023, Thủ đô Hà Nội có bao nhiêu người dân?"
    assert len(marked) == len(typed)  # offsets into the question stay valid


def test_english_marked_and_wordless_questions_are_left_as_typed():
    for typed in (
        "How many chip-based ID cards has Thai Binh issued?",
        "Hà Giang có bao nhieu dịch vụ?",  # some marks: the user chose them
        "2023/63?",
        "",
    ):
        assert with_marks(typed) == typed


class RecordingEmbedder(FakeEmbedder):
    """The fake embedder, remembering the questions it embedded."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        self.embedded += texts
        return super().embed_queries(texts)


class RecordingReader(FakeReader):
    """The fake reader, remembering the questions it read."""

    def __init__(self) -> None:
        self.read_questions: list[str] = []

    def read(self, items: Sequence[tuple[str, Sequence[Text]]]) -> list[list[Found | None]]:
        self.read_questions += [q for q, _ in items]
        return super().read(items)


def test_search_embeds_and_reads_the_marked_question_and_reports_the_typed_one(fake_index: Settings):
    typed = "ha giang co bao nhieu dich vu cong toan trinh"
    marked = "hà giang có bao nhiêu dịch vụ công toàn trình"
    emb, reader = RecordingEmbedder(), RecordingReader()
    res = Searcher.open(fake_index, emb, reader=reader).search(typed)
    assert res.query == typed and search_json(res)["read_as"] == marked
    assert emb.embedded == [marked]
    assert reader.read_questions and set(reader.read_questions) == {marked}

    off, off_reader = RecordingEmbedder(), RecordingReader()
    res = Searcher.open(fake_index.with_(restore_marks=False), off, reader=off_reader).search(typed)
    assert search_json(res)["read_as"] == typed
    assert off.embedded == [typed] and set(off_reader.read_questions) == {typed}


def test_restore_marks_setting_from_the_environment():
    assert Settings.from_env({}).restore_marks
    assert not Settings.from_env({"DE06QA_RESTORE_MARKS": "0"}).restore_marks


def test_missing_counts_file_is_a_clear_error_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from de06qa import accents

    monkeypatch.setattr(accents, "counts_file", lambda: tmp_path / "gone.npz")
    accents._packaged.cache_clear()
    try:
        with pytest.raises(ModelUnavailable, match="DE06QA_RESTORE_MARKS=0"):
            with_marks("ha giang co bao nhieu")
        assert with_marks("How many?") == "How many?"  # English never needs the file
    finally:
        accents._packaged.cache_clear()
