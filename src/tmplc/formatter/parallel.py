"""Run ``process_rows`` over a stream of batches in N worker processes, results in input order.

Workers are forked after the tokenizer is loaded (each starts with it, loaded once, shared
copy-on-write; where fork is not available they are spawned and rebuild it once from its JSON).
At most ``2 * N`` batches are in flight, so memory does not grow with the number of rows.  Workers
ignore SIGINT: on Ctrl-C the parent stops them and the caller's ``atomic_output`` removes the
temporary file.  With ``num_proc <= 1`` everything runs in this process.

The parent reads (for JSONL it only finds line ends: ``RawLines``), sends batches and writes (in
a writer thread); workers cut the lines, parse, normalize and encode, and ``prepare`` turns each result into what is written (an Arrow table,
JSONL bytes), so only that comes back.  Each worker has a pipe each way: a batch goes out
pickled (by a sender thread per worker, so that a worker busy with its last batch never holds up
another's), a result comes back as a pickle whose large buffers (the Arrow columns) travel
out-of-band, as they are, without being copied into the pickle; the parent takes results from
whichever worker has one and hands them to ``consume`` in input order.  A worker's exception is
raised again in the parent; a worker that dies (killed, e.g. by the out-of-memory killer) ends
the run with ``WorkerError``.  On C free cores
``--num-proc C`` approaches C times one process once the data amortizes the start (a fork per
worker); on cores busy with other work, extra workers only compete for them (docs/format.md,
"Speed").
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
import signal
import threading
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
_STOP = b""  # the message that ends a worker


def _die_with_parent() -> None:
    """A worker must not outlive its parent (killed with -9, or interrupted while a worker waits on a
    pipe): Linux's PR_SET_PDEATHSIG kills it when the parent goes."""
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


def _run(job: RowsJob, batch: tuple[list[int], list], kw: dict, prepare) -> BatchResult:
    res = process_rows(job, batch[0], batch[1], **kw)
    if prepare is not None:
        prepare(res)
    return res


def _dumps(value: Any) -> list:
    """``value`` as message parts: the pickle, then its out-of-band buffers."""
    buffers: list = []
    head = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return [head] + [b.raw() for b in buffers]


def _send(conn, parts: list) -> None:
    conn.send_bytes(len(parts).to_bytes(4, "little"))
    for p in parts:
        conn.send_bytes(p)


def _recv(conn) -> list:
    n = int.from_bytes(conn.recv_bytes(), "little")
    return [conn.recv_bytes() for _ in range(n)]


def _error_parts(e: BaseException) -> list:
    import traceback

    try:
        return _dumps((False, e))
    except Exception:  # an exception that does not pickle: its text
        text = "".join(traceback.format_exception(e))
        return _dumps((False, RuntimeError(f"a worker failed: {text}")))


def _serve(tasks, results, job_state: Any = None, kw: dict | None = None, prepare=None) -> None:
    """A worker: batches from ``tasks`` until the stop message, each result to ``results``."""
    import gc

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.set_threshold(*_GC_THRESHOLD)
    _die_with_parent()
    if job_state is None:  # forked: the parent's module state
        job, kw, prepare = _JOB, _KW, _PREP
    else:  # spawned: rebuild the job from picklable parts
        from tmplc.formatter.tokenizer_info import TokenizerInfo

        parts, rest = job_state
        rest["info"] = TokenizerInfo.from_parts(*parts)
        job, kw = RowsJob(**rest), kw or {}
    while True:
        msg = tasks.recv_bytes()
        if msg == _STOP:
            return
        try:
            out = _dumps((True, _run(job, pickle.loads(msg), kw, prepare)))
        except BaseException as e:  # noqa: BLE001 - raised again in the parent
            out = _error_parts(e)
        _send(results, out)


class _Workers:
    """N worker processes, each with a task pipe (fed by its own sender thread) and a result pipe."""

    def __init__(self, n: int, ctx, args: tuple) -> None:
        self.procs, self.tasks, self.results, self.queues, self.threads = [], [], [], [], []
        for _ in range(n):
            task_r, task_w = ctx.Pipe(duplex=False)
            res_r, res_w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_serve, args=(task_r, res_w, *args), daemon=True, name="tmplc-format-worker")
            p.start()
            task_r.close()
            res_w.close()
            self.procs.append(p)
            self.tasks.append(task_w)
            self.results.append(res_r)
        # threads only now: a fork must not copy a thread's held locks
        for w in self.tasks:
            q: queue.SimpleQueue = queue.SimpleQueue()
            t = threading.Thread(target=self._feed, args=(w, q), name="tmplc-format-sender", daemon=True)
            t.start()
            self.queues.append(q)
            self.threads.append(t)

    @staticmethod
    def _feed(conn, q: queue.SimpleQueue) -> None:
        while True:
            msg = q.get()
            try:
                conn.send_bytes(msg)
            except OSError:  # the worker is gone: the parent sees it on the result side
                return
            if msg == _STOP:
                return

    def send(self, k: int, batch) -> None:
        self.queues[k].put(pickle.dumps(batch, protocol=5))

    def ready(self, ks: list[int]) -> list[int]:
        """The workers among ``ks`` with a result to read (waits for at least one)."""
        from multiprocessing.connection import wait

        conns = {id(self.results[k]): k for k in ks}
        sentinels = {self.procs[k].sentinel: k for k in ks}
        got = wait([self.results[k] for k in ks] + list(sentinels))
        out = sorted({conns[id(o)] for o in got if id(o) in conns})
        if out:
            return out
        dead = sentinels[got[0]]
        if self.results[dead].poll():  # it wrote its result, then ended
            return [dead]
        raise self._died(dead)

    def _died(self, k: int) -> Exception:
        from tmplc.errors import WorkerError

        self.procs[k].join(5)
        code = self.procs[k].exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:  # a signal Python has no name for
                how = f"killed by signal {-code}"
            if -code == signal.SIGKILL:
                how += ": often the kernel's out-of-memory killer"
        return WorkerError(f"a format worker process ended unexpectedly ({how}); run again with a smaller "
                           "--num-proc or --batch-size, or with --num-proc 1 to see a row that causes it")

    def recv(self, k: int) -> BatchResult:
        try:
            parts = _recv(self.results[k])
        except EOFError:  # the pipe closed: the worker is gone
            raise self._died(k) from None
        ok, value = pickle.loads(parts[0], buffers=parts[1:])
        if not ok:
            raise value
        return value

    def close(self, abort: bool) -> None:
        if abort:
            for p in self.procs:
                p.terminate()
        for q in self.queues:
            q.put(_STOP)
        for t in self.threads:
            t.join()
        for p in self.procs:
            p.join()
        for c in self.tasks + self.results:
            c.close()


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
        args: tuple = ()
    else:  # Windows (tested on Linux by hiding fork)
        ctx = mp.get_context("spawn")
        state = {k: v for k, v in job.__dict__.items() if k != "info"}
        args = ((job.info.parts(), state), kw, prepare)
    workers = None
    failed = True
    try:
        workers = _Workers(num_proc, ctx, args)
        _JOB, _KW, _PREP = None, {}, None
        _stream(workers, chain([first], batches), consume, num_proc)
        failed = False
    finally:
        _JOB, _KW, _PREP = None, {}, None
        if workers is not None:
            workers.close(abort=failed)


def _stream(workers: _Workers, batches: Iterable, consume: Callable[[BatchResult], None], n: int) -> None:
    """Each batch to the worker with the fewest in flight; results consumed in input order."""
    owed: list[deque] = [deque() for _ in range(n)]  # per worker, the batches it has not answered yet
    done: dict[int, BatchResult] = {}
    sent = consumed = 0
    more = True
    while True:
        while more and sent - consumed < 2 * n:
            b = next(batches, None)
            if b is None:
                more = False
                break
            k = min(range(n), key=lambda i: len(owed[i]))
            owed[k].append(sent)
            workers.send(k, b)
            sent += 1
        if consumed == sent:
            return
        while consumed not in done:
            for k in workers.ready([k for k in range(n) if owed[k]]):
                done[owed[k].popleft()] = workers.recv(k)
        while consumed in done:
            consume(done.pop(consumed))
            consumed += 1
