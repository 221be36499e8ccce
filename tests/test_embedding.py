"""Batching in the embedder (unit: a fake encoder; the real model's runs are in test_model_parity), and
how many threads a build's and a question's ONNX Runtime sessions get."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from de06qa.embedding import MAX_BUILD_SESSIONS, _batched, build_sessions


def _encode_lengths(calls: list[str]):  # type: ignore[no-untyped-def]
    def encode(texts: list[str]) -> np.ndarray:
        calls.append(threading.current_thread().name)
        time.sleep(0.01)  # long enough that the other worker takes the next batch meanwhile
        return np.array([[len(t), t.count("a")] for t in texts], np.float32)

    return encode


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_batches_run_on_several_workers_and_rows_come_back_in_input_order(workers: int) -> None:
    texts = [("a" * (i % 7)) + "b" * (i % 5) for i in range(53)]
    calls: list[str] = []
    done: list[int] = []
    out = _batched(_encode_lengths(calls), texts, 4, 2, done.append, workers)
    assert out.tolist() == [[len(t), t.count("a")] for t in texts]
    assert sum(done) == len(texts) and len(done) == len(calls) == 14  # progress after every batch
    names = set(calls)
    if workers == 1:
        assert names == {threading.current_thread().name}
    else:
        assert len(names) == workers and all(n.startswith("de06qa-embed") for n in names)


def test_a_failing_batch_fails_the_whole_call_without_waiting_for_the_rest() -> None:
    started: list[int] = []

    def encode(texts: list[str]) -> np.ndarray:
        started.append(len(texts))
        if len(started) == 2:
            raise RuntimeError("out of memory")
        time.sleep(0.05)
        return np.zeros((len(texts), 2), np.float32)

    with pytest.raises(RuntimeError, match="out of memory"):
        _batched(encode, ["x"] * 400, 4, 2, None, 2)
    assert len(started) < 20  # the 100 batches were not all run after the failure


def test_a_build_runs_a_single_threaded_session_per_core_up_to_a_few_sessions() -> None:
    assert build_sessions(1) == (1, 1)
    assert build_sessions(2) == (2, 1)
    assert build_sessions(MAX_BUILD_SESSIONS) == (MAX_BUILD_SESSIONS, 1)
    # many cores: a few sessions, each with several threads, so the memory stays that of a few
    assert build_sessions(4 * MAX_BUILD_SESSIONS) == (MAX_BUILD_SESSIONS, 4)
    assert build_sessions(MAX_BUILD_SESSIONS + 1) == (MAX_BUILD_SESSIONS, 1)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_a_session_left_to_its_default_runs_a_thread_per_core_the_process_may_use(tmp_path: Path) -> None:
    """A container pinned to one of a host's cores: the session's threads follow the pinning (ONNX
    Runtime's own count may be the host's cores), in a real process on a real ONNX file."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    code = (
        "import os, sys; from pathlib import Path; from de06qa import onnx_runtime\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "print(onnx_runtime.session(Path(sys.argv[1])).get_session_options().intra_op_num_threads,"
        " onnx_runtime.session(Path(sys.argv[1]), 3).get_session_options().intra_op_num_threads)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "3"]
