"""Writers of formatter output, one batch at a time, into an open binary file (``atomic_output``).

Columns, in this order: ``input_ids`` and ``labels`` (int32 lists; labels are -100 where not
trained), ``attention_mask`` and ``assistant_masks`` (int8 lists of 0/1), ``tmplc_row`` (int64,
the 0-based data row).  Parquet: one row group per batch (pyarrow, snappy).  JSONL: one compact
JSON object per line, keys in the column order above.  The bytes depend only on the rows and the
batch size, not on the number of worker processes.
"""

from __future__ import annotations

from typing import IO

COLUMNS = ("input_ids", "labels", "attention_mask", "assistant_masks", "tmplc_row")


class ParquetRowsWriter:
    def __init__(self, f: IO[bytes]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32())),
                                 ("attention_mask", pa.list_(pa.int8())),
                                 ("assistant_masks", pa.list_(pa.int8())), ("tmplc_row", pa.int64())])
        # no dictionary encoding: token ids rarely repeat enough to pay for it (8x faster to write)
        self.writer = pq.ParquetWriter(f, self.schema, compression="snappy", use_dictionary=False)

    def write(self, res) -> None:
        import numpy as np

        if not res.rows:
            return
        pa = self.pa
        offsets = pa.array(np.concatenate([[0], np.cumsum(res.lengths)]).astype(np.int32))
        ones = np.ones(len(res.ids), dtype=np.int8)
        trained = (res.labels != -100).astype(np.int8)
        cols = [pa.ListArray.from_arrays(offsets, pa.array(a)) for a in (res.ids, res.labels, ones, trained)]
        cols.append(pa.array(res.rows, type=pa.int64()))
        self.writer.write_table(pa.Table.from_arrays(cols, schema=self.schema))

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

    def write(self, res) -> None:
        if not res.rows:
            return
        ids = res.ids.tolist()
        labels = res.labels.tolist()
        out = []
        pos = 0
        for row, n in zip(res.rows, res.lengths.tolist()):
            i = ",".join(map(str, ids[pos:pos + n]))
            lab_list = labels[pos:pos + n]
            lab = ",".join(map(str, lab_list))
            ones = ",".join("1" * n)
            am = ",".join("0" if x == -100 else "1" for x in lab_list)
            out.append(f'{{"input_ids":[{i}],"labels":[{lab}],"attention_mask":[{ones}],'
                       f'"assistant_masks":[{am}],"tmplc_row":{row}}}\n')
            pos += n
        self.f.write("".join(out).encode("ascii"))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def rows_writer(kind: str, f: IO[bytes]):
    """A writer for ``kind`` "parquet" or "jsonl"."""
    return ParquetRowsWriter(f) if kind == "parquet" else JsonlRowsWriter(f)
