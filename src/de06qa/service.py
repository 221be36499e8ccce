"""The running service's state: the current Searcher, reloaded when the index changes (a rebuilt
folder, or a new generation or update published in Milvus).

A reload builds a new Searcher beside the old one (the model stays loaded) and then swaps one
reference, so requests already running finish on the old index and none fails during the swap.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from de06qa.config import Settings
from de06qa.embedding import Embedder
from de06qa.errors import De06qaError, IndexMissing
from de06qa.reader import OnnxReader, Reader
from de06qa.search import Searcher

log = logging.getLogger(__name__)


class Service:
    def __init__(
        self, settings: Settings, embedder: Embedder | None = None, reader: Reader | None = None
    ) -> None:
        self.settings = settings
        self._embedder = embedder
        # one reader for every reload: its ONNX session stays loaded, as the embedder's does
        self._reader = reader or OnnxReader(settings)
        self._searcher: Searcher | None = None
        self._error: De06qaError | None = None
        self._loaded_at: str | None = None
        self._failed: object = None  # the index version that failed to load (not retried)
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the index (a failure is kept and reported as 503, not raised) and watch for rebuilds."""
        try:
            # The first search pays one-off costs (ONNX Runtime's allocations, the segmenter's
            # model, the ranker); pay them here, not in a user's first request.
            self.reload().search("khởi động")
        except De06qaError as e:
            log.warning("de06qa: no usable index yet: %s", e)
        if self.settings.reload_poll_s > 0:
            self._watcher = threading.Thread(target=self._watch, name="de06qa-index-watch", daemon=True)
            self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.reload_poll_s):
            s = self._searcher
            if s is None:
                # Nothing loaded yet (no index, or Milvus down): try again at every poll.
                try:
                    self.reload()
                    log.warning("de06qa: index loaded; now serving %s", self._loaded_at)
                except De06qaError:
                    pass
                continue
            stamp = s.backend.stamp()
            if stamp is not None and stamp != s.backend.loaded and stamp != self._failed:
                try:
                    self.reload()
                    log.warning("de06qa: index changed; now serving %s", self._loaded_at)
                except De06qaError as e:
                    # Keep serving the index already loaded; the next change is tried again.
                    log.warning(
                        "de06qa: index changed but cannot be loaded (%s); still serving the old one", e
                    )
                    self._failed = stamp

    # -- state ------------------------------------------------------------------------------------
    def reload(self) -> Searcher:
        with self._reload_lock:
            try:
                if self._embedder is None:
                    from de06qa.embedding import create_embedder

                    self._embedder = create_embedder(self.settings)
                searcher = Searcher.open(self.settings, self._embedder, reader=self._reader)
            except De06qaError as e:
                if self._searcher is None:
                    self._error = e
                raise
            self._searcher, self._error = searcher, None
            self._loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
            return searcher

    def searcher(self) -> Searcher:
        s = self._searcher
        if s is None:
            raise self._error or IndexMissing(f"no index loaded from {self.settings.index_dir}")
        return s

    def health(self) -> dict[str, Any]:
        s = self._searcher
        if s is None:
            reason = str(self._error or f"no index loaded from {self.settings.index_dir}")
            return {"status": "unavailable", "reason": reason, "index_dir": str(self.settings.index_dir)}
        try:
            s.backend.check()
        except De06qaError as e:
            return {"status": "unavailable", "reason": str(e), "index_dir": str(self.settings.index_dir)}
        m = s.backend.manifest
        return {
            "status": "ok",
            "model": m.get("model", {}).get("model"),
            "documents": s.backend.stats.documents,
            "chunks": s.backend.stats.chunks,
            "built_at": m.get("built_at"),
            "loaded_at": self._loaded_at,
            "index_dir": str(self.settings.index_dir),
        }
