"""Convert a SQuAD-format JSON file (the layout of most Vietnamese QA datasets, e.g. UIT-ViQuAD)
into a corpus folder and a question file that `de06qa index` and `de06qa eval` read.

Each SQuAD article (`data[i]`) becomes one text file: its title on the first line, then each
paragraph's context on its own line. Each question becomes one line of `questions.jsonl` with the
article as gold document and its answer texts as gold answers; `is_impossible` questions (SQuAD 2)
or questions without answers become kind "unanswerable".

With `split`, the questions are also divided by article (never inside one article, so nothing
about a held-out article is seen in fitting) into `questions.train.jsonl` (about that share of
the articles, chosen by a hash of the title: the same on every machine) and
`questions.heldout.jsonl`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from de06qa.errors import De06qaError
from de06qa.text import fold, nfc


@dataclass(frozen=True)
class Converted:
    corpus: Path
    questions: Path
    articles: int
    answerable: int
    unanswerable: int


def _slug(title: str, n: int) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", fold(nfc(title)).lower()).strip("_")[:40]
    return f"{n:04d}_{s or 'article'}"


def in_train(title: str, split: float) -> bool:
    """Whether an article belongs to the fitting part: a stable hash of its title below `split`."""
    h = int(hashlib.sha256(title.encode("utf-8")).hexdigest()[:8], 16) / 0x1_0000_0000
    return h < split


def convert(squad_file: Path, out: Path, split: float = 0.0) -> Converted:
    try:
        raw: dict[str, Any] = json.loads(squad_file.read_text(encoding="utf-8-sig"))
        data = raw["data"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise De06qaError(
            f"{squad_file} is not a SQuAD JSON file ({type(e).__name__}); expected "
            '{"data": [{"title": …, "paragraphs": [{"context": …, "qas": […]}]}]}'
        ) from e
    corpus = out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    parts: dict[str, list[str]] = {"train": [], "heldout": []}
    answerable = unanswerable = 0
    for n, article in enumerate(data):
        title = nfc(str(article.get("title") or f"Article {n}")).replace("_", " ").strip()
        doc_id = _slug(title, n)
        contexts = []
        part = parts["train" if in_train(title, split) else "heldout"]
        for para in article.get("paragraphs", []):
            # One paragraph per line: our sentence splitter never joins lines.
            contexts.append(" ".join(nfc(para["context"]).split()))
            for qa in para.get("qas", []):
                answers = sorted(
                    {" ".join(nfc(a["text"]).split()) for a in qa.get("answers", []) if a.get("text")}
                )
                impossible = bool(qa.get("is_impossible")) or not answers
                unanswerable += impossible
                answerable += not impossible
                record = {
                    "id": str(qa.get("id") or f"{doc_id}-{len(lines)}"),
                    "question": nfc(qa["question"]).strip(),
                    "kind": "unanswerable" if impossible else "direct",
                    "doc_id": None if impossible else doc_id,
                    "answers": [] if impossible else answers,
                }
                lines.append(json.dumps(record, ensure_ascii=False))
                part.append(lines[-1])
        (corpus / f"{doc_id}.txt").write_text("\n".join([title, *contexts]) + "\n", encoding="utf-8")
    questions = out / "questions.jsonl"
    questions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if split > 0:
        for name, rows in parts.items():
            (out / f"questions.{name}.jsonl").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return Converted(corpus, questions, len(data), answerable, unanswerable)
