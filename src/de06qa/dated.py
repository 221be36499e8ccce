"""Which of several dated answers to give: in an archive a figure is reported many times, and the
article most like the question is often an old one.

Given the answers that different articles give to one question (each with the date its figure
holds for, `figures.as_of_in`), the answer is the newest one, or, for a question that names a time,
the one for that time (else the closest before it); the rest are listed newest first, and two that
give different figures for the same date are a conflict, said rather than settled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol

from de06qa.figures import figure_at, last_day

# The kinds of question whose answer is a figure that changes over time (query.Query.kind).
FIGURE_KINDS = frozenset({"count", "percent", "money", "rank", "duration"})


class Dated(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def as_of(self) -> str | None: ...
    @property
    def confidence(self) -> float: ...


def _within(when: str, asked: str) -> bool:
    """Whether a date of any precision falls in the period the question asked for ("2023-06-30"
    in "2023", "2023-06" in "2023-06")."""
    return when.startswith(asked) or (len(asked) > len(when) and asked.startswith(when))


def choose(answers: Sequence[Dated], asked: str | None) -> int:
    """The index of the answer to give: the newest; for a question naming a time, the latest within
    that period, else the latest before it. answers[0] is the one the reader likes best: it wins
    ties, and stays when it is undated (nothing says it is older) or nothing fits the time asked."""
    best = answers[0]
    if best.as_of is None:
        return 0
    dated = [i for i, a in enumerate(answers) if a.as_of is not None]

    def strength(i: int) -> tuple[date, bool, float]:
        # latest date first; then the reader's first choice; then the more confident
        return last_day(answers[i].as_of or ""), i == 0, answers[i].confidence

    if asked is not None:
        # the figure for the period asked is its latest within it ("năm 2023": as of its end)
        within = [i for i in dated if _within(answers[i].as_of or "", asked)]
        if within:
            return max(within, key=strength)
        before = [i for i in dated if last_day(answers[i].as_of or "") <= last_day(asked)]
        return max(before, key=strength) if before else 0
    return max(dated, key=strength)


def number_of(text: str) -> float | None:
    """The answer's figure as a number, read as `compare` reads a row's (`figures.figure_at`:
    "hơn 1,2 triệu" is 1 200 000); None when it holds none."""
    fig = figure_at(text, 0, len(text))
    return fig.number if fig else None


def conflict(answers: Sequence[Dated], chosen: int) -> bool:
    """Whether another answer gives a different figure for the chosen answer's date."""
    a = answers[chosen]
    if a.as_of is None:
        return False
    mine = number_of(a.text)
    return any(b.as_of == a.as_of and number_of(b.text) != mine for i, b in enumerate(answers) if i != chosen)


def newest_first(answers: Sequence[Dated]) -> list[int]:
    """Indices of `answers`, newest first, undated last (each group in the given order)."""

    def key(i: int) -> tuple[bool, int]:
        when = answers[i].as_of
        return when is None, -last_day(when).toordinal() if when else 0

    return sorted(range(len(answers)), key=key)


def shown(when: str | None) -> str:
    """An ISO date as Vietnamese readers write it: "03/12/2023", "12/2023", "2023"."""
    return "/".join(reversed(when.split("-"))) if when else ""
