"""``run_batches`` with worker processes (issue 18): results are consumed in input order whatever
order the workers finish in, and equal the in-process ones; a worker's exception is raised in the
parent; a worker that dies ends the run with a clear error; no worker outlives the call."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time

import pytest
from conftest import tokenizer_dir

ROWS = 60
SIZE = 6  # rows per batch: 10 batches


@pytest.fixture(scope="module")
def job():
    import tmplc
    from tmplc.formatter.core import make_options
    from tmplc.formatter.rows import RowsJob
    from tmplc.formatter.tokenizer_load import load_tokenizer_info

    return RowsJob(tmplc.load("llama-3"), load_tokenizer_info(tokenizer_dir("llama3")), make_options())


def _batches():
    rows = [{"messages": [{"role": "user", "content": f"question {i} " + "word " * (i % 7)},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(ROWS)]
    return [(list(range(i, i + SIZE)), rows[i:i + SIZE]) for i in range(0, ROWS, SIZE)]


def _stamp(res):
    """Even batches are slow: the workers finish batches out of order."""
    if (res.rows[0] // SIZE) % 2 == 0:
        time.sleep(0.15)
    res.payload = (os.getpid(), time.monotonic())


def _run(job, num_proc, prepare):
    from tmplc.formatter.parallel import run_batches

    got = []
    run_batches(job, _batches(), got.append, num_proc, prepare=prepare)
    return got


def test_results_in_input_order_whatever_order_workers_finish(job):
    one = _run(job, 1, None)
    two = _run(job, 2, _stamp)
    assert [r.rows for r in two] == [b[0] for b in _batches()]
    for a, b in zip(one, two):
        assert a.ids.tolist() == b.ids.tolist() and a.labels.tolist() == b.labels.tolist()
        assert a.lengths.tolist() == b.lengths.tolist() and a.summary.as_dict() == b.summary.as_dict()
    pids = {r.payload[0] for r in two}
    assert len(pids) == 2 and os.getpid() not in pids  # both workers worked
    finished = [r.payload[1] for r in two]
    assert finished != sorted(finished)  # some later batch was done before an earlier one
    assert multiprocessing.active_children() == []


class Unpicklable(Exception):
    def __init__(self, msg):
        super().__init__(msg)
        self.fn = lambda: None


def _raise_at(kind):
    def prepare(res):
        if res.rows[0] == 3 * SIZE:
            if kind == "value":
                raise ValueError(f"boom at row {res.rows[0]}")
            if kind == "unpicklable":
                raise Unpicklable(f"cannot travel, row {res.rows[0]}")
            os._exit(7)
    return prepare


def test_a_workers_exception_is_raised_in_the_parent(job):
    with pytest.raises(ValueError, match="boom at row 18"):
        _run(job, 2, _raise_at("value"))
    assert multiprocessing.active_children() == []
    with pytest.raises(RuntimeError, match="(?s)a worker failed.*Unpicklable: cannot travel, row 18"):
        _run(job, 2, _raise_at("unpicklable"))
    with pytest.raises((pickle.PicklingError, AttributeError)):  # the premise: this exception cannot be pickled
        pickle.dumps(Unpicklable("x"))
    assert multiprocessing.active_children() == []


def test_a_worker_that_dies_ends_the_run_with_its_exit_code(job):
    t = time.monotonic()
    from tmplc.errors import WorkerError

    with pytest.raises(WorkerError, match=r"worker process ended unexpectedly \(exit code 7\)"):
        _run(job, 2, _raise_at("exit"))
    assert time.monotonic() - t < 60
    assert multiprocessing.active_children() == []


def test_spawned_workers_where_fork_is_not_available(job, monkeypatch):
    """Where fork is not available (Windows) workers are spawned and rebuild the tokenizer from its
    JSON: the same written bytes as one process."""
    from functools import partial

    from tmplc.data.writers import prepare_batch
    from tmplc.formatter import parallel

    one = _run(job, 1, partial(prepare_batch, "jsonl"))
    monkeypatch.setattr(parallel.mp, "get_all_start_methods", lambda: ["spawn"])
    two = _run(job, 2, partial(prepare_batch, "jsonl"))
    assert [r.payload for r in two] == [r.payload for r in one] and b"".join(r.payload for r in one)
    assert multiprocessing.active_children() == []
