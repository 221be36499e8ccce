"""Shared fixtures. Unit tests use a tiny deterministic fake embedder (and fake reader); integration
tests (marked slow) use the real default model, converted once per session into a temporary cache."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from de06qa.config import Settings
from de06qa.embedding import E5, Profile
from de06qa.reader import Found, Text

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"


class FakeEmbedder:
    """Bag-of-syllables hashed into 64 dims: deterministic, fast, and similar texts stay similar."""

    model_id = "fake/hash-64"
    runtime = "fake"
    dim = 64
    profile: Profile = E5

    def __init__(self) -> None:
        self.passages_embedded = 0  # lets tests see what an incremental build re-embedded

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        for tok in text.lower().split():
            v[int(hashlib.md5(tok.encode()).hexdigest(), 16) % self.dim] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def embed_passages(self, texts: list[str], progress=None) -> np.ndarray:  # type: ignore[no-untyped-def]
        self.passages_embedded += len(texts)
        return self.embed_queries(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


class StoppingEmbedder(FakeEmbedder):
    """Fails (as a build stopped by Ctrl-C or a full disk would) on its `after`-th batch."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.calls = after, 0

    def embed_passages(self, texts: list[str], progress=None) -> np.ndarray:  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls > 2 * self.after:  # (passages, then sentences, per batch)
            raise KeyboardInterrupt
        return super().embed_passages(texts)


class FakeReader:
    """A deterministic stand-in for the answer reader (reader/), for tests of what is around it."""

    def read(self, items: Sequence[tuple[str, Sequence[Text]]]) -> list[list[Found | None]]:
        """A fake reader: the text's first number (else its first word), and as "answers" logit
        the number of the question's words the text holds, less 2."""
        out: list[list[Found | None]] = []
        for question, texts in items:
            words = set(question.lower().split())
            row: list[Found | None] = []
            for t in texts:
                m = re.search(r"\d+(?:[.,]\d+)*", t.text) or re.search(r"\w+", t.text)
                shared = len(words & set(t.text.lower().split()))
                row.append(
                    None if m is None else Found(t.offset + m.start(), t.offset + m.end(), 0.0, shared - 2.0)
                )
            out.append(row)
        return out


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def fake_reader() -> FakeReader:
    return FakeReader()


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "seeds"
    shutil.copytree(SEEDS, dst)
    return dst


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def real_settings(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        cache_dir=model_cache, index_dir=tmp_path_factory.mktemp("index") / "idx", seeds_dir=SEEDS
    )


@pytest.fixture(scope="session")
def real_embedder(real_settings: Settings):  # type: ignore[no-untyped-def]
    from de06qa.embedding import create_embedder

    return create_embedder(real_settings)


@pytest.fixture(scope="session")
def real_reader(real_settings: Settings):  # type: ignore[no-untyped-def]
    from de06qa.reader import OnnxReader

    return OnnxReader(real_settings)


@pytest.fixture(scope="session")
def real_searcher(real_settings: Settings, real_embedder, real_reader):  # type: ignore[no-untyped-def]
    from de06qa.indexing import build_index
    from de06qa.search import Searcher

    build_index(real_settings, SEEDS, real_embedder)
    return Searcher.open(real_settings, real_embedder, reader=real_reader)


@pytest.fixture(scope="session")
def fake_index(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The seeds indexed with the fake embedder (fast): for tests of everything around the model."""
    from de06qa.indexing import build_index

    root = tmp_path_factory.mktemp("fake")
    settings = Settings(cache_dir=root / "cache", index_dir=root / "index", seeds_dir=SEEDS, reload_poll_s=0)
    build_index(settings, SEEDS, FakeEmbedder())
    return settings


def searcher_over(write, settings: Settings, embedder, reader, root: Path):  # type: ignore[no-untyped-def]
    """A searcher over a corpus a test writes (`write(folder)`), indexed under `root`."""
    from dataclasses import replace

    from de06qa.indexing import build_index
    from de06qa.search import Searcher

    settings = replace(settings, index_dir=root / "index")
    build_index(settings, write(root / "corpus"), embedder)
    return Searcher.open(settings, embedder, reader=reader)
