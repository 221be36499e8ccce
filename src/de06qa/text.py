"""Vietnamese text: NFC, tone-mark unification, accent folding, segmentation with offsets.

The only module that imports underthesea. Every function that returns pieces of text returns
`Span`s whose offsets point into the string it was given, so highlights land on the original text.
"""

from __future__ import annotations

import re
import sys
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path

# `import underthesea` also imports its optional pipelines (translation pulls transformers and
# torch: ~4 s), though we use only the CRF word segmenter and the sentence splitter. underthesea
# imports those optional modules inside try/except ImportError, so marking them absent in
# sys.modules (the documented way to make an import fail) skips them cleanly; nothing else changes.
_OPTIONAL = ("translate", "classification", "sentiment", "lang_detect", "dependency_parse")
if "underthesea" not in sys.modules:
    for _name in (
        *(f"underthesea.pipeline.{m}" for m in _OPTIONAL),
        "underthesea.agent",
        "underthesea.address",
    ):
        sys.modules.setdefault(_name, None)  # type: ignore[arg-type]

from underthesea import pos_tag, sent_tokenize, word_tokenize  # noqa: E402

from de06qa.documents import Span  # noqa: E402

SEGMENTER = "underthesea-word_tokenize"

_TONES = "\u0300\u0301\u0303\u0309\u0323"  # grave, acute, tilde, hook above, dot below
_MARKS = "\u0300-\u036f"
# Old-style ("hóa", "thủy") and new-style ("hoá", "thuỷ") tone placement both occur, sometimes in one
# article. We unify to the old style, which is the commoner one in news text: in an open syllable
# ending in oa/oe/uy the tone moves to the first vowel. "qu" is a consonant, so "quý" is left alone.
_NEW_STYLE = re.compile(
    rf"(?<![qQ])([oO])([aAeE])([{_TONES}])(?![\w{_MARKS}])|(?<![qQ])([uU])([yY])([{_TONES}])(?![\w{_MARKS}])"
)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _move_tone(m: re.Match[str]) -> str:
    if m.group(1):
        return m.group(1) + m.group(3) + m.group(2)
    return m.group(4) + m.group(6) + m.group(5)


def unify_tones(text: str) -> str:
    """NFC text with tone marks placed old-style. Same length as its NFC input, so offsets carry over."""
    return nfc(_NEW_STYLE.sub(_move_tone, unicodedata.normalize("NFD", text)))


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if ch in "đĐ":
        return "d" if ch == "đ" else "D"
    base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    return base if len(base) == 1 else ch


# Latin letters with marks live below U+2000 (Vietnamese: U+00C0–U+01B0, U+1EA0–U+1EF9); a table
# for str.translate folds at C speed, which ranking features need on every candidate.
_FOLD_TABLE = {cp: _fold_char(chr(cp)) for cp in range(0x80, 0x2000) if _fold_char(chr(cp)) != chr(cp)}


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def fold(text: str) -> str:
    """Strip diacritics (đ→d) character by character: the result has the input's length."""
    text = nfc(text)
    if text.isascii():
        return text
    folded = text.translate(_FOLD_TABLE)
    # What the table leaves (typographic quotes and dashes, rarer scripts) goes one character at
    # a time, and only those characters: news text has a few in every article.
    return folded if folded.isascii() else _NON_ASCII.sub(lambda m: _fold_char(m.group()), folded)


def has_diacritics(text: str) -> bool:
    return fold(text) != nfc(text)


def normalise(text: str) -> str:
    """The matching form of a piece of text: NFC, unified tone marks, lower case."""
    return unify_tones(text).lower()


def _align(text: str, pieces: list[str], base: int = 0) -> list[Span]:
    """Locate each piece in `text` in order; pieces are compared whitespace-insensitively."""
    spans: list[Span] = []
    cursor = 0
    for piece in pieces:
        parts = piece.split()
        if not parts:
            continue
        first = text.find(parts[0], cursor)
        if first < 0:
            continue  # the segmenter rewrote this piece; skip it rather than guess an offset
        end = first + len(parts[0])
        ok = True
        for part in parts[1:]:
            nxt = text.find(part, end)
            if nxt < 0 or text[end:nxt].strip():
                ok = False
                break
            end = nxt + len(part)
        if not ok:
            continue
        spans.append(Span(base + first, base + end, text[first:end]))
        cursor = end
    return spans


_loaded = threading.Event()
_load_lock = threading.Lock()


def _segmenter() -> None:
    """Load underthesea's models once, under a lock: they load lazily on first use, and two threads
    using them for the first time at once (a server's first concurrent requests) see a half-loaded
    model."""
    if not _loaded.is_set():
        with _load_lock:
            if not _loaded.is_set():
                _word_model()
                word_tokenize("khởi động")
                sent_tokenize("Khởi động. Xong.")
                _loaded.set()


WORD_MODEL = "ws_crf_vlsp2013_20230727"  # the folder underthesea's word_tokenize loads


def _word_model() -> None:
    """Load the word segmenter as underthesea's `FastCRFSequenceTagger.load` does, but read its
    two pickles with Python's own unpickler: joblib's pure-Python one takes ~100-160 ms for the
    72k-word dictionary, of every one-shot `de06qa ask`, against ~17 ms. The model is put where
    `word_tokenize` looks for it. Should this underthesea lay its model out differently, its own
    lazy load runs instead (tests/test_text.py checks the two segment alike)."""
    import pickle

    from underthesea.models.fast_crf_sequence_tagger import FastCRFSequenceTagger
    from underthesea.pipeline import word_tokenize as module
    from underthesea_core import CRFFeaturizer, CRFTagger

    folder = Path(module.__file__).parent / "models" / WORD_MODEL
    try:
        model = FastCRFSequenceTagger()
        with open(folder / model.path_features, "rb") as f:
            features = pickle.load(f)
        with open(folder / model.path_dictionary, "rb") as f:
            dictionary = pickle.load(f)
        model.estimator = CRFTagger()
        model.estimator.load(str(folder / model.path_model))
        model.featurizer = CRFFeaturizer(features, dictionary)
    except Exception:  # another layout: underthesea loads its own way
        return
    if module.word_tokenize_model is None:
        module.word_tokenize_model = model


def sentences(text: str) -> list[Span]:
    """Sentence spans. Lines (paragraphs, headlines, captions) never share a sentence."""
    _segmenter()
    out: list[Span] = []
    pos = 0
    for line in text.split("\n"):
        if line.strip():
            out.extend(_align(line, sent_tokenize(line), base=pos))
        pos += len(line) + 1
    return out


def words(text: str, base: int = 0) -> list[Span]:
    """underthesea word spans (a word may span several syllables: "Hà Giang")."""
    _segmenter()
    out: list[Span] = []
    pos = 0
    for line in text.split("\n"):
        if line.strip():
            out.extend(_align(line, word_tokenize(line), base=base + pos))
        pos += len(line) + 1
    return out


def tagged_words(text: str) -> list[tuple[Span, str]]:
    """underthesea word spans with their part-of-speech tags (N noun, Nc classifier, Nu unit,
    M number, V verb, A adjective, CH punctuation …): what eval/fit_reader.py makes questions of."""
    _segmenter()
    out: list[tuple[Span, str]] = []
    pos = 0
    for line in text.split("\n"):
        if line.strip():
            cursor = 0  # a word the segmenter rewrote is skipped, as `words` skips it
            for word, tag in pos_tag(line):
                got = _align(line[cursor:], [word], base=pos + cursor)
                if got:
                    out.append((got[0], tag))
                    cursor = got[0].end - pos
        pos += len(line) + 1
    return out


_TOKEN_CHARS = re.compile(r"\w", re.UNICODE)
_SYLLABLE = re.compile(r"[\w]+(?:[.,/][\w]+)*", re.UNICODE)


def word_terms(spans: list[Span]) -> list[str]:
    """Index terms from word spans: normalised, syllables joined by "_", punctuation dropped."""
    return ["_".join(normalise(s.text).split()) for s in spans if _TOKEN_CHARS.search(s.text)]


def folded_terms(text: str) -> list[str]:
    """Accent-folded syllables plus adjacent-syllable bigrams ("ha", "giang", "ha_giang")."""
    syl = [fold(m.group()).lower() for m in _SYLLABLE.finditer(nfc(text))]
    return syl + [f"{a}_{b}" for a, b in zip(syl, syl[1:])]


# Question words and function words that carry no topic (folded, lower case).
STOPWORDS = frozenset(
    [
        "co",
        "bao",
        "nhieu",
        "la",
        "cua",
        "cac",
        "nhung",
        "duoc",
        "o",
        "tai",
        "va",
        "trong",
        "the",
        "nao",
        "ai",
        "gi",
        "may",
        "khong",
        "da",
        "khi",
        "dau",
        "thi",
        "nay",
        "do",
        "voi",
        "cho",
        "den",
        "tu",
        "ve",
        "theo",
        "ra",
        "mot",
        "moi",
        "tren",
        "hay",
        "hoac",
        "ma",
        "nen",
        "vi",
        "sao",
        "bi",
        "de",
        "khac",
        "so",
        "luong",
        "hien",
        "nay",
        "what",
        "how",
        "many",
        "much",
        "who",
        "when",
        "where",
        "which",
        "is",
        "are",
        "was",
        "were",
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "for",
        "to",
        "by",
        "does",
        "do",
        "did",
        "has",
        "have",
        "had",
        "with",
        "from",
        "as",
        "at",
        "and",
        "or",
        "its",
        "it",
        "this",
        "that",
        "there",
        "their",
        "province",
    ]
)


def content_terms(question: str) -> list[str]:
    """Folded syllables of the question that carry its topic."""
    return [t for t in re.findall(r"\w+", fold(normalise(question))) if t not in STOPWORDS]
