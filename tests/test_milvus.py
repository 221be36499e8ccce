"""The Milvus backend against a real Milvus Lite server on 127.0.0.1, started and stopped here
(milvus-lite 2.5.1 runs Milvus's C++ core): the index lives in Milvus alone (no index folder),
answers match the embedded backend's, filters are pushed down, updates change the collection in
place, a rebuild switches the pointer only when complete (a killed one leaves readers where they
were), a second build refuses while one runs, and a server that loses Milvus recovers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from de06qa.backends.milvus import MilvusBackend, MilvusIndex
from de06qa.backends.milvus import index as milvus_index
from de06qa.config import Settings
from de06qa.contract import search_json
from de06qa.errors import IndexBusy
from de06qa.evaluation import load_questions
from de06qa.filters import parse_filters
from de06qa.indexing import build_index
from de06qa.search import Searcher

from .conftest import ROOT, SEEDS, FakeEmbedder, FakeReader, StoppingEmbedder

EXE = str(Path(sys.executable).with_name("de06qa"))
HA_GIANG = "Hà Giang có bao nhiêu dịch vụ công toàn trình?"


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


def _collections(uri: str) -> set[str]:
    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    try:
        return set(client.list_collections())
    finally:
        client.close()


def _settings(milvus: LiteServer, tmp_path: Path, name: str, **kw: object) -> Settings:
    # index_dir does not exist: with Milvus nothing is read from or written to a folder.
    return Settings(
        index_dir=tmp_path / "no-index-here", backend="milvus", milvus_uri=milvus.uri, collection=name,
        reload_poll_s=0.3,
    ).with_(**kw)  # fmt: skip


# -- real model ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(milvus: LiteServer, real_settings: Settings, real_embedder, real_searcher, tmp_path_factory):  # type: ignore[no-untyped-def]
    settings = real_settings.with_(
        index_dir=tmp_path_factory.mktemp("mi") / "absent", backend="milvus", milvus_uri=milvus.uri,
        collection="seeds", reload_poll_s=0.3,
    )  # fmt: skip
    summary = build_index(settings, SEEDS, real_embedder)
    assert summary.documents == 5 and summary.chunks == real_searcher.backend.stats.chunks
    assert not settings.index_dir.exists()
    return settings


@pytest.mark.slow
def test_milvus_answers_as_the_embedded_backend_does(built: Settings, real_embedder, real_searcher):
    via_milvus = Searcher.open(built, real_embedder, reader=real_searcher.reader)
    assert type(via_milvus.backend).__name__ == "MilvusBackend"
    questions = [q.question for q in load_questions(ROOT / "eval" / "questions.jsonl")][::6]
    for q in questions:
        a, b = via_milvus.search(q, 5), real_searcher.search(q, 5)
        assert [p.chunk.chunk_id for p in a.passages] == [p.chunk.chunk_id for p in b.passages], q
        assert [p.chunk.text for p in a.passages] == [p.chunk.text for p in b.passages], q
        assert (a.answer and a.answer.text) == (b.answer and b.answer.text), q
        assert a.confidence == pytest.approx(b.confidence, abs=0.01), q
    # filters run inside Milvus: only the matching articles' chunks come back, k of them
    f = parse_filters(["Tuyên Quang"])
    res = via_milvus.search("chuyển đổi số", 5, filters=f)
    assert len(res.passages) == 5 and {p.article.doc_id for p in res.passages} == {"002_956fdc6dbb6455d8"}
    # a filter no article passes: no passages, no error
    none = via_milvus.search("dịch vụ công", 5, filters=parse_filters(["Cà Mau"]))
    assert none.passages == () and not none.answerable
    dated = via_milvus.search("dịch vụ công", 10, filters=parse_filters((), "2024", "2024"))
    assert dated.passages and all((p.article.date or "").startswith("2024") for p in dated.passages)
    assert (
        search_json(dated)["facets"]
        == search_json(real_searcher.search("dịch vụ công", 10, filters=parse_filters((), "2024", "2024")))[
            "facets"
        ]
    )


@pytest.mark.slow
def test_a_replica_serves_from_milvus_alone(built: Settings, real_embedder, real_searcher):
    """No index folder anywhere: /search, /documents and /health come from Milvus, over HTTP and
    in the CLI."""
    from fastapi.testclient import TestClient

    from de06qa.api import create_app

    with TestClient(create_app(built, real_embedder, real_searcher.reader)) as client:
        r = client.get("/search", params={"q": HA_GIANG})
        assert r.status_code == 200 and r.json()["answer"]["text"].split()[0] == "665", r.text
        docs = client.get("/documents").json()["documents"]
        local = {a.doc_id: a for a, _ in real_searcher.backend.documents()}
        assert {d["doc_id"] for d in docs} == set(local)
        assert all(
            d["chars"] == len(local[d["doc_id"]].text) and d["title"] == local[d["doc_id"]].title
            for d in docs
        )
        hit = r.json()["results"][0]
        one = client.get(f"/documents/{hit['doc_id']}").json()
        assert one["text"] == local[hit["doc_id"]].text
        assert one["text"][hit["start"] : hit["end"]] == hit["text"]
        h = client.get("/health").json()
        assert (
            h["status"] == "ok" and h["documents"] == 5 and h["chunks"] == real_searcher.backend.stats.chunks
        )
    env = {**os.environ, "DE06QA_CACHE_DIR": str(built.cache_dir)}
    out = subprocess.run(
        [EXE, "ask", HA_GIANG, "--backend", "milvus", "--milvus-uri", built.milvus_uri, "--collection", "seeds",
         "--index-dir", str(built.index_dir)],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0 and "665" in out.stdout, out.stderr
    assert not built.index_dir.exists()


@pytest.mark.slow
def test_milvus_down_is_one_line_and_503_and_the_server_recovers(
    built: Settings, real_embedder, real_reader, milvus
):
    from fastapi.testclient import TestClient

    from de06qa.api import create_app

    env = {
        **os.environ, "DE06QA_CACHE_DIR": str(built.cache_dir), "DE06QA_BACKEND": "milvus",
        "DE06QA_MILVUS_URI": milvus.uri, "DE06QA_COLLECTION": "seeds",
    }  # fmt: skip
    with TestClient(create_app(built, real_embedder, real_reader)) as client:
        assert client.get("/search", params={"q": HA_GIANG}).status_code == 200
        milvus.stop()
        try:
            r = client.get("/search", params={"q": HA_GIANG})
            assert r.status_code == 503 and "Milvus" in r.json()["detail"], r.text
            h = client.get("/health")
            assert h.status_code == 503 and "Milvus" in h.json()["reason"]
            assert client.get("/documents").status_code == 503
            cli = subprocess.run([EXE, "ask", "x"], env=env, capture_output=True, text=True, timeout=120)
            assert cli.returncode == 2 and "Traceback" not in cli.stderr
            assert len(cli.stderr.strip().splitlines()) == 1 and "Milvus" in cli.stderr, cli.stderr
        finally:
            milvus.start()
        deadline = time.time() + 60
        while time.time() < deadline:
            r = client.get("/search", params={"q": HA_GIANG})
            if r.status_code == 200:
                break
            time.sleep(0.5)
        assert r.status_code == 200 and r.json()["answer"]["text"].split()[0] == "665"
        assert client.get("/health").status_code == 200


# -- fake embedder: updates, rebuilds, locks --------------------------------------------------------


def test_an_update_changes_the_collection_in_place_and_a_running_server_follows(
    milvus: LiteServer, tmp_path: Path, seeds_copy: Path, monkeypatch
):
    from fastapi.testclient import TestClient

    from de06qa.api import create_app

    emb = FakeEmbedder()
    settings = _settings(milvus, tmp_path, "upd")
    first = build_index(settings, seeds_copy, emb)
    assert (first.embedded, first.documents) == (5, 5)
    gen = MilvusBackend(milvus.uri, "upd").collection
    with TestClient(create_app(settings, emb, FakeReader())) as client:
        assert "Quảng Trị" not in client.get("/search", params={"q": "Sóc Trăng phiếu lý lịch tư pháp"}).text
        # one article changed, one removed, one added
        changed = seeds_copy / "001_e543ea4addd9af9c.txt"
        text = changed.read_text(encoding="utf-8")
        fact = "Sóc Trăng đã cấp 4.321 phiếu lý lịch tư pháp qua VNeID.\n\nVPTU"
        changed.write_text(text.replace("\nVPTU", f"\n{fact}", 1), encoding="utf-8")
        (seeds_copy / "004_f8e44593c0f403ee.txt").unlink()
        (seeds_copy / "quang-tri.txt").write_text(
            "Quảng Trị đẩy mạnh Đề án 06\n\nTỉnh Quảng Trị đã kích hoạt 512.000 tài khoản định danh điện tử.\n",
            encoding="utf-8",
        )
        before = emb.passages_embedded
        s = build_index(settings, seeds_copy, emb)
        assert (s.embedded, s.reused, s.removed, s.documents) == (2, 3, 1, 5)
        # only the two new or changed articles were embedded (chunks + sentences)
        assert emb.passages_embedded - before < first.chunks
        b = MilvusBackend(milvus.uri, "upd")
        assert b.collection == gen, "an update changes the live collection in place"
        # the same content as a full build of the same folder, statistics included
        full = build_index(_settings(milvus, tmp_path, "full"), seeds_copy, FakeEmbedder())
        f = MilvusBackend(milvus.uri, "full")
        assert b.stats == f.stats and s.chunks == full.chunks and s.sentences == full.sentences
        assert sorted(c.chunk_id for c in b.chunks()) == sorted(c.chunk_id for c in f.chunks())
        terms = ("soc", "trang", "quang", "tri", "dinh", "danh", "dinh_danh", "4.321", "vneid")
        assert b.idf(terms) == f.idf(terms)
        assert {a.doc_id for a, _ in b.documents()} == {a.doc_id for a, _ in f.documents()}
        # written a batch at a time (one article each), the same generation as in one go
        monkeypatch.setattr("de06qa.indexing.stages.BATCH_CHARS", 3000)  # the seeds are 2-8k characters
        from de06qa.backends.milvus import MilvusIndex

        writes: list[int] = []
        write = MilvusIndex.write
        monkeypatch.setattr(
            MilvusIndex,
            "write",
            lambda self, gen, rows, *a: writes.append(len(rows)) or write(self, gen, rows, *a),
        )
        batched = build_index(_settings(milvus, tmp_path, "batched"), seeds_copy, FakeEmbedder())
        g = MilvusBackend(milvus.uri, "batched")
        assert (batched.chunks, batched.sentences, g.stats) == (full.chunks, full.sentences, f.stats)
        assert sorted(c.chunk_id for c in g.chunks()) == sorted(c.chunk_id for c in f.chunks())
        assert g.idf(terms) == f.idf(terms)
        assert len(writes) == 5 and sum(writes) == full.chunks  # one write per batch, never all at once
        monkeypatch.undo()
        # the running server sees the update without a restart
        deadline = time.time() + 30
        while time.time() < deadline:
            r = client.get(
                "/search", params={"q": "Quảng Trị kích hoạt bao nhiêu tài khoản định danh điện tử?"}
            )
            if r.json()["results"] and r.json()["results"][0]["doc_id"] == "quang-tri":
                break
            time.sleep(0.3)
        assert r.json()["results"][0]["doc_id"] == "quang-tri", r.text
        assert client.get("/documents/004_f8e44593c0f403ee").status_code == 404
        assert client.get("/health").json()["documents"] == 5
    # nothing changed: nothing written
    assert not build_index(settings, seeds_copy, emb).changed


def test_a_second_build_refuses_while_one_runs(milvus: LiteServer, tmp_path: Path, monkeypatch):
    settings = _settings(milvus, tmp_path, "busy")
    holder = MilvusIndex(milvus.uri, "busy")
    try:
        with holder.lock(), pytest.raises(IndexBusy, match=r"another de06qa index .* is writing busy"):
            build_index(settings, SEEDS, FakeEmbedder())
    finally:
        holder.close()
    # released: the next build goes ahead
    assert build_index(settings, SEEDS, FakeEmbedder()).documents == 5


def test_a_killed_rebuild_leaves_readers_on_the_old_collection(
    milvus: LiteServer, tmp_path: Path, monkeypatch
):
    settings = _settings(milvus, tmp_path, "kill")
    build_index(settings, SEEDS, FakeEmbedder())
    old = MilvusBackend(milvus.uri, "kill").collection
    # A rebuild in another process, killed (SIGKILL) after writing its new collection and before
    # publishing it.
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from tests.conftest import FakeEmbedder;"
        "from de06qa.backends import milvus as m;"
        "from de06qa.config import Settings;"
        "from de06qa.indexing import build_index;"
        "m.MilvusIndex.publish = lambda *a, **k: (print('written', flush=True), time.sleep(600));"
        "build_index(Settings(backend='milvus', milvus_uri=sys.argv[2], collection='kill'), "
        "__import__('pathlib').Path(sys.argv[3]), FakeEmbedder(), rebuild=True)"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", script, str(ROOT), milvus.uri, str(SEEDS)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "written"
        leftover = {
            c for c in _collections(milvus.uri) if c.startswith("kill_") and old not in c and c != "kill_meta"
        }
        assert leftover, "the killed build had written its collections"
        # while it holds the lock, another build refuses in one line
        env = {**os.environ, "DE06QA_CACHE_DIR": str(tmp_path / "cache")}
        cli = subprocess.run(
            [EXE, "index", str(SEEDS), "--backend", "milvus", "--milvus-uri", milvus.uri, "--collection", "kill"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
        assert "another de06qa index" in cli.stderr and "Traceback" not in cli.stderr
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    # readers stay on the published collection, and it answers
    b = MilvusBackend(milvus.uri, "kill")
    assert b.collection == old
    assert (
        Searcher(b, FakeEmbedder(), settings, reader=FakeReader()).search("dịch vụ công toàn trình").passages
    )
    # the dead build's lock expires; the next build goes on with what it wrote (all five
    # articles, whole: nothing embedded again) and publishes it
    monkeypatch.setattr(milvus_index, "LOCK_TTL_S", 0.5)
    time.sleep(0.6)
    emb = FakeEmbedder()
    s = build_index(settings, SEEDS, emb, rebuild=True)
    now = _collections(milvus.uri)
    new = MilvusBackend(milvus.uri, "kill").collection
    assert (s.resumed, s.documents, emb.passages_embedded) == (5, 5, 0)
    assert new in leftover and old in now  # the previous one stays for slow replicas


def test_a_stopped_build_goes_on_from_the_articles_it_wrote_whole(
    milvus: LiteServer, tmp_path: Path, seeds_copy: Path, monkeypatch
):
    """Stopped after two of five batches, the next build embeds only the other three articles
    (and one changed since: its rows are replaced), and gives what one uninterrupted build gives."""
    monkeypatch.setattr("de06qa.indexing.stages.BATCH_CHARS", 3000)  # one seed article per batch
    settings = _settings(milvus, tmp_path, "stop")
    with pytest.raises(KeyboardInterrupt):
        build_index(settings, seeds_copy, StoppingEmbedder(after=2))
    holder = MilvusIndex(milvus.uri, "stop")
    assert holder.current() is None  # nothing published
    holder.close()
    first = sorted(seeds_copy.glob("*.txt"))[0]
    first.write_text(first.read_text(encoding="utf-8").replace("Đề án 06", "Đề án số 06"), encoding="utf-8")
    emb, seen = FakeEmbedder(), []
    s = build_index(settings, seeds_copy, emb, lambda *r: seen.append(r))
    assert (s.resumed, s.documents) == (1, 5) and ("resumed", 1, 5) in seen
    full_settings = _settings(milvus, tmp_path, "stopfull")
    whole_emb = FakeEmbedder()
    full = build_index(full_settings, seeds_copy, whole_emb)
    assert emb.passages_embedded < whole_emb.passages_embedded  # the article taken over was not embedded
    b, f = MilvusBackend(milvus.uri, "stop"), MilvusBackend(milvus.uri, "stopfull")
    assert (s.chunks, s.sentences, b.stats) == (full.chunks, full.sentences, f.stats)
    assert sorted(c.chunk_id for c in b.chunks()) == sorted(c.chunk_id for c in f.chunks())
    terms = ("dich", "vu", "cong", "toan", "trinh", "so", "06", "vneid")
    assert b.idf(terms) == f.idf(terms)
    assert {a.doc_id: a.text for a, _ in b.documents()} == {a.doc_id: a.text for a, _ in f.documents()}


def test_a_missing_index_in_milvus_says_how_to_build_it(milvus: LiteServer, tmp_path: Path):
    env = {**os.environ, "DE06QA_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [EXE, "ask", "x", "--backend", "milvus", "--milvus-uri", milvus.uri, "--collection", "nothing"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and "de06qa index FOLDER --backend milvus" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not any(c.startswith("nothing") for c in _collections(milvus.uri)), "a reader wrote to Milvus"
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


@pytest.mark.slow
def test_dask_workers_write_their_share_into_milvus(
    milvus, real_settings, real_embedder, real_searcher, tmp_path, monkeypatch
):  # type: ignore[no-untyped-def]
    pytest.importorskip("distributed")
    import numpy as np
    from pymilvus import MilvusClient

    from de06qa.distributed import cluster_embedder
    from de06qa.indexing import milvus as milvus_build

    settings = real_settings.with_(
        index_dir=tmp_path / "absent", backend="milvus", milvus_uri=milvus.uri, collection="dask"
    )
    monkeypatch.setattr(milvus_build, "SHARE_CHARS", 10_000)  # several shares for five articles

    def refuse(*args: object, **kw: object) -> None:
        raise AssertionError("the command wrote chunks itself; the workers should")

    monkeypatch.setattr(MilvusIndex, "write", refuse)  # in this process only: workers are others
    with cluster_embedder(real_embedder, settings, workers=2) as spread:
        s = build_index(settings, SEEDS, spread)
    assert s.documents == 5 and s.chunks == real_searcher.backend.stats.chunks
    b = MilvusBackend(milvus.uri, "dask")
    local = {c.chunk_id: i for i, c in enumerate(real_searcher.backend.chunks())}
    client = MilvusClient(milvus.uri)
    try:
        rows = client.query(
            b.collection, filter='chunk_id != ""', output_fields=["chunk_id", "vector"], limit=16384
        )
    finally:
        client.close()
    assert sorted(r["chunk_id"] for r in rows) == sorted(local)
    ref = real_searcher.backend.data.dense.vectors()
    cos = [float(np.dot(np.asarray(r["vector"], np.float32), ref[local[r["chunk_id"]]])) for r in rows]
    # int8 scales activations per batch, so a passage's vector moves slightly with its batch mates
    # (the workers batch other passages than the local build did)
    assert min(cos) >= 0.99
    assert b.stats == real_searcher.backend.stats
    assert Searcher(b, real_embedder, settings).search(HA_GIANG).answer.text.split()[0] == "665"
