"""Parquet parts appended as one file (tmplc.data.parquet_parts): the footer codec gives back the
bytes it read, and the stitched file reads back, through pyarrow and datasets, as the parts'
tables one after the other, with one row group each and their statistics."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmplc.data.parquet_parts import PartsWriter, encode_part, footer, read_struct, write_struct
from tmplc.data.writers import _schema


def _table(lengths: list[int], start: int, seed: int, tool_calls: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = [rng.integers(0, 200000, n).astype(np.int32).tolist() for n in lengths]
    labels = [[x if rng.random() < 0.5 else -100 for x in r] for r in ids]
    cols = {"input_ids": ids, "labels": labels, "attention_mask": [[1] * len(r) for r in ids],
            "assistant_masks": [[int(x != -100) for x in r] for r in labels]}
    if tool_calls:
        cols["n_tool_call_tokens"] = [int(x) for x in rng.integers(0, 9, len(ids))]
    cols["tmplc_row"] = list(range(start, start + len(ids)))
    return pa.table(cols, schema=_schema(tool_calls))


def _stitched(tables: list[pa.Table], tool_calls: bool) -> bytes:
    buf = io.BytesIO()
    w = PartsWriter(buf, encode_part(None, _schema(tool_calls)))
    for t in tables:
        w.write(encode_part(t))
    w.close()
    return buf.getvalue()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=30), max_size=5), st.booleans(), st.integers(0, 9))
def test_parts_read_back_as_one_file(batches, tool_calls, seed):
    tables, start = [], 0
    for k, lengths in enumerate(batches):
        tables.append(_table(lengths, start, seed + k, tool_calls))
        start += len(lengths)
    data = _stitched(tables, tool_calls)
    got = pq.read_table(io.BytesIO(data))
    want = pa.concat_tables(tables) if tables else _schema(tool_calls).empty_table()
    assert got.equals(want)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert meta.num_rows == start and meta.num_row_groups == len(tables)
    row = meta.schema.names.index("tmplc_row")
    first = 0
    for k, t in enumerate(tables):  # each batch is a row group of its own, its row range in the statistics
        rg = meta.row_group(k)
        assert rg.num_rows == t.num_rows and pq.ParquetFile(io.BytesIO(data)).read_row_group(k).equals(t)
        s = rg.column(row).statistics
        assert (s.min, s.max) == (first, first + t.num_rows - 1)
        first += t.num_rows


def test_footer_codec_gives_back_the_bytes_it_read():
    part = encode_part(_table([3, 0, 7], 0, 1, True))
    meta, start = footer(part)
    assert write_struct(meta) == part[start:-8]
    assert read_struct(write_struct(meta)) == meta


def test_datasets_reads_the_stitched_file(tmp_path):
    import datasets
    tables = [_table([2, 5], 0, 3, False), _table([1], 2, 4, False)]
    path = tmp_path / "out.parquet"
    path.write_bytes(_stitched(tables, False))
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert ds["tmplc_row"] == [0, 1, 2] and ds["input_ids"] == pa.concat_tables(tables)["input_ids"].to_pylist()


def test_not_a_parquet_part_is_refused():
    with pytest.raises(ValueError, match="not a Parquet file"):
        footer(b"PAR1 nothing")
