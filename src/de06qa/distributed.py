"""Builds spread over a Dask distributed cluster: the only module that imports dask.

Embedding is what a build spends its time on, and it splits cleanly: the passages are cut into
partitions, each worker loads the model once (kept in the worker process) and embeds the
partitions it is given. Reading, chunking, BM25 and writing the index folder stay with the
command; with a Milvus server, each worker chunks, embeds and writes its share of the articles
into Milvus itself (`spread`), and the command only publishes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

import numpy as np

from de06qa.config import Settings
from de06qa.embedding import Embedder, Profile, Progress, create_embedder
from de06qa.errors import ClusterUnavailable, De06qaError
from de06qa.onnx_runtime import available_cores

# Texts per task: big enough that a task's overhead (~ms) is small against embedding it (~seconds),
# small enough that progress moves and workers finish together.
PARTITION = 256

T = TypeVar("T")
R = TypeVar("R")
_WORKER_MODELS: dict[tuple[str, str, str, str], Embedder] = {}


def _on_worker(settings: Settings, fn: Callable[[Embedder, T], R], part: T) -> R:
    """Runs on a worker: the model is loaded on the worker's first task and reused after."""
    key = (settings.model, settings.runtime, settings.build_precision, str(settings.cache_dir))
    model = _WORKER_MODELS.get(key)
    if model is None:
        model = _WORKER_MODELS[key] = create_embedder(settings)
    return fn(model, part)


def _embed(model: Embedder, texts: list[str]) -> np.ndarray:
    return np.asarray(model.embed_passages(texts), dtype=np.float32)


class DaskEmbedder:
    """An Embedder whose passages are embedded on a Dask cluster (questions stay local)."""

    def __init__(self, local: Embedder, settings: Settings, client: object) -> None:
        self._local = local
        self._settings = settings
        self._client = client
        self.model_id: str = local.model_id
        self.profile: Profile = local.profile
        self.runtime: str = local.runtime

    @property
    def dim(self) -> int:
        return self._local.dim

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._local.embed_queries(texts)

    def embed_passages(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        parts = [texts[i : i + PARTITION] for i in range(0, len(texts), PARTITION)]
        done = self.spread(_embed, parts, [len(p) for p in parts], progress)
        return np.concatenate(done)

    def spread(
        self,
        fn: Callable[[Embedder, T], R],
        parts: list[T],
        sizes: list[int] | None = None,
        progress: Progress | None = None,
    ) -> list[R]:
        """fn(the worker's model, part) for every part, run on the workers; results in order
        (`fn` must be importable by the workers: a module-level function or a partial of one)."""
        from distributed import as_completed

        _ = self.dim  # converts/exports the model into this machine's cache once, before the workers look
        # Settings are a few hundred bytes: sent with each task (a scattered copy shares its key
        # between builds and is released under a later build's feet).
        n = len(parts)
        futures = self._client.map(_on_worker, [self._settings] * n, [fn] * n, parts, pure=False)  # type: ignore[attr-defined]
        index = {f.key: i for i, f in enumerate(futures)}
        out: list[R | None] = [None] * n
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            i = index[future.key]
            try:
                out[i] = future.result()
            except De06qaError:
                raise
            except Exception as e:  # a worker's failure arrives as whatever it raised there
                raise ClusterUnavailable(f"a Dask worker failed ({type(e).__name__}: {e})") from None
            if progress:
                progress(sizes[i] if sizes else 1)
        return [o for o in out if o is not None]


@contextmanager
def cluster_embedder(
    local: Embedder, settings: Settings, scheduler: str | None = None, workers: int | None = None
) -> Iterator[DaskEmbedder]:
    """A DaskEmbedder on the cluster at `scheduler` (tcp://host:8786), or on a local cluster of
    `workers` processes bound to 127.0.0.1 that is shut down afterwards."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterUnavailable(
            "distributed builds need dask: pip install 'de06qa[dask]' (or run without --workers)"
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as e:
            raise ClusterUnavailable(
                f"cannot reach the Dask scheduler at {scheduler} ({e}); start it with `dask scheduler` "
                "and workers with `dask worker`, or use --workers N for a local cluster"
            ) from None
        with client:
            yield DaskEmbedder(local, settings, client)
        return
    n = workers or 1
    # One ONNX Runtime thread pool per worker: together they use the cores once, not n times over.
    per_worker = replace(settings, threads=max(1, math.floor(available_cores() / n)))
    with (
        _quiet("distributed"),
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        yield DaskEmbedder(local, per_worker, client)


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only errors from `name`'s loggers until the block ends, teardown included: LocalCluster's
    own silencing ends before its shutdown, which logs closed comms (with their tracebacks) at
    INFO when a worker goes first, noise a user would read as a failed build."""
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)
