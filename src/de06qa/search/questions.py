"""The analyse stage: a typed question checked, its marks restored (de06qa.accents), embedded and
analysed (query.py)."""

from __future__ import annotations

import re

from de06qa.accents import with_marks
from de06qa.embedding import Embedder
from de06qa.errors import BadQuery
from de06qa.query import Query, analyse
from de06qa.text import nfc

_SURROGATE = re.compile("[\ud800-\udfff]")
EMPTY_QUESTION = (
    'the question is empty; type a question, e.g. "Hà Giang có bao nhiêu dịch vụ công toàn trình?"'
)


def validate(query: str, max_chars: int) -> str:
    """The question as searched (NFC, stripped); BadQuery says what is wrong with it."""
    bad = _SURROGATE.search(query)
    if bad:
        # Python keeps bytes that are not UTF-8 (a Latin-1 terminal, a file in another
        # encoding) as lone surrogates; no model can read them.
        raise BadQuery(
            f"the question holds bytes that are not UTF-8 text (character {bad.start() + 1}); "
            "type it again, or convert the file to UTF-8"
        )
    q = nfc(query).strip()
    if not q:
        raise BadQuery(EMPTY_QUESTION)
    if len(q) > max_chars:
        raise BadQuery(f"the question has {len(q)} characters; the limit is {max_chars}")
    return q


def analyse_many(
    queries: list[str], embedder: Embedder, max_chars: int, restore_marks: bool = True, embed: bool = True
) -> list[Query]:
    """Validated and analysed questions; their embeddings (of the questions with their marks) in one
    call, none when `embed` is false (an empty index has nothing to compare them with)."""
    qs = [validate(q, max_chars) for q in queries]
    marked = [with_marks(q) for q in qs] if restore_marks else qs
    vecs = embedder.embed_queries(marked) if embed else None
    return [analyse(q, None if vecs is None else vecs[i], m) for i, (q, m) in enumerate(zip(qs, marked))]
