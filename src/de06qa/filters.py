"""Search filters: provinces (a 2025 merged name covers its former provinces) and a date range.

Filters apply before ranking: a backend only retrieves chunks of articles that pass them, so `k`
results come back whenever k matching passages exist."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cached_property

from de06qa.documents import Article
from de06qa.errors import BadQuery
from de06qa.gazetteer import covered_by, find_provinces

SORTS = ("relevance", "date")
# YYYY, YYYY-MM or YYYY-MM-DD; also the API schema's pattern for since/until.
DATE_PATTERN = r"^(19|20)\d{2}(-(0?[1-9]|1[0-2])(-(0?[1-9]|[12]\d|3[01]))?)?$"
_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")


@dataclass(frozen=True)
class Filters:
    provinces: tuple[str, ...] = ()  # as asked, canonical names (what the page shows as active)
    since: str | None = None  # ISO yyyy-mm-dd, inclusive
    until: str | None = None  # ISO yyyy-mm-dd, inclusive
    # The provinces as named, without their 2025 families (compare reads one province at a time).
    exact: bool = False

    @property
    def active(self) -> bool:
        return bool(self.provinces or self.since or self.until)

    @property
    def dated(self) -> bool:
        return bool(self.since or self.until)

    @cached_property  # read once per article when a filter's rows are computed
    def covered(self) -> frozenset[str]:
        """Pre-2025 provinces the province filter accepts (a merged name stands for its family)."""
        if self.exact:
            return frozenset(self.provinces)
        return frozenset(p for name in self.provinces for p in covered_by(name))

    def matches(self, article: Article) -> bool:
        if self.provinces and not (self.covered & set(article.provinces)):
            return False
        if self.dated:
            if article.date is None:
                return False  # an undated article cannot be shown to be in the range
            if self.since and article.date < self.since:
                return False
            if self.until and article.date > self.until:
                return False
        return True

    def to_dict(self) -> dict[str, object]:
        return {"province": list(self.provinces), "since": self.since, "until": self.until}


def _day(value: str, end: bool, name: str) -> str:
    """An ISO date; a year ("2024") or a month ("2024-03") means its first day for `since` and
    its last day for `until`; a day past the month's end ("2024-02-30") means its last day."""
    m = _DATE.match(value.strip())
    try:
        if not m:
            raise ValueError
        y, mo, d = int(m[1]), int(m[2]) if m[2] else None, int(m[3]) if m[3] else None
        if mo is None:
            mo, d = (12, 31) if end else (1, 1)
        elif d is None:
            d = calendar.monthrange(y, mo)[1] if end else 1
        elif 1 <= mo <= 12 and 28 < d <= 31:
            d = min(d, calendar.monthrange(y, mo)[1])
        return date(y, mo, d).isoformat()
    except ValueError:
        raise BadQuery(date_error(name, value)) from None


def date_error(name: str, value: object) -> str:
    return f"{name}={value!r} is not a date; use YYYY-MM-DD (or YYYY-MM, YYYY), e.g. {name}=2024-03-01"


def parse_filters(
    provinces: Iterable[str] = (), since: str | None = None, until: str | None = None
) -> Filters:
    """Filters from what a user typed; raises BadQuery naming the value that is wrong."""
    names: list[str] = []
    for value in provinces:
        if not value.strip():
            continue
        found = find_provinces(value)
        if not found:
            raise BadQuery(
                f"province={value!r} is not a Vietnamese province; use a name such as 'Hà Giang' or 'Tuyên Quang'"
            )
        names.extend(found)
    s = _day(since, False, "since") if since else None
    u = _day(until, True, "until") if until else None
    # since after until is an empty range, not an error (a search engine's range query returns
    # nothing); the CLI says so, the page shows that no passage matches.
    return Filters(tuple(dict.fromkeys(names)), s, u)


def empty_range(f: Filters) -> bool:
    return bool(f.since and f.until and f.since > f.until)
