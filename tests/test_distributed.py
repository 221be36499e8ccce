"""Builds spread over a Dask cluster (a LocalCluster on 127.0.0.1 started and stopped here): the
index equals one built in this process (slow: real model in every worker)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from de06qa import store
from de06qa.indexing import build_index

from .conftest import SEEDS

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("de06qa"))


def test_index_built_on_two_dask_workers_equals_the_local_one(
    real_settings, real_embedder, real_searcher, tmp_path
):
    from de06qa.distributed import cluster_embedder

    settings = real_settings.with_(index_dir=tmp_path / "dask")
    with cluster_embedder(real_embedder, settings, workers=2) as spread:
        s = build_index(settings, SEEDS, spread)
    assert s.documents == 5
    local, remote = store.load(real_settings.index_dir), store.load(settings.index_dir)
    assert [c.chunk_id for c in remote.chunks] == [c.chunk_id for c in local.chunks]
    assert [(c.start, c.end) for c in remote.chunks] == [(c.start, c.end) for c in local.chunks]
    a, b = local.dense.vectors(), remote.dense.vectors()
    assert a.shape == b.shape
    assert float(np.min(np.sum(a * b, axis=1))) >= 0.9999
    assert float(np.min(np.sum(local.sentence_vectors * remote.sentence_vectors, axis=1))) >= 0.9999


def test_cli_index_with_workers_and_an_unreachable_scheduler(real_settings, real_searcher, tmp_path):
    env = {
        **os.environ,
        "DE06QA_CACHE_DIR": str(real_settings.cache_dir),
        "DE06QA_INDEX_DIR": str(tmp_path / "i"),
    }
    r = subprocess.run(
        [EXE, "index", str(SEEDS), "--workers", "2"], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert "Embedding on a local Dask cluster of 2 workers" in r.stderr and "Indexed 5 documents" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run(
        [EXE, "index", str(SEEDS), "--rebuild", "--dask-scheduler", "tcp://127.0.0.1:9"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    )
