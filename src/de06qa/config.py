"""The one Settings object: the only place that reads the environment."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Literal, get_args, get_type_hints

from de06qa.errors import De06qaError

DEFAULT_MODEL = "intfloat/multilingual-e5-small"


def _default_cache_dir() -> Path:
    # XDG-style user cache: the converted model is ~470 MB and must live outside the repository.
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "de06qa"


# Environment variables and the Settings field each sets (DE06QA_MAX_ARTICLE_MB is read apart: it
# can be wrong, and says so).
_ENV: dict[str, tuple[str, Callable[[str], object]]] = {
    "DE06QA_SEEDS_DIR": ("seeds_dir", Path),
    "DE06QA_INDEX_DIR": ("index_dir", Path),
    "DE06QA_CACHE_DIR": ("cache_dir", Path),
    "DE06QA_MODEL": ("model", str),
    "DE06QA_RUNTIME": ("runtime", str),
    "DE06QA_PRECISION": ("precision", str),
    "DE06QA_BUILD_PRECISION": ("build_precision", str),
    "DE06QA_READER_PRECISION": ("reader_precision", str),
    "DE06QA_RESTORE_MARKS": ("restore_marks", lambda v: v.lower() not in ("0", "false", "no", "off")),
    "DE06QA_THREADS": ("threads", int),
    "DE06QA_BACKEND": ("backend", str),
    "DE06QA_MILVUS_URI": ("milvus_uri", str),
    "DE06QA_COLLECTION": ("collection", str),
    "DE06QA_FAISS_INDEX": ("faiss_index", str),
}


Runtime = Literal["onnx", "torch"]
Precision = Literal["int8", "fp32"]
Backend = Literal["embedded", "milvus"]
FaissKind = Literal["auto", "flat", "hnsw"]

_ENV_OF = {key: name for name, (key, _) in _ENV.items()}


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Build with `Settings.from_env()`; override with `.with_(...)`."""

    seeds_dir: Path = Path("seeds")
    index_dir: Path = Path("index")
    cache_dir: Path = field(default_factory=_default_cache_dir)
    model: str = DEFAULT_MODEL
    # Chunking: sentence-aware windows of at most `chunk_chars` characters, overlapping by
    # `chunk_overlap` sentences. ~450 chars keeps passages readable (the brief caps the mean at 600).
    chunk_chars: int = 450
    chunk_overlap: int = 1
    # Dense index type: "auto" (default: exact below 20,000 passages, HNSW from there on), "flat"
    # (exact) or "hnsw" (approximate).
    faiss_index: FaissKind = "auto"
    # Texts per model call. Small batches of length-sorted texts are fastest on this CPU (100 news
    # articles' passages: 9.6 s at 8, 11.7 s at 32, 13.7 s at 128; eval/bench_build.py).
    embed_batch_size: int = 8
    # Embedding runtime: "onnx" (ONNX Runtime, default) or "torch" (sentence-transformers on
    # PyTorch). Precision of the ONNX model for questions (`precision`) and for what a build
    # embeds (`build_precision`): int8 embeds about twice as fast; int8 passages searched with fp32
    # questions rank within 0.002 of fp32 throughout (hybrid Hit@1, MRR@10 and answer F1 on the
    # ViNewsQA held-out and ViQuAD dev sets), int8 questions too lost 0.0055-0.0075 MRR@10, more
    # than a default may lose (eval/RESULTS.md). Threads per inference: 0 = one per core.
    runtime: Runtime = "onnx"
    precision: Precision = "fp32"
    build_precision: Precision = "int8"
    # The answer reader's ONNX file: int8 with its outlier channels kept in fp32 (reader/int8.py)
    # reads ~35% faster than fp32 and within 0.01 of its F1 on held-out gold paragraphs
    # (quantising every channel lost .04: eval/RESULTS.md, "Answers").
    reader_precision: Precision = "int8"
    # A question typed without marks is read (embedded and read for its answer) with its likeliest
    # marks (de06qa.accents): on held-out questions with their marks stripped, eval/RESULTS.md.
    restore_marks: bool = True
    threads: int = 0
    k: int = 5
    max_query_chars: int = 1000
    # Larger files are skipped with a reason instead of read (see ingest.read_article).
    max_article_bytes: int = 5_000_000
    # Candidate retrieval: "embedded" (bm25s + FAISS in this process) or "milvus" (a Milvus
    # collection at `milvus_uri`: a local Milvus Lite file or http://host:19530), named
    # `collection` (+ a build time).
    backend: Backend = "embedded"
    milvus_uri: str = ""
    collection: str = "de06qa"
    # compare: rows whose as-of dates lie further apart than this are said not to compare.
    compare_span_days: int = 366
    # The server checks the index folder this often and loads a rebuilt index (0 = never).
    reload_poll_s: float = 2.0

    def __post_init__(self) -> None:
        """A choice the settings do not offer is an error here, at start, not when it is first used."""
        for name, choices in _choices().items():
            value = getattr(self, name)
            if value not in choices:
                raise De06qaError(
                    f"unknown {name.replace('_', ' ')} {value!r} ({_ENV_OF.get(name, name)}); "
                    f"use {' or '.join(choices)}"
                )
        if self.threads < 0:
            raise De06qaError(
                f"threads must be 0 (one per core) or more, not {self.threads} (DE06QA_THREADS)"
            )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        s = cls()
        updates: dict[str, object] = {}
        for name, (key, convert) in _ENV.items():
            if env.get(name):
                try:
                    updates[key] = convert(env[name])
                except ValueError:
                    raise De06qaError(f"{name}={env[name]!r} is not a whole number") from None
        if v := env.get("DE06QA_MAX_ARTICLE_MB"):
            try:
                updates["max_article_bytes"] = int(float(v) * 1e6)
            except ValueError:
                raise De06qaError(f"DE06QA_MAX_ARTICLE_MB={v!r} is not a number of megabytes") from None
        return replace(s, **updates)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields replaced (None values are ignored, handy for CLI options)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]


@cache
def _choices() -> dict[str, tuple[str, ...]]:
    """The fields whose type is a Literal, with the values each allows."""
    hints = get_type_hints(Settings)
    return {
        f.name: get_args(hints[f.name])
        for f in fields(Settings)
        if getattr(hints[f.name], "__origin__", None) is Literal
    }
