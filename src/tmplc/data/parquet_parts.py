"""One Parquet file out of Parquet parts written elsewhere, without decoding or re-encoding them.

``tmplc format --num-proc N`` encodes each batch as a small Parquet file (one row group) in the
worker that tokenized it (:func:`encode_part`); the parent appends each part's column chunks to the
output as they are (:class:`PartsWriter`) and, at the end, writes one footer holding every part's
row group, its byte offsets moved to where the chunks now are.  The parent then does no Parquet
encoding, which was most of what it did besides reading.

A Parquet file is ``PAR1``, the column chunks, the footer (a Thrift compact-protocol
``FileMetaData``), its length (4 bytes, little-endian) and ``PAR1``.  The footer is read and
written by a small compact-protocol codec (:func:`read_struct`, :func:`write_struct`) that keeps
every field it does not know as it was: decoding and encoding a footer gives the same bytes.
The offsets moved (parquet-format's ``parquet.thrift``): ``RowGroup.file_offset`` (5),
``ColumnChunk.file_offset`` (2), ``offset_index_offset`` (4) and ``column_index_offset`` (6),
``ColumnMetaData.data_page_offset`` (9), ``index_page_offset`` (10), ``dictionary_page_offset``
(11) and ``bloom_filter_offset`` (14); ``RowGroup.ordinal`` (7) is renumbered.
"""

from __future__ import annotations

import struct
from typing import IO, Any

MAGIC = b"PAR1"

# compact-protocol types
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)

# FileMetaData / RowGroup / ColumnChunk / ColumnMetaData field ids
_FMD_NUM_ROWS, _FMD_ROW_GROUPS = 3, 4
_RG_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
_CC_FILE_OFFSET, _CC_META, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX = 2, 3, 4, 6
_CMD_OFFSETS = (9, 10, 11, 14)

Field = list  # [field id, compact type, value]: a struct is a list of them, in the order read


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = out = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, t: int) -> Any:
        if t in (_TRUE, _FALSE):  # in a list or map: a byte of its own
            return self.byte() == _TRUE
        if t == _BYTE:
            return self.byte()
        if t in (_I16, _I32, _I64):
            return self.zigzag()
        if t == _DOUBLE:
            self.pos += 8
            return self.data[self.pos - 8:self.pos]
        if t == _BINARY:
            n = self.varint()
            self.pos += n
            return self.data[self.pos - n:self.pos]
        if t in (_LIST, _SET):
            head = self.byte()
            n, et = head >> 4, head & 0x0F
            if n == 15:
                n = self.varint()
            return [et, [self.value(et) for _ in range(n)]]
        if t == _MAP:
            n = self.varint()
            if not n:
                return [0, []]
            kv = self.byte()
            return [kv, [(self.value(kv >> 4), self.value(kv & 0x0F)) for _ in range(n)]]
        if t == _STRUCT:
            return self.struct()
        raise ValueError(f"Parquet footer: unknown Thrift compact type {t}")

    def struct(self) -> list[Field]:
        fields: list[Field] = []
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return fields
            t, delta = head & 0x0F, head >> 4
            fid = last + delta if delta else self.zigzag()
            last = fid
            fields.append([fid, t, (t == _TRUE) if t in (_TRUE, _FALSE) else self.value(t)])


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _write_value(t: int, v: Any, out: bytearray) -> None:
    if t in (_TRUE, _FALSE):
        out.append(_TRUE if v else _FALSE)
    elif t == _BYTE:
        out.append(v)
    elif t in (_I16, _I32, _I64):
        out += _zigzag(v)
    elif t == _DOUBLE:
        out += v
    elif t == _BINARY:
        out += _varint(len(v)) + v
    elif t in (_LIST, _SET):
        et, items = v
        out.append((len(items) << 4) | et if len(items) < 15 else 0xF0 | et)
        if len(items) >= 15:
            out += _varint(len(items))
        for x in items:
            _write_value(et, x, out)
    elif t == _MAP:
        kv, items = v
        out += _varint(len(items))
        if items:
            out.append(kv)
            for a, b in items:
                _write_value(kv >> 4, a, out)
                _write_value(kv & 0x0F, b, out)
    elif t == _STRUCT:
        _write_struct(v, out)
    else:
        raise ValueError(f"Parquet footer: unknown Thrift compact type {t}")


def _write_struct(fields: list[Field], out: bytearray) -> None:
    last = 0
    for fid, t, v in fields:
        if t in (_TRUE, _FALSE):
            t = _TRUE if v else _FALSE
        delta = fid - last
        if 0 < delta <= 15:
            out.append((delta << 4) | t)
        else:
            out.append(t)
            out += _zigzag(fid)
        last = fid
        if t not in (_TRUE, _FALSE):
            _write_value(t, v, out)
    out.append(0)


def read_struct(data: bytes) -> list[Field]:
    """A Thrift compact-protocol struct (e.g. a Parquet footer) as ``[field id, type, value]`` fields."""
    return _Reader(data).struct()


def write_struct(fields: list[Field]) -> bytes:
    """The bytes of a struct :func:`read_struct` gave (the same bytes where nothing changed)."""
    out = bytearray()
    _write_struct(fields, out)
    return bytes(out)


def _get(fields: list[Field], fid: int) -> Field | None:
    return next((f for f in fields if f[0] == fid), None)


def _shift(fields: list[Field], fids: tuple[int, ...], by: int) -> None:
    for f in fields:
        if f[0] in fids:
            f[2] += by


def footer(part: bytes) -> tuple[list[Field], int]:
    """A Parquet file's footer (decoded) and where it starts."""
    if len(part) < 12 or part[:4] != MAGIC or part[-4:] != MAGIC:
        raise ValueError("not a Parquet file (no PAR1 at both ends)")
    n = struct.unpack("<I", part[-8:-4])[0]
    start = len(part) - 8 - n
    return read_struct(part[start:len(part) - 8]), start


class PartsWriter:
    """Appends Parquet parts (whole files of the same schema, as :func:`encode_part` writes them) to
    ``f`` as one Parquet file: ``write(part)`` per part, in order, then ``close()``.  ``empty``: a
    part with no row, whose footer is the output's when no part has rows."""

    def __init__(self, f: IO[bytes], empty: bytes) -> None:
        self.f, self.pos = f, 4
        self.meta, _ = footer(empty)
        self.groups: list[list[Field]] = []
        self.rows = 0
        f.write(MAGIC)

    def write(self, part: bytes) -> None:
        meta, start = footer(part)
        groups = _get(meta, _FMD_ROW_GROUPS)
        if groups is None or not _get(meta, _FMD_NUM_ROWS)[2]:
            return
        by = self.pos - 4  # the part's chunks start at byte 4 of the part and at self.pos here
        for rg in groups[2][1]:
            _shift(rg, (_RG_FILE_OFFSET,), by)
            for f in rg:
                if f[0] == _RG_ORDINAL:
                    f[2] = len(self.groups)
            for cc in _get(rg, _RG_COLUMNS)[2][1]:
                _shift(cc, (_CC_FILE_OFFSET, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX), by)
                cmd = _get(cc, _CC_META)
                if cmd is not None:
                    _shift(cmd[2], _CMD_OFFSETS, by)
            self.groups.append(rg)
        self.rows += _get(meta, _FMD_NUM_ROWS)[2]
        self.f.write(memoryview(part)[4:start])
        self.pos += start - 4

    def close(self) -> None:
        meta = [list(f) for f in self.meta]
        for f in meta:
            if f[0] == _FMD_NUM_ROWS:
                f[2] = self.rows
            elif f[0] == _FMD_ROW_GROUPS:
                f[2] = [_STRUCT, self.groups]
        if _get(meta, _FMD_ROW_GROUPS) is None:
            raise ValueError("Parquet footer without row_groups")
        data = write_struct(meta)
        self.f.write(data + struct.pack("<I", len(data)) + MAGIC)

    def abort(self) -> None:
        pass


def encode_part(table, schema=None) -> bytes:
    """``table`` as a Parquet file of one row group, in tmplc's output settings (no dictionary
    encoding, snappy, min/max statistics for ``tmplc_row`` only); ``table`` None: an empty file of
    ``schema``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if table is None:
        table = schema.empty_table()
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy", use_dictionary=False, write_statistics=["tmplc_row"],
                   row_group_size=max(1, table.num_rows))
    return sink.getvalue().to_pybytes()
