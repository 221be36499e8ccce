"""Marks for questions typed without them: "ha giang co bao nhieu dich vu cong" → "hà giang có
bao nhiêu dịch vụ công". The embedder and the reader read Vietnamese with its marks far better
than without (their training text has them), so an unmarked question is read with its likeliest
marks: each syllable's marked forms, chosen together by how often adjacent syllables follow each
other in general news and in training questions (`models/accents-v1.npz`, fitted by
eval/fit_accents.py). The user's question and the lexical fields stay as typed; a question that
is not Vietnamese (English) or already has marks is left alone.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from de06qa.errors import ModelUnavailable
from de06qa.text import fold, has_diacritics, normalise

ACCENTS_FILE = "accents-v1.npz"
# A Vietnamese syllable without marks: onset, one to three vowels, coda. English words mostly fail
# it ("how", "many", "online"), which is how an English question is told from an unmarked one.
_VIETNAMESE = re.compile(
    r"(ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?[aeiouy]{1,3}(ng|nh|ch|[cmnpt])?"
)
_LETTERS = re.compile(r"[^\W\d_]+")
# Stretches between punctuation or digits: syllables adjacent across them are no pair.
_STRETCH = re.compile(r"[^\W\d_]+(?:[ \t]+[^\W\d_]+)*")
VIETNAMESE_SHARE = 0.8  # of a question's words, for it to be read as unmarked Vietnamese
FORMS = 8  # marked forms of a syllable weighed, the commonest first
SMOOTH = 20.0  # pseudo-count of the single-syllable estimate in a pair's (interpolation)


def unmarked_vietnamese(text: str) -> bool:
    """No marks, and most words could be Vietnamese syllables (an English question's cannot)."""
    if has_diacritics(text):
        return False
    words = [w.lower() for w in _LETTERS.findall(text)]
    return bool(words) and sum(bool(_VIETNAMESE.fullmatch(w)) for w in words) >= VIETNAMESE_SHARE * len(words)


def with_marks(text: str) -> str:
    """What the models read for a question: as typed, or with its likeliest marks when typed
    without (the packaged counts load on the first such question, ~0.6 s)."""
    if not unmarked_vietnamese(text):
        return text
    return AccentModel.packaged().restore(text)


def syllables(text: str) -> list[list[str]]:
    """Runs of adjacent syllables in their matching form (lower case, tones old-style)."""
    return [m.group().split() for m in _STRETCH.finditer(normalise(text))]


def write_counts(path: Path, one: dict[str, int], two: dict[tuple[str, str], int]) -> None:
    """Syllables and pairs ("a b") as one newline-joined UTF-8 array beside their counts: loads in a
    fraction of the time half a million parsed lines take."""
    keys = [*one, *(f"{a} {b}" for a, b in two)]
    counts = np.array([*one.values(), *two.values()], dtype=np.int32)
    np.savez_compressed(path, keys=np.frombuffer("\n".join(keys).encode(), np.uint8), counts=counts)


class AccentModel:
    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts  # syllables and pairs ("a b")
        one = {k: n for k, n in counts.items() if " " not in k}
        self._total = float(sum(one.values()))
        forms: dict[str, list[str]] = {}
        for s in sorted(one, key=lambda s: -one[s]):
            forms.setdefault(fold(s), []).append(s)
        self._forms = {k: v[:FORMS] for k, v in forms.items()}

    @classmethod
    def packaged(cls) -> AccentModel:
        return _packaged()

    @classmethod
    def read(cls, path: Path) -> AccentModel:
        with np.load(path) as z:
            keys = z["keys"].tobytes().decode().split("\n")
            return cls(dict(zip(keys, z["counts"].tolist())))

    def restore(self, text: str) -> str:
        """`text` with the likeliest marks on its syllables (whether to restore is `with_marks`'s call)."""
        out = list(text)
        for m in _STRETCH.finditer(text):
            starts = [m.start() + w.start() for w in re.finditer(r"\S+", m.group())]
            run = [w.lower() for w in m.group().split()]
            for at, marked in zip(starts, self._best(run)):
                for i, ch in enumerate(marked):  # same length: NFC marks are in the letter
                    out[at + i] = ch.upper() if text[at + i].isupper() else ch
        return "".join(out)

    def _best(self, run: list[str]) -> list[str]:
        """Viterbi over each syllable's marked forms with interpolated pair estimates."""
        options = [self._forms.get(w, [w]) if _VIETNAMESE.fullmatch(w) else [w] for w in run]
        scores = {c: self._log_one(c) for c in options[0]}
        back: list[dict[str, str]] = []
        for cands in options[1:]:
            step, link = {}, {}
            for c in cands:
                prev, s = max(
                    ((p, ps + self._log_pair(p, c)) for p, ps in scores.items()), key=lambda t: t[1]
                )
                step[c], link[c] = s, prev
            scores = step
            back.append(link)
        best = max(scores, key=scores.__getitem__)
        path = [best]
        for link in reversed(back):
            path.append(link[path[-1]])
        return path[::-1]

    def _log_one(self, c: str) -> float:
        return math.log((self._counts.get(c, 0) + 0.5) / self._total)

    def _log_pair(self, p: str, c: str) -> float:
        n, prior = self._counts.get, (self._counts.get(c, 0) + 0.5) / self._total
        return math.log((n(f"{p} {c}", 0) + SMOOTH * prior) / (n(p, 0) + SMOOTH))


def counts_file() -> Path:
    return Path(str(resources.files("de06qa") / "models" / ACCENTS_FILE))


@lru_cache(maxsize=1)
def _packaged() -> AccentModel:
    path = counts_file()
    if not path.exists():
        raise ModelUnavailable(
            f"{path} is missing (marks for questions typed without them); reinstall de06qa, "
            "or set DE06QA_RESTORE_MARKS=0 to read such questions as typed"
        )
    return AccentModel.read(path)
