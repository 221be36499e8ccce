"""The Milvus backend against a real Milvus Lite server on 127.0.0.1, started and stopped here
(milvus-lite 2.5.1 runs Milvus's C++ core): same answers as the embedded backend, filters pushed
down, rebuilds that never leave readers on a half-written collection, and a server that goes away
and comes back (slow: real model)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from de06qa.config import Settings
from de06qa.evaluation import load_questions
from de06qa.filters import parse_filters
from de06qa.indexing import build_index
from de06qa.search import Searcher

from .conftest import ROOT, SEEDS

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("de06qa"))


class LiteServer:
    """A Milvus Lite server bound to 127.0.0.1 on a free port (stop() and start() keep its data)."""

    def __init__(self, path: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.path = path
        self.uri = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> None:
        from milvus_lite.server import Server

        self._server = Server(str(self.path), address=f"127.0.0.1:{self.port}")
        assert self._server.start(), "milvus lite server did not start"
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise AssertionError("milvus lite server is not listening")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteServer]:
    server = LiteServer(tmp_path_factory.mktemp("milvus") / "milvus.db")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def built(milvus: LiteServer, real_settings: Settings, real_embedder, real_searcher, tmp_path_factory):  # type: ignore[no-untyped-def]
    settings = real_settings.with_(
        index_dir=tmp_path_factory.mktemp("mi") / "index",
        backend="milvus",
        milvus_uri=milvus.uri,
        reload_poll_s=0.3,
    )
    build_index(settings, SEEDS, real_embedder)
    return settings


def test_milvus_answers_as_the_embedded_backend_does(built: Settings, real_embedder):
    via_milvus = Searcher.open(built, real_embedder)
    local = Searcher.open(built.with_(backend="embedded"), real_embedder)
    assert type(via_milvus.backend).__name__ == "MilvusBackend"
    questions = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl")][::6]
    for q in questions:
        a, b = via_milvus.search(q, 5), local.search(q, 5)
        assert [p.chunk.chunk_id for p in a.passages] == [p.chunk.chunk_id for p in b.passages], q
        assert a.answer == b.answer, q
    # filters run inside Milvus: only the matching articles' chunks come back, k of them
    f = parse_filters(["Tuyên Quang"])
    res = via_milvus.search("chuyển đổi số", 5, filters=f)
    assert len(res.passages) == 5 and {p.article.doc_id for p in res.passages} == {"002_956fdc6dbb6455d8"}
    dated = via_milvus.search("dịch vụ công", 10, filters=parse_filters((), "2024", "2024"))
    assert dated.passages and all((p.article.date or "").startswith("2024") for p in dated.passages)


def test_a_rebuild_switches_collections_and_a_killed_one_leaves_readers_on_the_old(
    built: Settings, real_embedder, milvus
):
    from pymilvus import MilvusClient

    from de06qa import store
    from de06qa.backends.milvus import write_collection

    before = store.load(built.index_dir).manifest["milvus"]["collection"]
    # A build killed after writing its collection but before its index folder: readers stay on
    # the folder's collection.
    data = store.load(built.index_dir)
    leftover = write_collection(
        milvus.uri, built.collection, [["x"]], [["x"]], data.dense.vectors()[:1], [()], [None]
    )
    s = Searcher.open(built, real_embedder)
    assert (
        s.backend.collection == before and s.search("Hà Giang có bao nhiêu dịch vụ công toàn trình?").answer
    )
    # The next build writes a new collection, keeps the previous one for servers not yet
    # reloaded, and drops the leftover.
    build_index(built, SEEDS, real_embedder, rebuild=True)
    after = store.load(built.index_dir).manifest["milvus"]["collection"]
    client = MilvusClient(milvus.uri)
    names = set(client.list_collections())
    client.close()
    assert after != before and {after, before} <= names and leftover not in names
    assert (
        Searcher.open(built, real_embedder)
        .search("Hà Giang có bao nhiêu dịch vụ công toàn trình?")
        .answer.text
        == "665"
    )


def test_milvus_down_is_one_line_and_503_and_the_server_recovers(built: Settings, real_embedder, milvus):
    from fastapi.testclient import TestClient

    from de06qa.api import create_app

    env = {
        **os.environ, "DE06QA_CACHE_DIR": str(built.cache_dir), "DE06QA_INDEX_DIR": str(built.index_dir),
        "DE06QA_BACKEND": "milvus",
    }  # fmt: skip
    with TestClient(create_app(built, real_embedder)) as client:
        assert (
            client.get("/search", params={"q": "Hà Giang có bao nhiêu dịch vụ công toàn trình?"}).status_code
            == 200
        )
        milvus.stop()
        try:
            r = client.get("/search", params={"q": "Hà Giang có bao nhiêu dịch vụ công toàn trình?"})
            assert r.status_code == 503 and "Milvus" in r.json()["detail"], r.text
            h = client.get("/health")
            assert h.status_code == 503 and "Milvus" in h.json()["reason"]
            cli = subprocess.run([EXE, "ask", "x"], env=env, capture_output=True, text=True, timeout=120)
            assert cli.returncode == 2 and "Traceback" not in cli.stderr
            assert len(cli.stderr.strip().splitlines()) == 1 and "Milvus" in cli.stderr, cli.stderr
        finally:
            milvus.start()
        deadline = time.time() + 60
        while time.time() < deadline:
            r = client.get("/search", params={"q": "Hà Giang có bao nhiêu dịch vụ công toàn trình?"})
            if r.status_code == 200:
                break
            time.sleep(0.5)
        assert r.status_code == 200 and r.json()["answer"]["text"] == "665"
        assert client.get("/health").status_code == 200
