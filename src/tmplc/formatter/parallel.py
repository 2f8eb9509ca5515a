"""Run ``process_rows`` over a stream of batches in N worker processes, results in input order.

Workers are forked after the tokenizer is loaded (each starts with it, loaded once, shared
copy-on-write; where fork is not available they are spawned and rebuild it once from its JSON).
At most ``2 * N`` batches are in flight, so memory does not grow with the number of rows.  Workers
ignore SIGINT: on Ctrl-C the parent stops them and the caller's ``atomic_output`` removes the
temporary file.  With ``num_proc <= 1`` everything runs in this process.

When it helps: the parent reads, writes and splits lines while workers parse, normalize and
encode, so on C cores ``--num-proc C`` approaches C times one process once the data is large
enough to amortize the start (about 0.2 s per worker with fork).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections import deque
from typing import Any, Callable, Iterable

from tmplc.formatter.rows import BatchResult, RowsJob, process_rows

_JOB: RowsJob | None = None
_KW: dict = {}


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


def _init(job_state: Any = None, kw: dict | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    global _JOB, _KW
    if job_state is not None:  # spawned: rebuild the job from picklable parts
        from tmplc.formatter.tokenizer_info import TokenizerInfo

        parts, rest = job_state
        rest["info"] = TokenizerInfo.from_parts(*parts)
        _JOB = RowsJob(**rest)
        _KW = kw or {}


def _work(batch: tuple[list[int], list]) -> BatchResult:
    numbers, rows = batch
    return process_rows(_JOB, numbers, rows, **_KW)


def run_batches(job: RowsJob, batches: Iterable[tuple[list[int], list]], consume: Callable[[BatchResult], None],
                num_proc: int | None = None, **kw) -> None:
    """``consume(result)`` for each batch, in order."""
    if not num_proc or num_proc <= 1:
        for numbers, rows in batches:
            consume(process_rows(job, numbers, rows, **kw))
        return
    global _JOB, _KW
    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        return
    # the first batch runs here: it builds the lazily made parts (tiktoken encoding, the format's
    # compiled plan) once, before the workers are forked with them
    consume(process_rows(job, first[0], first[1], **kw))
    if "fork" in mp.get_all_start_methods():
        import gc

        # objects made so far (the tokenizer's) go to the permanent generation: a worker's garbage
        # collection then does not touch, and so copy, every shared page
        gc.collect()
        gc.freeze()
        ctx = mp.get_context("fork")
        _JOB, _KW = job, kw
        init_args: tuple = ()
    else:  # pragma: no cover - not Linux
        ctx = mp.get_context("spawn")
        state = {k: v for k, v in job.__dict__.items() if k != "info"}
        init_args = ((job.info.parts(), state), kw)
    pool = ctx.Pool(num_proc, initializer=_init, initargs=init_args)
    try:
        pending: deque = deque()
        for b in batches:
            pending.append(pool.apply_async(_work, (b,)))
            while len(pending) >= 2 * num_proc:
                consume(pending.popleft().get())
        while pending:
            consume(pending.popleft().get())
        pool.close()
        pool.join()
    finally:
        pool.terminate()
        _JOB, _KW = None, {}
