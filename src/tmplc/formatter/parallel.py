"""Run ``process_rows`` over a stream of batches in N worker processes, results in input order.

Workers are forked after the tokenizer is loaded (each starts with it, loaded once, shared
copy-on-write; where fork is not available they are spawned and rebuild it once from its JSON).
At most ``2 * N`` batches are in flight, so memory does not grow with the number of rows.  Workers
ignore SIGINT: on Ctrl-C the parent stops them and the caller's ``atomic_output`` removes the
temporary file.  With ``num_proc <= 1`` everything runs in this process.

The parent reads and splits lines, sends batches and writes (in a writer thread); workers parse,
normalize and encode, and ``prepare`` turns each result into what is written (an Arrow table,
JSONL bytes), so only that comes back.  On C free cores ``--num-proc C`` approaches C times one
process once the data amortizes the start (a fork per worker); on cores busy with other work,
extra workers only compete for them (docs/format.md, "Speed").
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections import deque
from itertools import chain
from typing import Any, Callable, Iterable

from tmplc.formatter.rows import BatchResult, RowsJob, process_rows

_JOB: RowsJob | None = None
_KW: dict = {}
_PREP: Callable[[BatchResult], None] | None = None
_WARM_ROWS = 32
# collector thresholds while batches are encoded: a batch makes ~10^5 short-lived containers, and
# the default (700 allocations) runs hundreds of young collections per batch
_GC_THRESHOLD = (50000, 20, 100)


def _die_with_parent() -> None:
    """A worker must not outlive its parent (killed with -9, or interrupted while a worker waits on a
    lock): Linux's PR_SET_PDEATHSIG kills it when the parent goes."""
    import os
    import sys

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)


def _init(job_state: Any = None, kw: dict | None = None, prepare=None) -> None:
    import gc

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.set_threshold(*_GC_THRESHOLD)
    _die_with_parent()
    global _JOB, _KW, _PREP
    if job_state is not None:  # spawned: rebuild the job from picklable parts
        from tmplc.formatter.tokenizer_info import TokenizerInfo

        parts, rest = job_state
        rest["info"] = TokenizerInfo.from_parts(*parts)
        _JOB = RowsJob(**rest)
        _KW = kw or {}
        _PREP = prepare


def _run(job: RowsJob, batch: tuple[list[int], list], kw: dict, prepare) -> BatchResult:
    res = process_rows(job, batch[0], batch[1], **kw)
    if prepare is not None:
        prepare(res)
    return res


def _work(batch: tuple[list[int], list]) -> BatchResult:
    return _run(_JOB, batch, _KW, _PREP)


def run_batches(job: RowsJob, batches: Iterable[tuple[list[int], list]], consume: Callable[[BatchResult], None],
                num_proc: int | None = None, prepare: Callable[[BatchResult], None] | None = None, **kw) -> None:
    """``consume(result)`` for each batch, in order.  ``prepare(result)`` runs where the batch was
    encoded (a worker), e.g. to turn it into what is written (picklable when workers are spawned)."""
    if not num_proc or num_proc <= 1:
        import gc

        # what exists now (the tokenizer's tables, the format) goes to the permanent generation and
        # young collections run less often: the collector stops re-scanning them for every batch
        threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(*_GC_THRESHOLD)
        try:
            for b in batches:
                consume(_run(job, b, kw, prepare))
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()
        return
    global _JOB, _KW, _PREP
    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        return
    # a few rows of the first batch run here (the result is dropped): they build the lazily made
    # parts (tiktoken encoding, the format's compiled plan) once, before the workers are forked
    # with them.  Nothing is consumed before the fork: consuming may start threads (the writer's),
    # and a fork must not copy a thread's held locks
    process_rows(job, first[0][:_WARM_ROWS], first[1][:_WARM_ROWS], **kw)
    if "fork" in mp.get_all_start_methods():
        import gc

        # objects made so far (the tokenizer's) go to the permanent generation: a worker's garbage
        # collection then does not touch, and so copy, every shared page
        gc.collect()
        gc.freeze()
        ctx = mp.get_context("fork")
        _JOB, _KW, _PREP = job, kw, prepare
        init_args: tuple = ()
    else:  # pragma: no cover - not Linux
        ctx = mp.get_context("spawn")
        state = {k: v for k, v in job.__dict__.items() if k != "info"}
        init_args = ((job.info.parts(), state), kw, prepare)
    pool = ctx.Pool(num_proc, initializer=_init, initargs=init_args)
    try:
        pending: deque = deque()
        for b in chain([first], batches):
            pending.append(pool.apply_async(_work, (b,)))
            while len(pending) >= 2 * num_proc:
                consume(pending.popleft().get())
        while pending:
            consume(pending.popleft().get())
        pool.close()
        pool.join()
    finally:
        pool.terminate()
        _JOB, _KW, _PREP = None, {}, None
