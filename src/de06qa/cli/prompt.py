"""The interactive question prompt (readline history, questions typed ahead, Ctrl-D) and the
reading of a file of questions."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from de06qa.cli.printing import err, out
from de06qa.config import Settings
from de06qa.errors import De06qaError


def open_text(path: Path) -> TextIO:
    try:
        return path.open(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise De06qaError(
            f"cannot read {path} ({e.strerror}); give a UTF-8 file, one question per line"
        ) from e


def typed_while_answering() -> list[str] | None:
    """What the user typed while an answer was printing: None for a Ctrl-D, else the complete
    lines (questions typed ahead), possibly none.

    The terminal is in canonical mode between two `input()` calls, so a Ctrl-D typed then becomes
    a pending end-of-file; readline switches the terminal to raw mode and would never see it, and
    the prompt would wait on. Reading it here sees it (a read of 0 bytes)."""
    fd = sys.stdin.fileno()
    if not select.select([fd], [], [], 0)[0]:
        return []
    data = os.read(fd, 65536)
    if not data:
        return None
    return data.decode("utf-8", "replace").splitlines()


def prompt(answer: Callable[[str], None]) -> None:
    import readline

    hist = Settings.from_env().cache_dir / "history"
    try:
        hist.parent.mkdir(parents=True, exist_ok=True)
        if hist.exists():
            readline.read_history_file(hist)
    except OSError:
        pass
    err.print("Ask a question about Đề án 06 (exit or Ctrl-D to leave).")
    typed_ahead: list[str] = []
    while True:
        if not typed_ahead:
            pending = typed_while_answering()
            if pending is None:
                err.print()
                break
            typed_ahead = pending
        if typed_ahead:
            q = typed_ahead.pop(0)
        else:
            try:
                q = input("câu hỏi> ")
            except (EOFError, KeyboardInterrupt):
                err.print()
                break
        if q.strip().lower() in {"exit", "quit", "thoát"}:
            break
        if not q.strip():
            continue
        try:
            answer(q)
        except De06qaError as e:
            err.print(f"error: {e}")
        out.print()
    try:
        readline.write_history_file(hist)
    except OSError:
        pass
