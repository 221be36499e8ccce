"""Learned ranking: features of candidate chunks and answer sentences, and the small linear models
(fitted by `eval/fit_ranker.py` on external Vietnamese QA data) that score them.

Features are computed for candidates only, so the cost of ranking does not grow with the corpus.
Every feature is generic (lexical and semantic agreement, article-level evidence, position): none
refers to particular questions, articles or collections.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from de06qa.answer import STOPWORDS, has_candidate
from de06qa.backends import Candidates
from de06qa.documents import Chunk, Span
from de06qa.errors import IndexIncompatible
from de06qa.query import Query
from de06qa.text import fold

MODEL_FILE = "ranker.json"
_SYLLABLE = re.compile(r"\w+(?:[.,/]\w+)*")

RANK_FEATURES = (
    "bm25_words_rel", "bm25_folded_rel", "bm25_folded_log", "lex_rrank",
    "dense", "dense_gap", "dense_rrank", "sentence_cos_max", "sentence_cos_gap",
    "idf_cover", "bigram_cover", "title_cover", "article_lex_best", "article_dense_best",
    "province_match", "province_mismatch", "first_chunk", "position", "length", "has_kind",
    "known", "known_x_lex",
)  # fmt: skip
SENTENCE_FEATURES = (
    "cos", "cos_gap", "idf_cover", "idf_cover_ctx", "bigram_cover", "has_kind", "passage_score",
    "passage_rank", "length", "province_match",
)  # fmt: skip
CONFIDENCE_FEATURES = (
    "passage_prob", "passage_margin", "sentence_prob", "sentence_cos", "dense_top", "idf_cover",
    "sentence_idf_cover", "known", "province_unknown", "province_mismatch",
)  # fmt: skip


def syllables(text: str) -> set[str]:
    """Folded lower-case syllables of a text (numbers keep their separators: "1.818")."""
    return {m.group() for m in _SYLLABLE.finditer(fold(text).lower())}


def query_bigrams(q: Query) -> tuple[str, ...]:
    """The question's folded syllable pairs that carry topic (not two function words)."""
    return tuple(
        t for t in q.folded_terms if "_" in t and not all(p in STOPWORDS for p in t.split("_"))
    )


def _cover(terms: tuple[str, ...], have: set[str] | frozenset[str], idf: dict[str, float]) -> float:
    total = sum(idf.get(t, 0.0) for t in terms)
    return sum(idf.get(t, 0.0) for t in terms if t in have) / total if total > 0 else 0.0


def _share(terms: tuple[str, ...], have: set[str] | frozenset[str]) -> float:
    return sum(1 for t in terms if t in have) / len(terms) if terms else 0.0


def _rrank(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(x), np.float32)
    ranks[np.argsort(-x, kind="stable")] = np.arange(1, len(x) + 1)
    return 1.0 / ranks


def _group_max(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """For each element, the max of `values` over the elements of its group."""
    best: dict[int, float] = {}
    for g, v in zip(groups.tolist(), values.tolist()):
        if v > best.get(g, -math.inf):
            best[g] = v
    return np.array([best[g] for g in groups.tolist()], np.float32)


@dataclass(frozen=True, eq=False)
class CorpusView:
    """Per-index facts the features read, computed once when an index is loaded."""

    chunks: list[Chunk]
    chunk_doc: np.ndarray  # chunk row -> article number
    chunk_row: dict[str, int]  # chunk_id -> row
    doc_provinces: list[frozenset[str]]
    doc_title_terms: list[frozenset[str]]  # folded syllables of the title and province names
    chunk_position: np.ndarray  # 0 for an article's first chunk … 1 for its last
    sentence_lo: np.ndarray  # chunk row -> its first sentence row
    sentence_hi: np.ndarray  # … one past its last
    sentence_vectors: np.ndarray
    corpus_provinces: frozenset[str]

    def sentence_cos_max(self, rows: np.ndarray, qvec: np.ndarray) -> np.ndarray:
        lo, hi = self.sentence_lo[rows], self.sentence_hi[rows]
        n = np.maximum(hi - lo, 0)
        if n.sum() == 0:
            return np.zeros(len(rows), np.float32)
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)])
        sims = self.sentence_vectors[idx] @ qvec
        starts = np.concatenate([[0], np.cumsum(n)[:-1]])
        out = np.maximum.reduceat(sims, np.minimum(starts, len(sims) - 1)).astype(np.float32)
        out[n == 0] = 0.0
        return out


def rank_features(q: Query, c: Candidates, view: CorpusView, idf: dict[str, float]) -> np.ndarray:
    """One row of RANK_FEATURES per candidate."""
    n = len(c)
    if n == 0:
        return np.zeros((0, len(RANK_FEATURES)), np.float32)
    lex = c.bm25_folded * 0.5 + c.bm25_words
    docs = view.chunk_doc[c.rows]
    bigrams = query_bigrams(q)
    idf_cover, bigram_cover, title_cover, has_kind = (np.zeros(n, np.float32) for _ in range(4))
    prov_match, prov_mismatch = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for i, (row, d) in enumerate(zip(c.rows.tolist(), docs.tolist())):
        chunk = view.chunks[row]
        title = view.doc_title_terms[d]
        have = set(chunk.folded)
        idf_cover[i] = _cover(q.terms, have | title, idf)
        bigram_cover[i] = _share(bigrams, have)
        title_cover[i] = _cover(q.terms, title, idf)
        has_kind[i] = has_candidate(chunk.text, q.kind)
        if q.provinces:
            about = bool(q.provinces & view.doc_provinces[d])
            prov_match[i], prov_mismatch[i] = about, not about
    dense = c.dense
    sent = view.sentence_cos_max(c.rows, q.vector) if q.vector is not None else np.zeros(n, np.float32)
    known = sum(1 for t in q.terms if idf.get(t, 0.0) > 0) / len(q.terms) if q.terms else 0.0
    lex_rel = lex / max(float(lex.max()), 1e-9)
    lengths = np.array([len(view.chunks[r].text) for r in c.rows.tolist()], np.float32)
    cols = {
        "bm25_words_rel": c.bm25_words / max(float(c.bm25_words.max()), 1e-9),
        "bm25_folded_rel": c.bm25_folded / max(float(c.bm25_folded.max()), 1e-9),
        "bm25_folded_log": np.log1p(c.bm25_folded),
        "lex_rrank": _rrank(lex),
        "dense": dense,
        "dense_gap": dense - dense.max(),
        "dense_rrank": _rrank(dense),
        "sentence_cos_max": sent,
        "sentence_cos_gap": sent - sent.max(),
        "idf_cover": idf_cover,
        "bigram_cover": bigram_cover,
        "title_cover": title_cover,
        "article_lex_best": _group_max(lex_rel, docs),
        "article_dense_best": _group_max(dense - dense.max(), docs),
        "province_match": prov_match,
        "province_mismatch": prov_mismatch,
        "first_chunk": (view.chunk_position[c.rows] == 0).astype(np.float32),
        "position": view.chunk_position[c.rows],
        "length": lengths / 450.0,
        "has_kind": has_kind,
        "known": np.full(n, known, np.float32),
        "known_x_lex": known * lex_rel,
    }
    return np.stack([np.asarray(cols[f], np.float32) for f in RANK_FEATURES], axis=1)


def sentence_features(
    q: Query,
    sentences: list[tuple[Span, int, float, np.ndarray | None, frozenset[str], bool]],
    idf: dict[str, float],
) -> np.ndarray:
    """One row of SENTENCE_FEATURES per candidate answer sentence, given as
    (span, passage rank, passage score, sentence vector, title terms, province match)."""
    bigrams = query_bigrams(q)
    rows = []
    for span, rank, pscore, vec, title, match in sentences:
        toks = [m.group() for m in _SYLLABLE.finditer(fold(span.text).lower())]
        syl, pairs = set(toks), {f"{a}_{b}" for a, b in zip(toks, toks[1:])}
        cos = float(vec @ q.vector) if vec is not None and q.vector is not None else 0.0
        rows.append([
            cos, 0.0, _cover(q.terms, syl, idf), _cover(q.terms, syl | title, idf), _share(bigrams, pairs),
            float(has_candidate(span.text, q.kind)), pscore, float(rank), math.log1p(len(span.text)) / 6.0,
            float(match),
        ])  # fmt: skip
    x = np.array(rows, np.float32).reshape(len(rows), len(SENTENCE_FEATURES))
    if len(x):
        x[:, 1] = x[:, 0] - x[:, 0].max()
    return x


@dataclass(frozen=True, eq=False)
class LinearModel:
    """A logistic regression: standardised features, weights, bias."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    bias: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(((x - self.mean) / self.scale) @ self.coef + self.bias, np.float32)

    def proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 / (1.0 + np.exp(-self.logits(x))), np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "coef": [round(float(v), 6) for v in self.coef],
            "bias": round(self.bias, 6),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], expected: tuple[str, ...]) -> LinearModel:
        if tuple(d["features"]) != expected:
            raise IndexIncompatible("the packaged ranker was fitted on other features; reinstall de06qa")
        return cls(
            tuple(d["features"]),
            np.array(d["mean"], np.float32),
            np.array(d["scale"], np.float32),
            np.array(d["coef"], np.float32),
            float(d["bias"]),
        )


@dataclass(frozen=True, eq=False)
class Models:
    """The fitted models that ship with the package (`de06qa/models/ranker.json`)."""

    version: str
    ranker: LinearModel
    sentence: LinearModel
    confidence: LinearModel
    threshold: float  # confidence at or above which a question counts as answered

    def to_dict(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": self.version,
            **meta,
            "ranker": self.ranker.to_dict(),
            "sentence": self.sentence.to_dict(),
            "confidence": self.confidence.to_dict(),
            "threshold": self.threshold,
        }


def load_models() -> Models:
    d = json.loads((resources.files("de06qa") / "models" / MODEL_FILE).read_text(encoding="utf-8"))
    return Models(
        d["version"],
        LinearModel.from_dict(d["ranker"], RANK_FEATURES),
        LinearModel.from_dict(d["sentence"], SENTENCE_FEATURES),
        LinearModel.from_dict(d["confidence"], CONFIDENCE_FEATURES),
        float(d.get("threshold", 0.5)),
    )
