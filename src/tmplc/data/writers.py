"""Writers of formatter output, one batch at a time, into an open binary file (``atomic_output``).

Columns, in this order: ``input_ids`` and ``labels`` (int32 lists; labels are -100 where not
trained), ``attention_mask`` and ``assistant_masks`` (int8 lists of 0/1), ``tmplc_row`` (int64,
the 0-based data row).  A format with tool support adds ``n_tool_call_tokens`` (int64, the row's
trained tokens inside assistant tool calls, as ``ChatFormat.tokenize`` counts them) before
``tmplc_row``.  Parquet: one row group per batch (pyarrow, snappy).  JSONL: one compact
JSON object per line, keys in the column order above.  The bytes depend only on the rows and the
batch size, not on the number of worker processes.

Writing is split in two: ``prepare(res)`` turns a batch's numpy columns into what is written (an
Arrow table, or the JSONL bytes) and can run in a worker process (``prepare_batch``);
``write(payload)`` appends it to the file.  ``BackgroundWriter`` runs the writes in a thread, in
order, so that encoding the next batch overlaps writing this one (pyarrow's Parquet encoding and
file writes release the GIL).
"""

from __future__ import annotations

import queue
import threading
from typing import IO, Any

COLUMNS = ("input_ids", "labels", "attention_mask", "assistant_masks", "tmplc_row")
TOOL_CALLS_COLUMN = "n_tool_call_tokens"


def _schema(tool_calls: bool = False):
    import pyarrow as pa

    return pa.schema([("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32())),
                      ("attention_mask", pa.list_(pa.int8())), ("assistant_masks", pa.list_(pa.int8()))]
                     + ([(TOOL_CALLS_COLUMN, pa.int64())] if tool_calls else [])
                     + [("tmplc_row", pa.int64())])


def parquet_table(res) -> Any:
    """The batch's rows as an Arrow table (or None when it has no row), built from the numpy buffers."""
    import numpy as np
    import pyarrow as pa

    if not res.rows:
        return None

    def arr(values, typ):  # from the numpy buffer: pa.array() would import pandas (0.4 s)
        values = np.ascontiguousarray(values)
        return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(values)])

    offsets = arr(np.concatenate([[0], np.cumsum(res.lengths)]).astype(np.int32), pa.int32())
    ones = np.ones(len(res.ids), dtype=np.int8)
    trained = (res.labels != -100).astype(np.int8)
    cols = [pa.ListArray.from_arrays(offsets, arr(a, t)) for a, t in
            ((res.ids, pa.int32()), (res.labels, pa.int32()), (ones, pa.int8()), (trained, pa.int8()))]
    calls = getattr(res, "tool_calls", None)
    if calls is not None:
        cols.append(arr(np.asarray(calls, dtype=np.int64), pa.int64()))
    cols.append(arr(np.asarray(res.rows, dtype=np.int64), pa.int64()))
    return pa.Table.from_arrays(cols, schema=_schema(calls is not None))


def jsonl_bytes(res) -> bytes:
    """The batch's rows as JSONL lines."""
    if not res.rows:
        return b""
    ids = res.ids.tolist()
    labels = res.labels.tolist()
    calls = getattr(res, "tool_calls", None)
    extra = [f'"{TOOL_CALLS_COLUMN}":{c},' for c in calls.tolist()] if calls is not None else [""] * len(res.rows)
    out = []
    pos = 0
    for row, n, more in zip(res.rows, res.lengths.tolist(), extra):
        i = ",".join(map(str, ids[pos:pos + n]))
        lab_list = labels[pos:pos + n]
        lab = ",".join(map(str, lab_list))
        ones = ",".join("1" * n)
        am = ",".join("0" if x == -100 else "1" for x in lab_list)
        out.append(f'{{"input_ids":[{i}],"labels":[{lab}],"attention_mask":[{ones}],'
                   f'"assistant_masks":[{am}],{more}"tmplc_row":{row}}}\n')
        pos += n
    return "".join(out).encode("ascii")


PREPARE = {"parquet": parquet_table, "jsonl": jsonl_bytes}


def prepare_batch(kind: str, res) -> None:
    """Put the written form of ``res`` into ``res.payload`` and drop its token arrays (what a worker
    sends back is then only what is written)."""
    res.payload = PREPARE[kind](res)
    res.ids = res.labels = None


class ParquetRowsWriter:
    def __init__(self, f: IO[bytes], tool_calls: bool = False) -> None:
        import pyarrow.parquet as pq

        # no dictionary encoding: token ids rarely repeat enough to pay for it (8x faster to write);
        # min/max statistics only for the row column (a reader filters on it; the token lists' min/max
        # serve no query and cost ~20% of the writer's time)
        self.writer = pq.ParquetWriter(f, _schema(tool_calls), compression="snappy", use_dictionary=False,
                                       write_statistics=["tmplc_row"])

    prepare = staticmethod(parquet_table)

    def write(self, table) -> None:
        if table is not None:
            self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        """Close after a failure (the temporary file is removed by the caller)."""
        try:
            self.writer.close()
        except Exception:
            pass


class JsonlRowsWriter:
    def __init__(self, f: IO[bytes]) -> None:
        self.f = f

    prepare = staticmethod(jsonl_bytes)

    def write(self, data: bytes) -> None:
        if data:
            self.f.write(data)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def rows_writer(kind: str, f: IO[bytes], tool_calls: bool = False):
    """A writer for ``kind`` "parquet" or "jsonl"; ``tool_calls``: with the ``n_tool_call_tokens``
    column (a format with tool support)."""
    return ParquetRowsWriter(f, tool_calls) if kind == "parquet" else JsonlRowsWriter(f)


_STOP = object()


class BackgroundWriter:
    """``put(payload)`` queues a write (at most ``depth`` waiting); a thread writes them in order.
    A write's exception is raised again by the next ``put`` or by ``close``; ``abort`` stops
    without writing what is still queued."""

    def __init__(self, writer, depth: int = 2) -> None:
        self.writer = writer
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.aborted = False
        self.thread: threading.Thread | None = None  # started by the first put (after any fork)

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is _STOP:
                return
            if self.error is not None or self.aborted:
                continue
            try:
                self.writer.write(item)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                self.error = e

    def _raise(self) -> None:
        if self.error is not None:
            e, self.error = self.error, None
            self.aborted = True
            raise e

    def put(self, payload) -> None:
        self._raise()
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, name="tmplc-writer", daemon=True)
            self.thread.start()
        self.q.put(payload)

    def _stop(self) -> None:
        if self.thread is not None:
            self.q.put(_STOP)
            self.thread.join()
            self.thread = None

    def close(self) -> None:
        """Wait for every queued write, then close the file's writer."""
        self._stop()
        self._raise()
        self.writer.close()

    def abort(self) -> None:
        self.aborted = True
        try:
            while True:
                self.q.get_nowait()
        except queue.Empty:
            pass
        self._stop()
        self.writer.abort()
