"""Incremental builds, the build lock, crash safety (real SIGKILL) and damaged indexes (fake embedder)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from de06qa import store
from de06qa.backends.embedded import EmbeddedBackend
from de06qa.config import Settings
from de06qa.errors import IndexBusy, IndexDamaged, IndexIncompatible
from de06qa.indexing import build_index
from de06qa.indexing import folder as folder_build
from de06qa.search import Searcher
from de06qa.text import folded_terms

from .conftest import FakeEmbedder, FakeReader, StoppingEmbedder

NEW_ARTICLE = (
    "Cao Bằng: Đẩy mạnh dịch vụ công trực tuyến\n"
    "Đến nay, tỉnh Cao Bằng đã cung cấp 512 dịch vụ công toàn trình trên Cổng dịch vụ công quốc gia.\n"
    "Tỷ lệ hồ sơ trực tuyến của tỉnh Cao Bằng đạt 47%."
)


def _settings(tmp_path: Path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", index_dir=tmp_path / "index", reload_poll_s=0)


def test_incremental_build_embeds_only_new_and_changed(tmp_path: Path, seeds_copy: Path):
    settings = _settings(tmp_path)
    emb = FakeEmbedder()
    first = build_index(settings, seeds_copy, emb)
    full_count = emb.passages_embedded
    assert (first.embedded, first.reused, first.removed) == (5, 0, 0)

    stamp = (settings.index_dir / "manifest.json").stat().st_mtime_ns
    again = build_index(settings, seeds_copy, emb)
    assert (again.embedded, again.reused, again.changed) == (
        0,
        5,
        False,
    ) and emb.passages_embedded == full_count
    assert (settings.index_dir / "manifest.json").stat().st_mtime_ns == stamp  # untouched: no reload

    (seeds_copy / "010_caobang.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    added = build_index(settings, seeds_copy, emb)
    assert (added.embedded, added.reused, added.documents) == (1, 5, 6)
    assert 0 < emb.passages_embedded - full_count < 10  # the new article's chunks and sentences only
    s = Searcher.open(settings, emb, reader=FakeReader())
    res = s.search("Cao Bằng có bao nhiêu dịch vụ công toàn trình?")
    # (confidence is calibrated for the real model; with the fake one only the ranking is tested)
    assert res.passages[0].chunk.doc_id == "010_caobang" and "512" in res.passages[0].chunk.text

    # A changed and a deleted article.
    victim = sorted(seeds_copy.glob("000_*.txt"))[0]
    victim.unlink()
    changed = seeds_copy / "010_caobang.txt"
    changed.write_text(NEW_ARTICLE.replace("512", "513"), encoding="utf-8")
    upd = build_index(settings, seeds_copy, emb)
    assert (upd.embedded, upd.reused, upd.removed, upd.documents) == (1, 4, 1, 5)

    # Exactly what a full build of the same folder gives: chunks, vectors and BM25 statistics.
    full_settings = settings.with_(index_dir=tmp_path / "full")
    build_index(full_settings, seeds_copy, FakeEmbedder(), rebuild=True)
    inc, full = store.load(settings.index_dir), store.load(full_settings.index_dir)
    assert [c.chunk_id for c in inc.chunks] == [c.chunk_id for c in full.chunks]
    assert np.allclose(inc.dense.vectors(), full.dense.vectors())
    assert np.allclose(inc.sentence_vectors, full.sentence_vectors)
    for q in ("dịch vụ công toàn trình", "căn cước công dân gắn chip", "Cao Bằng 513"):
        terms = folded_terms(q)
        assert np.allclose(inc.lexical.scores("folded", terms), full.lexical.scores("folded", terms))
    assert victim.stem not in inc.articles
    # The term sets ranking reads: unchanged articles' were copied with their ids, not recomputed.
    assert _term_strings(inc) == _term_strings(full)


def test_rebuild_flag_and_changed_chunking_embed_everything(tmp_path: Path, seeds_copy: Path):
    settings = _settings(tmp_path)
    emb = FakeEmbedder()
    build_index(settings, seeds_copy, emb)
    assert build_index(settings, seeds_copy, emb, rebuild=True).embedded == 5
    assert build_index(settings.with_(chunk_chars=300), seeds_copy, emb).embedded == 5
    # vectors of another runtime or precision are not mixed with the index's
    other = FakeEmbedder()
    other.runtime = "fake-int8"
    assert build_index(settings.with_(chunk_chars=300), seeds_copy, other).embedded == 5
    assert store.load(settings.index_dir).manifest["model"]["runtime"] == "fake-int8"


def test_a_build_in_batches_equals_one_batch_and_reports_each(tmp_path: Path, seeds_copy: Path, monkeypatch):
    """Articles are segmented on a second thread batch by batch while the batch before is
    embedded: the index is the same as in one batch, progress moves per batch, stages are timed."""
    whole = build_index(_settings(tmp_path).with_(index_dir=tmp_path / "one"), seeds_copy, FakeEmbedder())
    monkeypatch.setattr("de06qa.indexing.stages.BATCH_CHARS", 3000)  # the seeds are 2-8k characters each
    seen: list[tuple[str, int, int]] = []
    batched = build_index(_settings(tmp_path), seeds_copy, FakeEmbedder(), lambda *r: seen.append(r))
    assert [r for r in seen if r[0] == "embed"] == [("embed", n, 5) for n in range(6)]
    a, b = store.load(tmp_path / "one"), store.load(tmp_path / "index")
    assert [c.chunk_id for c in a.chunks] == [c.chunk_id for c in b.chunks] and len(a.chunks) > 5
    assert np.array_equal(a.dense.vectors(), b.dense.vectors())
    assert [s.start for s in a.sentences] == [s.start for s in b.sentences]
    assert np.array_equal(a.sentence_vectors, b.sentence_vectors)
    stages = dict(batched.stages)
    assert set(stages) == {
        "read",
        "segment+chunk",
        "embed passages",
        "embed sentences",
        "bm25+terms",
        "faiss",
        "write",
    }
    assert all(t >= 0 for t in stages.values()) and sum(stages.values()) <= batched.seconds * 1.5
    assert whole.chunks == batched.chunks


def test_second_build_is_refused_while_one_holds_the_lock(tmp_path: Path, seeds_copy: Path):
    settings = _settings(tmp_path)
    build_index(settings, seeds_copy, FakeEmbedder())
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from de06qa.store import build_lock
            with build_lock(Path({str(settings.index_dir)!r})):
                print("locked", flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexBusy, match=f"pid {holder.pid}.*wait for it"):
            build_index(settings, seeds_copy, FakeEmbedder())
    finally:
        holder.kill()
        holder.wait()
    # The kernel drops a killed holder's lock: the next build goes through.
    assert build_index(settings, seeds_copy, FakeEmbedder()).documents == 5
    assert store.load(settings.index_dir).manifest["counts"]["documents"] == 5


def test_sigkill_at_any_moment_leaves_a_loadable_index(tmp_path: Path, seeds_copy: Path):
    """A real process rebuilds the index in a loop, alternating two corpora; it is killed with
    SIGKILL at random moments. Every time, the index on disk loads whole and answers."""
    settings = _settings(tmp_path)
    five = seeds_copy
    six = tmp_path / "six"
    shutil.copytree(five, six)
    (six / "010_caobang.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    build_index(settings, five, FakeEmbedder())
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from tests.conftest import FakeEmbedder
        from de06qa.config import Settings
        from de06qa.indexing import build_index
        s = Settings(index_dir=Path({str(settings.index_dir)!r}), cache_dir=Path({str(tmp_path / "c")!r}))
        print("go", flush=True)
        while True:
            for src in ({str(five)!r}, {str(six)!r}):
                build_index(s, Path(src), FakeEmbedder(), rebuild=True)
                print("built", flush=True)
    """)
    rng = np.random.default_rng(7)
    seen = set()
    for i in range(8):
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert p.stdout and p.stdout.readline().strip() == "go"
        # Let 0-3 builds finish (so the kill lands after the five- and after the six-article
        # build), then kill at a random moment inside the next one (a build takes ~0.3-1 s).
        for _ in range(i % 4):
            assert p.stdout.readline().strip() == "built"
        time.sleep(float(rng.uniform(0.0, 0.6)))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        data = store.load(settings.index_dir)
        n = data.manifest["counts"]["documents"]
        assert n in (5, 6) and len(data.articles) == n and data.dense.size == len(data.chunks)
        seen.add(n)
        res = Searcher(
            EmbeddedBackend(data, settings.index_dir), FakeEmbedder(), settings, reader=FakeReader()
        ).search("dịch vụ công toàn trình")
        assert res.passages
    assert seen == {5, 6}, "the kills should land in both phases"
    # The leftovers of killed builds are cleared by the next build.
    build_index(settings, five, FakeEmbedder())
    assert not list(tmp_path.glob(".index.tmp-*"))


@pytest.mark.parametrize(
    ("damage", "error", "fix"),
    [
        (
            lambda d: (d / "vectors.faiss").write_bytes((d / "vectors.faiss").read_bytes()[:100]),
            IndexDamaged,
            "--rebuild",
        ),
        (lambda d: (d / "chunks.jsonl").unlink(), IndexDamaged, "--rebuild"),
        (lambda d: shutil.rmtree(d / "bm25_words"), IndexDamaged, "--rebuild"),
        (lambda d: (d / "sentences.npy").write_bytes(b"\x93NUMPY"), IndexDamaged, "--rebuild"),
        (lambda d: (d / "manifest.json").write_text("{", encoding="utf-8"), IndexDamaged, "--rebuild"),
        (
            lambda d: (d / "manifest.json").write_text(
                (d / "manifest.json")
                .read_text(encoding="utf-8")
                .replace('"format_version": 1', '"format_version": 99'),
                encoding="utf-8",
            ),
            IndexIncompatible,
            "--rebuild",
        ),
    ],
)
def test_damaged_index_is_a_clear_error(tmp_path: Path, fake_index: Settings, damage, error, fix):
    folder = tmp_path / "idx"
    shutil.copytree(fake_index.index_dir, folder)
    damage(folder)
    with pytest.raises(error) as e:
        store.load(folder)
    msg = str(e.value)
    assert str(folder) in msg and fix in msg and "\n" not in msg and "/proc/" not in msg


def test_damaged_index_is_rebuilt_in_full(tmp_path: Path, seeds_copy: Path):
    settings = _settings(tmp_path)
    build_index(settings, seeds_copy, FakeEmbedder())
    (settings.index_dir / "vectors.faiss").write_bytes(b"junk")
    assert build_index(settings, seeds_copy, FakeEmbedder()).embedded == 5
    assert store.load(settings.index_dir).dense.size > 0


def test_model_mismatch_names_the_model(tmp_path: Path, fake_index: Settings):
    other = FakeEmbedder()
    other.model_id = "other/model"
    with pytest.raises(IndexIncompatible, match=r"built with model 'fake/hash-64'.*--rebuild"):
        Searcher.open(fake_index, other, reader=FakeReader())


class _NoModel(FakeEmbedder):
    """An embedder whose model must not be loaded."""

    @property
    def dim(self) -> int:  # type: ignore[override]
        raise AssertionError("the model was loaded")

    def embed_passages(self, texts: list[str], progress=None) -> np.ndarray:  # type: ignore[no-untyped-def]
        raise AssertionError("something was embedded")


def test_an_update_that_only_removes_loads_no_model_and_segments_no_title(
    tmp_path: Path, seeds_copy: Path, monkeypatch
):
    """Deleting articles costs reading what is kept, not the model's load nor a word segmentation
    of every unchanged article's title (their context terms are stored in articles.jsonl)."""
    settings = _settings(tmp_path)
    build_index(settings, seeds_copy, FakeEmbedder())
    sorted(seeds_copy.glob("*.txt"))[0].unlink()
    segmented: list[str] = []
    real = folder_build.context_terms
    monkeypatch.setattr(folder_build, "context_terms", lambda a: segmented.append(a.doc_id) or real(a))
    s = build_index(settings, seeds_copy, _NoModel())
    assert (s.removed, s.documents, segmented) == (1, 4, [])
    full = settings.with_(index_dir=tmp_path / "full")
    build_index(full, seeds_copy, FakeEmbedder(), rebuild=True)
    _same_index(store.load(full.index_dir), store.load(settings.index_dir))


def _term_strings(data: store.IndexData) -> dict[str, tuple[object, ...]]:
    """Each chunk's term sets as strings (ids differ between indexes): its terms, its sentences'
    terms, the answer kinds it holds."""
    ts = data.term_sets
    assert ts is not None
    word = {i: t for t, i in data.lexical.vocab("folded").items()}
    out = {}
    for row, c in enumerate(data.chunks):
        terms = frozenset(word[int(i)] for i in ts.chunk_ids[ts.chunk_ptr[row] : ts.chunk_ptr[row + 1]])
        sentences = tuple(
            frozenset(word[int(i)] for i in ts.sentence_ids[ts.sentence_ptr[s] : ts.sentence_ptr[s + 1]])
            for s in range(ts.sentence_of_chunk[row], ts.sentence_of_chunk[row + 1])
        )
        out[c.chunk_id] = (terms, sentences, int(ts.kinds[row]))
    return out


def _same_index(a: store.IndexData, b: store.IndexData) -> None:
    """Same chunks, vectors, sentences and BM25, whatever order the rows are in."""
    ca = {c.chunk_id: v for c, v in zip(a.chunks, a.dense.vectors())}
    cb = {c.chunk_id: v for c, v in zip(b.chunks, b.dense.vectors())}
    assert ca.keys() == cb.keys() and all(np.allclose(ca[k], cb[k]) for k in ca)
    sa = {(d, s.start): v for s, d, v in zip(a.sentences, a.sentence_docs, a.sentence_vectors)}
    sb = {(d, s.start): v for s, d, v in zip(b.sentences, b.sentence_docs, b.sentence_vectors)}
    assert sa.keys() == sb.keys() and all(np.allclose(sa[k], sb[k]) for k in sa)
    order_a = {c.chunk_id: i for i, c in enumerate(a.chunks)}
    order_b = [order_a[c.chunk_id] for c in b.chunks]
    for q in ("dịch vụ công toàn trình", "căn cước công dân gắn chip"):
        terms = folded_terms(q)
        assert np.allclose(a.lexical.scores("folded", terms)[order_b], b.lexical.scores("folded", terms))
    assert _term_strings(a) == _term_strings(b)


def test_a_stopped_build_goes_on_from_its_last_finished_batch(tmp_path: Path, seeds_copy: Path, monkeypatch):
    """Stopped after two of five batches, the next build embeds only the other three; the old
    index serves all along; the result is the index one uninterrupted build gives."""
    monkeypatch.setattr("de06qa.indexing.stages.BATCH_CHARS", 3000)  # one seed article per batch
    settings = _settings(tmp_path)
    build_index(settings, seeds_copy, FakeEmbedder())
    before = (settings.index_dir / "manifest.json").read_bytes()
    (seeds_copy / "010_caobang.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    stopped = StoppingEmbedder(after=2)
    with pytest.raises(KeyboardInterrupt):
        build_index(settings, seeds_copy, stopped, rebuild=True)
    assert (settings.index_dir / "manifest.json").read_bytes() == before  # the old index, untouched
    assert len(store.load(settings.index_dir).articles) == 5
    parts = tmp_path / ".index.parts"
    assert len([p for p in parts.iterdir() if p.is_dir()]) == 2

    emb = FakeEmbedder()
    seen: list[tuple[str, int, int]] = []
    s = build_index(settings, seeds_copy, emb, lambda *r: seen.append(r), rebuild=True)
    assert (s.embedded, s.resumed, s.documents) == (6, 2, 6)
    assert seen[-1] == ("embed", 4, 4)  # progress counts what is left to embed
    assert not parts.exists()  # the finished build's batches are gone
    full = settings.with_(index_dir=tmp_path / "full")
    build_index(full, seeds_copy, FakeEmbedder(), rebuild=True)
    _same_index(store.load(full.index_dir), store.load(settings.index_dir))
    # A batch of an article changed since it was embedded is not reused.
    (seeds_copy / "010_caobang.txt").write_text(NEW_ARTICLE.replace("512", "514"), encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        build_index(settings, seeds_copy, StoppingEmbedder(after=3), rebuild=True)
    (seeds_copy / sorted(p.name for p in seeds_copy.glob("*.txt"))[0]).write_text(
        NEW_ARTICLE, encoding="utf-8"
    )
    again = build_index(settings, seeds_copy, FakeEmbedder(), rebuild=True)
    assert again.resumed == 2  # of the three finished batches, the first article's was changed


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_sigkill_during_a_long_build_resumes_without_redoing_batches(tmp_path: Path, seeds_copy: Path, share):
    """A real process builds 30 articles in 30 batches and is killed (SIGKILL) once `share` of
    them are written; the next build embeds only the rest, and the old index serves meanwhile."""
    src = tmp_path / "many"
    src.mkdir()
    for i in range(30):
        (src / f"{i:03d}.txt").write_text(NEW_ARTICLE.replace("512", str(100 + i)), encoding="utf-8")
    settings = _settings(tmp_path)
    build_index(settings, seeds_copy, FakeEmbedder())
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from tests.conftest import FakeEmbedder
        import de06qa.indexing.stages as stages
        from de06qa.config import Settings
        from de06qa.indexing import build_index
        stages.BATCH_CHARS = 1

        class Slow(FakeEmbedder):
            def embed_passages(self, texts, progress=None):
                time.sleep(0.05)
                return super().embed_passages(texts)

        s = Settings(index_dir=Path({str(settings.index_dir)!r}), cache_dir=Path({str(tmp_path / "c")!r}))
        build_index(s, Path({str(src)!r}), Slow(), lambda *r: print(*r, flush=True))
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    for line in p.stdout:
        stage, done, total = line.split()
        if stage == "embed" and int(done) >= share * int(total):
            break
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert len(store.load(settings.index_dir).articles) == 5  # the seeds' index still serves
    emb = FakeEmbedder()
    s = build_index(settings, src, emb)
    assert s.documents == 30 and s.resumed >= int(share * 30) and s.resumed < 30
    full = settings.with_(index_dir=tmp_path / "full")
    whole = FakeEmbedder()
    build_index(full, src, whole)
    assert emb.passages_embedded == whole.passages_embedded * (30 - s.resumed) // 30  # only the rest
    _same_index(store.load(full.index_dir), store.load(settings.index_dir))


def test_an_index_from_before_term_sets_gets_them_without_re_embedding(tmp_path: Path, seeds_copy: Path):
    """An index built before the ranking's term sets were stored still answers (they are computed
    when it is loaded), and the next `de06qa index` stores them without embedding anything."""
    settings = _settings(tmp_path)
    build_index(settings, seeds_copy, FakeEmbedder())
    for f in settings.index_dir.glob("terms_*.npy"):
        f.unlink()
    assert store.load(settings.index_dir).term_sets is None
    res = Searcher.open(settings, FakeEmbedder(), reader=FakeReader()).search("dịch vụ công toàn trình")
    assert res.passages
    emb = FakeEmbedder()
    again = build_index(settings, seeds_copy, emb)
    assert again.changed and again.embedded == 0 and emb.passages_embedded == 0
    assert store.load(settings.index_dir).term_sets is not None
