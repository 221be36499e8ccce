"""Build an index from a folder of articles: read → chunk → embed → lexical + dense → write, into
an index folder (folder.py) or into Milvus (milvus.py); the steps both share are in stages.py."""

from __future__ import annotations

import time
from pathlib import Path

from de06qa.backends import milvus_uri
from de06qa.config import Settings
from de06qa.embedding import Embedder
from de06qa.indexing.folder import build_folder
from de06qa.indexing.milvus import build_milvus
from de06qa.indexing.stages import BuildSummary, Report, context_terms, passage_text


def build_index(
    settings: Settings,
    source: Path,
    embedder: Embedder,
    report: Report | None = None,
    rebuild: bool = False,
) -> BuildSummary:
    """Index every readable article of `source` into `settings.index_dir`, or into Milvus with
    the Milvus backend. Incremental unless `rebuild`: articles whose content hash is unchanged keep
    their chunks and vectors; new and changed ones are chunked and embedded; deleted ones drop out."""
    t0 = time.perf_counter()
    uri = milvus_uri(settings)
    if uri:
        return build_milvus(settings, uri, source, embedder, report, rebuild, t0)
    return build_folder(settings, source, embedder, report, rebuild, t0)


__all__ = ["BuildSummary", "Report", "build_index", "context_terms", "passage_text"]
