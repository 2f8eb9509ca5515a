"""Readers: JSONL, JSON, CSV/TSV, Parquet files -> rows, in batches (streaming) or as one list.

Rows are numbered 0, 1, 2... among the data rows (a CSV header is not a row, a blank JSONL line is
skipped and not counted).  A row is a ``dict``, or a ``BadRow(reason)`` kept in its place so that
row numbers stay true; a JSONL row travels as ``RawLine`` (its bytes) until ``materialize`` parses
it, so that the parsing can happen in a worker process.

What each reader does with damaged input (the file-level problems raise ``InputError``, exit 2):

* every text file: UTF-8 with or without a BOM; a UTF-16/UTF-32 BOM is ``InputError``.
* JSONL: lines are split on ``\\n`` only (a raw U+2028 or U+0085 inside a JSON string is text, not
  a line break).  A line that is not UTF-8, not JSON, nested deeper than ``MAX_DEPTH``, or holds
  an integer longer than Python's limit (4,300 digits) becomes a ``BadRow`` naming
  ``file:line`` (and the byte offset for bad UTF-8).  Lines are parsed with orjson where it is
  installed, and with ``json`` wherever the two could differ (``parse_line``): same rows, same reasons.
* JSON: one list of rows, or an object holding exactly one list; the file is read whole (use
  JSONL for large data).  Invalid JSON is ``InputError`` with line and column.
* CSV/TSV: the header names the columns; cells are strings.  The field size limit is raised
  (a cell of any size is read).  A row with more or fewer cells than the header, or with bytes
  that are not UTF-8, is a ``BadRow`` naming its line.
* Parquet: read one row group batch at a time with pyarrow; a file that is not Parquet or is
  truncated is ``InputError``.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from tmplc.errors import MessageError, TmplcError
from tmplc.fileio import UTF8_BOM, InputError, decode_text, read_text, utf8_bom_length

KINDS = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "csv": "csv", "tsv": "tsv",
         "parquet": "parquet", "pq": "parquet"}
MAX_DEPTH = 100  # JSON nesting a row may have (messages need 3-5 levels)


@dataclass(frozen=True)
class BadRow:
    """A row that could not even be read (kept in place so that row numbers stay true)."""

    reason: str


@dataclass(frozen=True)
class RawLine:
    """A JSONL line not yet parsed: its bytes, 1-based line number and byte offset in the file."""

    data: bytes
    line: int
    offset: int
    path: str


class RawLines(Sequence):
    """A batch of JSONL lines: one ``bytes`` holding them (blank lines between them included) with
    each line's start and end offsets in the file and its line number; an item is a ``RawLine``.
    It pickles as a few objects, not one per line (a batch sent to a worker process)."""

    __slots__ = ("blob", "base", "starts", "ends", "lines", "path")

    def __init__(self, blob: bytes, base: int, starts: array, ends: array, lines: array, path: str) -> None:
        self.blob, self.base, self.starts, self.ends, self.lines, self.path = blob, base, starts, ends, lines, path

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        s = self.starts[k]
        return RawLine(self.blob[s - self.base:self.ends[k] - self.base], self.lines[k], s, self.path)

    def __iter__(self):
        blob, base, path = self.blob, self.base, self.path
        for s, e, n in zip(self.starts, self.ends, self.lines):
            yield RawLine(blob[s - base:e - base], n, s, path)

    def __reduce__(self):
        return RawLines, (self.blob, self.base, self.starts, self.ends, self.lines, self.path)


_BLOCK = 1 << 22  # bytes read at a time
_BLANK = frozenset(b" \t\n\r\x0b\x0c")  # the bytes bytes.isspace() accepts

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth_exceeds(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests deeper than ``limit`` (strings skipped; cheap when it cannot)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if text.count("[") + text.count("{") <= limit:
        return False
    from itertools import accumulate

    marks = _BRACKETS.findall(_STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in marks), default=0) > limit


def parse_json_value(text: str | bytes, where: str, col_offset: int = 0) -> Any:
    """``json.loads`` with tmplc's bounds; raises ``ValueError`` with a reason that says where."""
    if json_depth_exceeds(text):
        raise ValueError(f"{where}: JSON nested deeper than {MAX_DEPTH} levels (tmplc's limit for a row)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}:{e.colno + col_offset}: invalid JSON: {e.msg}") from None
    except RecursionError:
        raise ValueError(f"{where}: JSON nested too deeply") from None
    except ValueError as e:  # e.g. an integer longer than sys.get_int_max_str_digits()
        msg = str(e)
        if "digits" in msg:
            msg = (f"a JSON number with more than {sys.get_int_max_str_digits()} digits "
                   "(Python's limit for integers read from text)")
        raise ValueError(f"{where}: {msg}") from None


try:  # optional: a faster parser for JSONL rows (the same values; what it refuses, json parses)
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

# digits -> "0", every other byte -> " ": a run of 19 digits is then a run of 19 "0"
_DIGIT_RUNS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_DIGITS = b"0" * 19


def parse_line(item: RawLine, take: Callable[[Any], Any] | None = None) -> tuple[Any, Any]:
    """(row, taken) for a JSONL line; the row is what ``materialize`` gives.

    The line is parsed with orjson where it is installed, and again with ``json`` (whose values,
    and reasons with their positions, are the reference) wherever the two could differ: orjson
    refuses (invalid UTF-8 or JSON, a lone surrogate escape, NaN/Infinity, a number beyond a
    double's range), or the line has a run of 19 or more digits (orjson reads integers beyond 64
    bits as floats) or more brackets than ``MAX_DEPTH`` (``json``'s path checks the nesting).

    ``take(value)``, when given, sees orjson's value first, before those checks: a value it takes
    (returns anything but None for) is returned at once, with what it returned.  So it may take
    only values whose numbers and nesting do not matter (e.g. rows holding only lists, objects
    and text); text from orjson is valid Unicode (no lone surrogate)."""
    data = item.data
    if _orjson is not None:
        try:
            value = _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass
        else:
            if take is not None:
                got = take(value)
                if got is not None:
                    return value, got
            if data.count(b"[") + data.count(b"{") <= MAX_DEPTH and \
                    _LONG_DIGITS not in data.translate(_DIGIT_RUNS):
                return value, None
    return _materialize_slow(item), None


def materialize(item: Any) -> Any:
    """A row as a dict (or list/scalar as found), or ``BadRow``: parses a ``RawLine``."""
    if not isinstance(item, RawLine):
        return item
    return parse_line(item)[0]


def _materialize_slow(item: RawLine) -> Any:
    data = item.data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return BadRow(f"{item.path}:{item.line}: invalid UTF-8 at byte offset {item.offset + e.start} "
                      f"(bytes {data[e.start:e.start + 4].hex(' ')}); tmplc reads UTF-8 text")
    try:
        return parse_json_value(text, f"{item.path}:{item.line}")
    except ValueError as e:
        return BadRow(str(e))


# ------------------------------------------------------------------------------------------------
# the readers

def data_kind(path: str | Path, fmt: str | None = None) -> str:
    p = Path(path)
    kind = (fmt or p.suffix.lstrip(".")).lower()
    if kind not in KINDS:
        raise InputError(path, f"unknown data file type {('.' + kind) if kind else '(no extension)'}: "
                               "expected .jsonl, .json, .csv, .tsv or .parquet")
    return KINDS[kind]


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(path, "no such data file")
    if p.is_dir():
        raise InputError(path, "is a folder, not a data file")
    try:
        with p.open("rb"):
            pass
    except OSError as e:
        raise InputError(path, f"cannot read this data file: {e.strerror or e}") from None
    return p


class Reader:
    """Streams one data file in batches: ``for batch in reader.batches(n)`` gives lists of rows
    (dict | BadRow | RawLine); ``columns`` (CSV header / Parquet schema, else None) and
    ``size`` (bytes) are known before reading."""

    def __init__(self, path: str | Path, fmt: str | None = None) -> None:
        self.path = str(path)
        self.kind = data_kind(path, fmt)
        self.file = _check_file(path)
        self.size = self.file.stat().st_size
        self.columns: list[str] | None = None
        self.bytes_read = 0
        self._pf = None
        if self.kind == "parquet":
            self._pf = _open_parquet(self.file, self.path)
            self.columns = list(self._pf.schema_arrow.names)
        elif self.kind in ("csv", "tsv"):
            self.columns = self._csv_header()

    def batches(self, batch_size: int = 1000) -> Iterator[list]:
        gen = {"jsonl": self._jsonl, "json": self._json, "csv": self._csv, "tsv": self._csv,
               "parquet": self._parquet}[self.kind]
        buf: list = []
        for row in gen(batch_size):
            if isinstance(row, (list, RawLines)):  # a whole batch (JSONL, JSON, Parquet)
                yield row
                continue
            buf.append(row)
            if len(buf) >= batch_size:
                yield buf
                buf = []
        if buf:
            yield buf

    # -- JSONL ---------------------------------------------------------------------------------
    def _jsonl(self, batch_size):
        """Whole batches as ``RawLines`` (blank lines skipped, not counted as rows).  The file is read
        in large blocks and only the line ends are looked for here; each line's bytes are cut out
        where the batch is parsed (a worker process)."""
        path = self.path
        with self.file.open("rb") as f:
            buf = f.read(max(_BLOCK, 4))
            pos = utf8_bom_length(buf[:4], self.path, what="data file")
            base = 0  # the file offset of buf[0]
            n = 0  # lines so far, blank ones included
            first = None  # where in buf the batch being gathered starts
            starts, ends, lines = array("q"), array("q"), array("q")
            while True:
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    more = f.read(_BLOCK)
                    if more:  # keep the gathered batch and the line begun
                        keep = pos if first is None else first
                        buf = buf[keep:] + more
                        base += keep
                        pos -= keep
                        if first is not None:
                            first = 0
                        continue
                    if pos >= len(buf):
                        break
                    end = len(buf)  # the last line, without a line break
                else:
                    end = nl + 1
                n += 1
                if buf[pos] in _BLANK and buf[pos:end].isspace():
                    pos = end
                    continue
                if first is None:
                    first = pos
                starts.append(base + pos)
                ends.append(base + end)
                lines.append(n)
                pos = end
                if len(lines) >= batch_size:
                    self.bytes_read = base + pos
                    yield RawLines(buf[first:pos], base + first, starts, ends, lines, path)
                    first = None
                    starts, ends, lines = array("q"), array("q"), array("q")
            self.bytes_read = base + len(buf)
        if lines:
            yield RawLines(buf[first:pos], base + first, starts, ends, lines, path)

    # -- JSON ----------------------------------------------------------------------------------
    def _json(self, batch_size):
        """Whole batches (slices of the file's list): a row may itself be a list (a bare list of
        messages), so rows are never yielded one by one here."""
        text = read_text(self.file, what="data file")
        self.bytes_read = self.size
        if json_depth_exceeds(text, MAX_DEPTH + 2):
            raise InputError(self.path, f"JSON nested deeper than {MAX_DEPTH} levels (tmplc's limit for a row)")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(self.path, f"invalid JSON: {e.msg}", line=e.lineno, column=e.colno) from None
        except RecursionError:
            raise InputError(self.path, "JSON nested too deeply") from None
        except ValueError as e:
            raise InputError(self.path, f"{e}") from None
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise InputError(self.path, "a .json data file must hold a list of rows, or an object with "
                                            f"exactly one list (this object has {len(lists)} lists); "
                                            "for one row per line use .jsonl")
            data = lists[0]
        if not isinstance(data, list):
            raise InputError(self.path, f"a .json data file must hold a list of rows, not a JSON "
                                        f"{_json_type(data)}")
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size]

    # -- CSV -----------------------------------------------------------------------------------
    def _lines(self, track: list):
        """Decoded lines (invalid bytes kept as surrogate escapes, found per row) + byte offsets."""
        with self.file.open("rb") as f:
            offset = 0
            for n, raw in enumerate(f, 1):
                if n == 1:
                    if raw.startswith(UTF8_BOM):
                        raw = raw[len(UTF8_BOM):]
                        offset += len(UTF8_BOM)
                    else:
                        decode_text(raw[:4], self.path, what="data file")
                track.append((n, offset, raw))
                offset += len(raw)
                self.bytes_read = offset
                yield raw.decode("utf-8", "surrogateescape")

    def _csv_reader(self, track):
        _raise_field_limit()
        return csv.reader(self._lines(track), delimiter="\t" if self.kind == "tsv" else ",")

    def _csv_header(self) -> list[str]:
        track: list = []
        rd = self._csv_reader(track)
        try:
            header = next(rd, None)
        except csv.Error as e:
            raise InputError(self.path, f"CSV header: {e}", line=1) from None
        if header is None or not any(h.strip() for h in header):
            raise InputError(self.path, "empty CSV file: the first line must name the columns")
        bad = _bad_bytes(header, track)
        if bad:
            raise InputError(self.path, f"CSV header: {bad}", line=1)
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise InputError(self.path, f"CSV header names a column twice: {dup}", line=1)
        return header

    def _csv(self, _n):
        track: list = []
        rd = self._csv_reader(track)
        header = None
        while True:
            track.clear()
            try:
                cells = next(rd)
            except StopIteration:
                return
            except csv.Error as e:
                line = track[0][0] if track else rd.line_num
                yield BadRow(f"{self.path}:{line}: CSV: {e}")
                continue
            if header is None:
                header = cells
                continue
            line = track[0][0] if track else rd.line_num
            if not cells or (len(cells) == 1 and not cells[0] and len(header) > 1):
                continue  # a blank line is not a row
            bad = _bad_bytes(cells, track)
            if bad:
                yield BadRow(f"{self.path}:{line}: {bad}")
            elif len(cells) != len(header):
                yield BadRow(f"{self.path}:{line}: this CSV row has {len(cells)} cells, the header has "
                             f"{len(header)} columns")
            else:
                yield dict(zip(header, cells))

    # -- Parquet -------------------------------------------------------------------------------
    def _parquet(self, batch_size):
        import pyarrow as pa

        try:
            for rb in self._pf.iter_batches(batch_size=batch_size):
                self.bytes_read = min(self.size, self.bytes_read + rb.nbytes)
                yield rb.to_pylist()
        except (pa.ArrowException, OSError) as e:
            raise InputError(self.path, f"damaged Parquet file: {e}") from None


def _json_type(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "number")


def _raise_field_limit() -> None:
    limit = 2 ** 31 - 1
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def _bad_bytes(cells: list[str], track: list) -> str | None:
    """A reason naming the first invalid UTF-8 byte in a CSV row (kept as a surrogate escape)."""
    for c in cells:
        try:
            c.encode("utf-8")
        except UnicodeEncodeError:
            for line, offset, raw in track:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    return (f"invalid UTF-8 at byte offset {offset + e.start} (line {line}, bytes "
                            f"{raw[e.start:e.start + 4].hex(' ')}); tmplc reads UTF-8 text")
            return "invalid UTF-8 in this row; tmplc reads UTF-8 text"
    return None


def _open_parquet(file: Path, shown: str):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover
        raise TmplcError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        return pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as e:
        msg = str(e)
        if "magic bytes" in msg or "size is 0" in msg or "File is smaller" in msg:
            msg = "not a Parquet file, or a truncated one (" + msg + ")"
        raise InputError(shown, msg) from None


# ------------------------------------------------------------------------------------------------
# the list API

def read_rows(source: Any, *, fmt: str | None = None, on_error: str = "skip") -> list:
    """Rows as dicts (or ``BadRow``) from a path, a ``datasets.Dataset`` or a list.

    ``on_error="raise"``: the first unreadable row raises ``MessageError`` naming it."""
    if isinstance(source, list):
        return source
    if hasattr(source, "column_names") and hasattr(source, "to_list"):  # datasets.Dataset
        return source.to_list()
    rows: list = []
    for batch in Reader(source, fmt).batches(1000):
        for item in batch:
            item = materialize(item)
            if isinstance(item, BadRow) and on_error == "raise":
                raise MessageError(None, item.reason, row=len(rows))
            rows.append(item)
    return rows
