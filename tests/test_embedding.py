"""Batching in the embedder (unit: a fake encoder; the real model's runs are in test_model_parity)."""

import threading
import time

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
