"""The running service's state: the current Searcher, reloaded when the index folder changes.

A reload builds a new Searcher beside the old one (the model stays loaded) and then swaps one
reference, so requests already running finish on the old index and none fails during the swap.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from de06qa import store
from de06qa.config import Settings
from de06qa.embedding import Embedder
from de06qa.errors import BackendUnavailable, De06qaError, IndexMissing
from de06qa.search import Searcher

log = logging.getLogger(__name__)


def _stamp(settings: Settings) -> tuple[int, int] | None:
    """Identity of the manifest file: a rebuild swaps in a new folder, so inode or mtime changes."""
    try:
        st = (settings.index_dir / store.MANIFEST).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


class Service:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._searcher: Searcher | None = None
        self._error: De06qaError | None = None
        self._loaded_at: str | None = None
        self._stamp: tuple[int, int] | None = None
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
            stamp = _stamp(self.settings)
            # A backend server (Milvus) that was down at start is tried again at every poll.
            retry = self._searcher is None and isinstance(self._error, BackendUnavailable)
            if stamp is not None and (stamp != self._stamp or retry):
                try:
                    self.reload()
                    log.warning("de06qa: index changed on disk; now serving %s", self._loaded_at)
                except De06qaError as e:
                    # Keep serving the index already loaded; the next change is tried again.
                    log.warning(
                        "de06qa: index changed but cannot be loaded (%s); still serving the old one", e
                    )
                    self._stamp = stamp

    # -- state ------------------------------------------------------------------------------------
    def reload(self) -> Searcher:
        with self._reload_lock:
            stamp = _stamp(self.settings)
            try:
                if self._embedder is None:
                    from de06qa.embedding import create_embedder

                    self._embedder = create_embedder(self.settings)
                searcher = Searcher(store.load(self.settings.index_dir), self._embedder, self.settings)
            except De06qaError as e:
                if self._searcher is None:
                    self._error = e
                raise
            self._searcher, self._error, self._stamp = searcher, None, stamp
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
        m = s.data.manifest
        return {
            "status": "ok",
            "model": m.get("model", {}).get("model"),
            "documents": len(s.data.articles),
            "chunks": len(s.data.chunks),
            "built_at": m.get("built_at"),
            "loaded_at": self._loaded_at,
            "index_dir": str(self.settings.index_dir),
        }
