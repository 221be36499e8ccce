"""The question's model and the answer reader, loaded on a second thread while a CLI command
goes on with its imports, the segmenter and the index (then asks one question, and the process
ends). Their tokenizer and ONNX Runtime sessions spend most of their ~0.5 s in native code that
releases the GIL, so on two cores the two no longer wait for each other (eval/bench.py's one-shot
`de06qa ask`). This module imports only what that loading needs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from de06qa.config import Settings
from de06qa.embedding import Embedder, create_embedder, exported
from de06qa.errors import ModelUnavailable
from de06qa.reader import OnnxReader, Reader, reader_file


@contextmanager
def loading_ahead(settings: Settings) -> Iterator[tuple[Embedder, Reader]]:
    """The embedder and the reader for `settings`, loading meanwhile. Each loads on first use
    under its own lock, so a question asked before they are ready waits for them. The thread is
    joined on the way out, error or not: a process never ends while it is inside native code.

    Only when both are already exported: a first use converts and exports them, one line each,
    and a command that then fails (no index) must print its error alone; on a first use the
    export, not the loading, is the time anyway."""
    embedder, reader = create_embedder(settings), OnnxReader(settings)
    loading = threading.Thread(
        target=_load, args=(settings, embedder, reader), name="de06qa-load", daemon=True
    )
    loading.start()
    try:
        yield embedder, reader
    finally:
        loading.join()


def _ready(settings: Settings) -> bool:
    try:
        return exported(settings) and reader_file(settings).exists()
    except ModelUnavailable:  # no reader weights: its first use says so
        return False


def _load(settings: Settings, embedder: Embedder, reader: Reader) -> None:
    # Checked here, not before the thread starts: it hashes the reader's weights (~20 ms).
    if not _ready(settings):
        return
    # A failure here is left to the first use, which raises it where the caller sees it.
    try:
        embedder.embed_queries(["khởi động"])
        reader.read([("khởi động", [])])
    except Exception:
        pass
