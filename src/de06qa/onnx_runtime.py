"""ONNX Runtime and ONNX files: the only module that imports onnxruntime.

The embedder (embedding.py) and the answer reader (reader/) each export a model once into the
model cache and then run it here: sessions, weights kept beside the graph, the atomic publish of an
export, and dynamic int8 quantisation.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def quiet() -> None:
    """Silence the libraries' load-time noise (weight-loading bars, deprecation and tokenizer
    warnings): a user sees our own progress and nothing else."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Never reach for a model hub at run time: a missing model is a clear error, not a download.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in ("sentence_transformers", "transformers", "optimum", "onnxruntime", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, as in a container
    pinned to some of a host's cores), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def session(path: Path, threads: int = 0, spin: bool = True) -> Any:
    """An ONNX Runtime session on the CPU, quiet; `threads` per inference (0: one per core this
    process may run on; said explicitly, since ONNX Runtime's own count can be the host's cores in
    a container pinned to fewer, and threads beyond the pinned cores only wait on each other).
    `spin=False` lets its threads sleep between runs instead of busy-waiting: for a session that
    runs once per question beside another one (the reader), whose spinning would slow the other."""
    import onnxruntime as ort

    quiet()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads or available_cores()
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def weights_apart(path: Path) -> None:
    """Move the model's weights into `<file>.data` beside the graph. ONNX Runtime maps such a file
    into memory instead of copying it: a process holds only the pages it reads (of the 250k-row
    token embedding table, the rows of the tokens it meets), and processes on one machine share
    them: the fp32 model costs a serving process ~160 MB instead of ~520 MB (issue 13's 500 MB)."""
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
        location=f"{path.name}.data", size_threshold=1024,
    )  # fmt: skip
    path.with_name(f"{path.name}.data").chmod(0o644)  # onnx writes it 0600: a server user must read it


def publish(target: Path, make: Callable[[Path], None], done: Callable[[Path], bool]) -> None:
    """`make(folder)` writes an export into a fresh folder beside `target`, which is then renamed
    into place: a half-written export is never used. If another process published one meanwhile
    (`done(target)`), theirs is kept."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        make(tmp)
        tmp.chmod(0o755)
        shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:
            if not done(target):
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def quantise_matmuls(model: Any, out: Path, nodes: list[str]) -> None:
    """Write `out`: `model` (an onnx ModelProto) with the MatMul `nodes` int8 (weights per output
    channel, inputs per batch: ONNX Runtime's dynamic quantisation), weights in a file beside it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # the quantiser's advice to pre-process, logged on every call
    try:
        quantize_dynamic(
            model, out, per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
            nodes_to_quantize=nodes, use_external_data_format=True,
        )  # fmt: skip
    finally:
        logging.disable(logging.NOTSET)
