"""Learned ranking: features of candidate chunks and answer sentences, and the small linear models
(fitted by `eval/fit_ranker.py` on external Vietnamese QA data) that score them.

Features are computed for candidates only, so the cost of ranking does not grow with the corpus.
Every feature is generic (lexical and semantic agreement, article-level evidence, position): none
refers to particular questions, articles or collections.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from de06qa.backends import Candidates
from de06qa.corpus import CorpusView
from de06qa.documents import Span
from de06qa.errors import IndexIncompatible
from de06qa.locate import has_candidate
from de06qa.query import Query
from de06qa.termsets import terms_of
from de06qa.text import STOPWORDS

MODEL_FILE = "ranker.json"

RANK_FEATURES = (
    "bm25_words_rel", "bm25_folded_rel", "bm25_folded_log", "lex_rrank",
    "dense", "dense_gap", "dense_rrank", "sentence_cos_max", "sentence_cos_gap",
    "idf_cover", "bigram_cover", "sentence_idf_cover", "sentence_bigram_cover", "title_cover", "article_lex_best", "article_dense_best",
    "province_match", "province_mismatch", "first_chunk", "position", "length", "has_kind",
    "known", "known_x_lex", "article_cover", "article_candidates", "crowd",
)  # fmt: skip
SENTENCE_FEATURES = (
    "cos", "cos_gap", "idf_cover", "idf_cover_ctx", "bigram_cover", "has_kind", "passage_score",
    "passage_rank", "length", "province_match", "idf_cover_gap", "bigram_cover_gap", "passage_gap",
    "cos_rank",
)  # fmt: skip
CONFIDENCE_FEATURES = (
    "passage_prob", "passage_margin", "sentence_prob", "reader_prob", "answer_prob", "sentence_cos", "dense_top", "bm25_top", "idf_cover",
    "passage_sentence_idf_cover", "sentence_idf_cover", "sentence_bigram_cover", "known", "province_unknown",
    "province_mismatch",
)  # fmt: skip


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0))), np.float32)


def query_bigrams(q: Query) -> tuple[str, ...]:
    """The question's folded syllable pairs that carry topic (not two function words)."""
    return tuple(t for t in q.folded_terms if "_" in t and not all(p in STOPWORDS for p in t.split("_")))


def _cover(terms: tuple[str, ...], have: set[str] | frozenset[str], idf: dict[str, float]) -> float:
    total = sum(idf.get(t, 0.0) for t in terms)
    return sum(idf.get(t, 0.0) for t in terms if t in have) / total if total > 0 else 0.0


def _share(terms: tuple[str, ...], have: set[str] | frozenset[str]) -> float:
    return sum(1 for t in terms if t in have) / len(terms) if terms else 0.0


def _rrank(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(x), np.float32)
    ranks[np.argsort(-x, kind="stable")] = np.arange(1, len(x) + 1)
    return 1.0 / ranks


def _group_max(values: np.ndarray, member: np.ndarray, groups: int) -> np.ndarray:
    """For each element, the max of `values` (rows or scalars) over the elements of its group
    (`member`: each element's group number, of `groups`)."""
    best = np.full((groups, *values.shape[1:]), -np.inf)
    np.maximum.at(best, member, values)
    return np.asarray(best[member])


def rank_features(q: Query, c: Candidates, view: CorpusView, idf: dict[str, float]) -> np.ndarray:
    """One row of RANK_FEATURES per candidate."""
    n = len(c)
    if n == 0:
        return np.zeros((0, len(RANK_FEATURES)), np.float32)
    lex = c.lexical
    docs = view.chunk_doc[c.rows]
    bigrams = query_bigrams(q)
    # Each distinct question term weighted by its idf times its count in the question; each
    # distinct pair by its count. Agreement is read from the term sets the index stores.
    weight = dict.fromkeys(q.terms, 0.0)
    for t in q.terms:
        weight[t] += idf.get(t, 0.0)
    names = list(weight)
    w = np.array([weight[t] for t in names], np.float64)
    total = float(w.sum()) or 1.0
    pair_count = dict.fromkeys(bigrams, 0)
    for t in bigrams:
        pair_count[t] += 1
    pc = np.array(list(pair_count.values()), np.float64)
    n_pairs = len(bigrams) or 1
    vocab, sets = view.term_vocab, view.term_sets
    term_ids = np.array([vocab.get(t, -1) for t in names], np.int64)
    pair_ids = np.array([vocab.get(t, -1) for t in pair_count], np.int64)

    titled: dict[int, np.ndarray] = {}  # article -> which question terms its title holds
    in_title = np.zeros((n, len(names)), bool)
    prov_match, prov_mismatch = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for i, d in enumerate(docs.tolist()):
        if d not in titled:
            titled[d] = np.array([t in view.doc_title_terms[d] for t in names], bool)
        in_title[i] = titled[d]
        if q.provinces:
            about = bool(q.provinces & view.doc_provinces[d])
            prov_match[i], prov_mismatch[i] = about, not about
    chunk_hits = sets.chunk_hits(c.rows, term_ids) | in_title
    idf_cover = (chunk_hits @ w) / total
    # Among many articles on the same topic, the one a question was written from holds its other
    # words too (the person, the place): agreement over the article's candidate chunks together.
    # Candidates only, so every backend computes it the same way and its cost stays bounded.
    articles, member = np.unique(docs, return_inverse=True)
    article_cover = (_group_max(chunk_hits.astype(np.float64), member, len(articles)) @ w) / total
    article_candidates = np.bincount(member, minlength=len(articles))[member]
    bigram_cover = (sets.chunk_hits(c.rows, pair_ids) @ pc) / n_pairs
    title_cover = (in_title @ w) / total
    # SQuAD-style questions restate one sentence: agreement with the best single sentence
    # says more than agreement with the chunk as a whole.
    sents, owner = sets.sentence_rows(c.rows)
    sent_cover, sent_bigram = np.zeros(n), np.zeros(n)
    np.maximum.at(sent_cover, owner, ((sets.sentence_hits(sents, term_ids) | in_title[owner]) @ w) / total)
    np.maximum.at(sent_bigram, owner, (sets.sentence_hits(sents, pair_ids) @ pc) / n_pairs)
    has_kind = sets.has_kind(c.rows, q.kind)
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
        "sentence_idf_cover": sent_cover,
        "sentence_bigram_cover": sent_bigram,
        "title_cover": title_cover,
        "article_lex_best": _group_max(lex_rel, member, len(articles)),
        "article_dense_best": _group_max(dense - dense.max(), member, len(articles)),
        "province_match": prov_match,
        "province_mismatch": prov_mismatch,
        "first_chunk": (view.chunk_position[c.rows] == 0).astype(np.float32),
        "position": view.chunk_position[c.rows],
        "length": lengths / 450.0,
        "has_kind": has_kind,
        "known": np.full(n, known, np.float32),
        "known_x_lex": known * lex_rel,
        "article_cover": article_cover,
        "article_candidates": np.log1p(article_candidates),
        # How crowded the candidates are: a few articles (a small collection) or hundreds.
        "crowd": np.full(n, math.log1p(len(articles)), np.float32),
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
        syl, pairs = terms_of(span.text)
        cos = float(vec @ q.vector) if vec is not None and q.vector is not None else 0.0
        rows.append([
            cos, 0.0, _cover(q.terms, syl, idf), _cover(q.terms, syl | title, idf), _share(bigrams, pairs),
            float(has_candidate(span.text, q.kind)), pscore, float(rank), math.log1p(len(span.text)) / 6.0,
            float(match), 0.0, 0.0, 0.0, 0.0,
        ])  # fmt: skip
    x = np.array(rows, np.float32).reshape(len(rows), len(SENTENCE_FEATURES))
    if len(x):
        # How each sentence compares with the best of the question's candidates.
        for gap, of in (("cos_gap", "cos"), ("idf_cover_gap", "idf_cover_ctx"),
                        ("bigram_cover_gap", "bigram_cover"), ("passage_gap", "passage_score")):  # fmt: skip
            x[:, SENTENCE_FEATURES.index(gap)] = (
                x[:, SENTENCE_FEATURES.index(of)] - x[:, SENTENCE_FEATURES.index(of)].max()
            )
        x[:, SENTENCE_FEATURES.index("cos_rank")] = _rrank(x[:, 0])
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
        return sigmoid(self.logits(x))

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


class TreeModel:
    """A LightGBM model (text format, shipped in the package beside ranker.json)."""

    def __init__(self, model_text: str, features: tuple[str, ...]) -> None:
        import sys

        # lightgbm imports scikit-learn (~0.7 s) only for its optional scikit-learn API, which
        # ranking does not use: hide scikit-learn during the import unless it is loaded already,
        # then unhide it so nothing else in the process is affected.
        hidden = [m for m in ("sklearn", "pandas") if m not in sys.modules]
        for m in hidden:
            sys.modules[m] = None  # type: ignore[assignment]
        try:
            import lightgbm
        finally:
            for m in hidden:
                if sys.modules.get(m) is None:
                    del sys.modules[m]
        self.features = features
        self.text = model_text
        self._booster = lightgbm.Booster(model_str=model_text)
        if self._booster.num_feature() != len(features):
            raise IndexIncompatible("the packaged ranker was fitted on other features; reinstall de06qa")

    def logits(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0, np.float32)
        # One thread: a question has a few hundred candidates; threads cost more than they save.
        return np.asarray(self._booster.predict(x, num_threads=1), np.float32)

    def proba(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(self.logits(x))


@dataclass(frozen=True, eq=False)
class Models:
    """The fitted models that ship with the package (`de06qa/models/`)."""

    version: str
    ranker: LinearModel | TreeModel
    sentence: LinearModel | TreeModel
    confidence: LinearModel
    threshold: float  # confidence at or above which a question counts as answered

    def to_dict(self, meta: dict[str, Any]) -> dict[str, Any]:
        def entry(name: str, model: LinearModel | TreeModel) -> dict[str, Any]:
            if isinstance(model, LinearModel):
                return model.to_dict()
            return {"kind": "lightgbm", "file": f"{name}-lightgbm.txt", "features": list(model.features)}

        return {
            "version": self.version,
            **meta,
            "ranker": entry("ranker", self.ranker),
            "sentence": entry("sentence", self.sentence),
            "confidence": self.confidence.to_dict(),
            "threshold": self.threshold,
        }


def load_models(refitting: bool = False) -> Models:
    """The shipped models. `refitting` (eval/fit_ranker.py, after RANK_FEATURES changed): a ranker
    fitted on other features is replaced by one that scores every candidate 0, as collecting the
    fitting rows needs candidates and features but no ranking."""
    folder = resources.files("de06qa") / "models"
    d = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    if refitting and tuple(d["ranker"]["features"]) != RANK_FEATURES:
        n = len(RANK_FEATURES)
        zeros = np.zeros(n, np.float32)
        d["ranker"] = LinearModel(RANK_FEATURES, zeros, np.ones(n, np.float32), zeros, 0.0).to_dict()

    def model(entry: dict[str, Any], features: tuple[str, ...]) -> LinearModel | TreeModel:
        if entry.get("kind") != "lightgbm":
            return LinearModel.from_dict(entry, features)
        if tuple(entry["features"]) != features:
            raise IndexIncompatible("the packaged ranker was fitted on other features; reinstall de06qa")
        return TreeModel((folder / entry["file"]).read_text(encoding="utf-8"), features)

    return Models(
        d["version"],
        model(d["ranker"], RANK_FEATURES),
        model(d["sentence"], SENTENCE_FEATURES),
        LinearModel.from_dict(d["confidence"], CONFIDENCE_FEATURES),
        float(d.get("threshold", 0.5)),
    )
