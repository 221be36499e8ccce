"""Building an index from the CLI: progress on a terminal (a bar) or in a log (lines), on this
machine or on a Dask cluster, and the build a first question makes over the bundled seeds."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from de06qa.cli.printing import err, plural
from de06qa.config import Settings

if TYPE_CHECKING:
    from de06qa.embedding import Embedder


class Reporter:
    """Build progress: a bar with counts and ETA on a terminal; plain log lines otherwise (CI)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._next_pct = 0
        self._t0 = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "read":
            err.print(f"Read {done} of {plural(total, 'file')}")
            return
        if stage == "resumed":
            err.print(f"Going on from a stopped build: {done} of {plural(total, 'article')} already embedded")
            return
        if total == 0:
            return
        if not done:
            self._t0 = time.perf_counter()
            return
        if self.tty:
            if self._bar is None:
                self._bar = Progress(
                    TextColumn("Embedding articles"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=err, transient=True,
                )  # fmt: skip
                self._bar.start()
                self._task = self._bar.add_task("embed", total=total)
            assert self._task is not None
            self._bar.update(self._task, completed=done)
            if done >= total:
                self._bar.stop()
        elif 100 * done // total >= self._next_pct:
            took = time.perf_counter() - self._t0
            rate = done / took if took > 0 else 0.0
            eta = f", about {(total - done) / rate:.0f} s left" if rate and done < total else ""
            err.print(f"embedded {done}/{total} articles ({100 * done // total}%, {rate:.1f}/s{eta})")
            self._next_pct = 100 * done // total // 10 * 10 + 10


def build(
    settings: Settings,
    source: Path,
    rebuild: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    embedder: Embedder | None = None,
) -> int:
    """Build or update the index (embedding on a Dask cluster when asked); returns the number of
    skipped files."""
    from de06qa.embedding import create_embedder
    from de06qa.indexing import build_index

    embedder = embedder or create_embedder(settings)
    if workers or scheduler:
        from de06qa.distributed import cluster_embedder

        where = scheduler or f"a local Dask cluster of {plural(workers or 1, 'worker')}"
        err.print(f"Embedding on {where}")
        with cluster_embedder(embedder, settings, scheduler, workers) as spread:
            s = build_index(settings, source, spread, Reporter(), rebuild=rebuild)
    else:
        s = build_index(settings, source, embedder, Reporter(), rebuild=rebuild)
    change = f"{s.embedded} new or changed, {s.reused} unchanged, {s.removed} removed"
    if s.resumed:
        change += f"; {s.resumed} of the new taken from the stopped build"
    if not s.changed:
        change += "; the index was already up to date"
    err.print(
        f"Indexed {plural(s.documents, 'document')} ({change}) into {plural(s.chunks, 'passage')} "
        f"({plural(s.sentences, 'sentence')}) in {s.seconds:.1f} s -> {s.target}",
        soft_wrap=True,
    )
    for sk in s.skipped:
        err.print(f"  skipped {sk.path}: {sk.reason}", soft_wrap=True)
    return len(s.skipped)


def build_if_missing(settings: Settings, embedder: Embedder | None = None) -> None:
    """First use: with no index yet in the default index/ and the bundled seeds present, build it
    (ask, serve, eval). Another folder with no index is an error: a typo in --index-dir must not
    quietly build the seeds there. `embedder`: one already loading (loading_ahead), so that the
    model is converted and exported once, not by both threads."""
    from de06qa.errors import IndexMissing
    from de06qa.store import MANIFEST

    if settings.backend != "embedded" or (settings.index_dir / MANIFEST).exists():
        return
    if settings.index_dir != Settings().index_dir:
        raise IndexMissing(
            f"no index in {settings.index_dir}; build one with: de06qa index FOLDER --index-dir {settings.index_dir}"
        )
    if settings.seeds_dir.is_dir():
        err.print(f"No index in {settings.index_dir} yet: building it from {settings.seeds_dir}/ (once).")
        build(settings, settings.seeds_dir, embedder=embedder)
