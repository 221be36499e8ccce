"""What the reader reads: a question and a context cut into units, tokenised, in windows.

Training (eval/fit_reader.py) and serving (reader/__init__.py) build windows with this one module,
so the model sees the same input in both. A context is split into units (runs of letters/digits, or
one punctuation mark) and each unit is tokenised on its own: a token always belongs to exactly one
unit, so a predicted span maps back to character offsets `[unit_start, unit_end)` of the context,
snapped to syllable boundaries, and `context[start:end]` round-trips any answer that starts and ends
on unit boundaries (NFKC inside the tokenizer never moves an offset: offsets come from the units).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from de06qa.figures import NUM

# Letters/digits with the marks inside them ("88", "Hà", "1.818" is three units: the dot is one).
UNIT = re.compile(r"\w+|[^\w\s]")
MAX_LEN = 192  # tokens per window, question and specials included
MAX_QUESTION = 48  # question tokens kept
MAX_ANSWER_UNITS = 40  # a span never covers more units than this
# XLM-R's pair layout: <s> question </s></s> context </s>
CLS, PAD, SEP = 0, 1, 2
QUERY_PREFIX = "query: "


# A figure as articles write it: "1.306.180", "911/1.109", "88,6%", "4/63".
FIGURE = re.compile(rf"{NUM}(?:/{NUM})*%?")


def units(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in UNIT.finditer(text)]


def whole_figures(text: str, start: int, end: int) -> tuple[int, int]:
    """The span [start, end) of `text` widened so that it cuts no figure: units split a figure at
    its marks, and the model can end a span at "1.818" of "1.818/1.876" or start it at "180" of
    "1.306.180"; an answer holds the figure the article gives, whole."""
    for m in FIGURE.finditer(text):
        if m.start() < start < m.end():
            start = m.start()
        if m.start() < end < m.end():
            end = m.end()
    return start, end


@dataclass(frozen=True)
class Window:
    """One model input: token ids and, for every context token, the unit it belongs to."""

    ids: tuple[int, ...]
    context_at: int  # index of the first context token
    token_unit: tuple[int, ...]  # unit index (into the context's units) of each context token
    first_unit: int  # the window covers units first_unit .. last_unit (inclusive)
    last_unit: int


Pieces = Callable[[str], list[int]]


class UnitTokens:
    """Token ids of units, memoised: news repeats its syllables, so most units are seen before."""

    def __init__(self, pieces: Pieces) -> None:
        self._pieces = pieces
        self._memo: dict[str, tuple[int, ...]] = {}

    def __call__(self, unit: str) -> tuple[int, ...]:
        got = self._memo.get(unit)
        if got is None:
            got = self._memo[unit] = tuple(self._pieces(unit))
            if len(self._memo) > 500_000:  # bounded: a long-running server meets endless numbers
                self._memo.clear()
        return got

    def question(self, question: str) -> list[int]:
        return list(self._pieces(QUERY_PREFIX + question))[:MAX_QUESTION]


def windows(
    question_ids: Sequence[int],
    context: str,
    spans: Sequence[tuple[int, int]],
    tokens: UnitTokens,
    max_len: int = MAX_LEN,
) -> list[Window]:
    """The context's units in windows of at most `max_len` tokens with the question; consecutive
    windows overlap by about half a window so an answer near an edge is whole in one of them."""
    unit_ids = [tokens(context[a:b]) for a, b in spans]
    budget = max_len - len(question_ids) - 4
    head = (CLS, *question_ids, SEP, SEP)
    out: list[Window] = []
    u = 0
    n = len(spans)
    while u < n:
        ids: list[int] = list(head)
        tu: list[int] = []
        v = u
        while v < n and len(tu) + len(unit_ids[v]) <= budget:
            ids += unit_ids[v]
            tu += [v] * len(unit_ids[v])
            v += 1
        if v == u:  # one unit longer than a window (a garbage run): cut it
            ids += unit_ids[u][:budget]
            tu += [u] * min(len(unit_ids[u]), budget)
            v = u + 1
        ids.append(SEP)
        out.append(Window(tuple(ids), len(head), tuple(tu), u, v - 1))
        if v >= n:
            break
        # next window starts half-way through this one (by tokens)
        half = tu[len(tu) // 2] if tu else v
        u = max(half, u + 1)
    return out


def batch(ws: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, attention mask), padded to the longest window."""
    width = max(len(w.ids) for w in ws)
    ids = np.full((len(ws), width), PAD, np.int64)
    mask = np.zeros((len(ws), width), np.int64)
    for i, w in enumerate(ws):
        ids[i, : len(w.ids)] = w.ids
        mask[i, : len(w.ids)] = 1
    return ids, mask


def unit_bounds(w: Window) -> tuple[np.ndarray, np.ndarray]:
    """Token positions (in the window) where a unit starts, and where one ends: the only places a
    span may start or end."""
    tu = np.asarray(w.token_unit)
    if not len(tu):
        return np.zeros(0, bool), np.zeros(0, bool)
    starts = np.ones(len(tu), bool)
    starts[1:] = tu[1:] != tu[:-1]
    ends = np.ones(len(tu), bool)
    ends[:-1] = tu[1:] != tu[:-1]
    return starts, ends


def best_span(
    w: Window, start_logits: np.ndarray, end_logits: np.ndarray, max_units: int = MAX_ANSWER_UNITS
) -> tuple[float, int, int]:
    """(score, first unit, last unit) of the best span inside the window's context: start at a
    unit's first token, end at a unit's last token, at most `max_units` units long."""
    c = w.context_at
    n = len(w.token_unit)
    if n == 0:
        return -np.inf, -1, -1
    s = np.asarray(start_logits[c : c + n], np.float64)
    e = np.asarray(end_logits[c : c + n], np.float64)
    starts, ends = unit_bounds(w)
    s = np.where(starts, s, -np.inf)
    e = np.where(ends, e, -np.inf)
    tu = np.asarray(w.token_unit)
    # score[i, j] = s[i] + e[j] for i <= j within max_units units
    score = s[:, None] + e[None, :]
    ui, uj = tu[:, None], tu[None, :]
    ok = (uj >= ui) & (uj - ui < max_units)
    score = np.where(ok, score, -np.inf)
    flat = int(np.argmax(score))
    i, j = divmod(flat, n)
    return float(score[i, j]), int(tu[i]), int(tu[j])
