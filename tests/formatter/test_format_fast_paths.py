"""`tmplc format`'s fast paths (issue 18) give exactly what the reference paths give: JSONL lines
parsed with orjson == parsed with json (values, and every bad line's reason with its position), and
rows in the canonical shape skipping normalization == normalized; the CLI's output and summary are
byte-identical with orjson and without."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tmplc.cli import main
from tmplc.data import readers
from tmplc.data.readers import RawLine, _materialize_slow, materialize, parse_line

from conftest import tokenizer_dir

# lines where orjson and json could part ways, each parsed both ways below
LINES = [
    b'{"messages": [{"role": "user", "content": "hi"}]}\n',
    b'{"a": 123456789012345678901234567890}\n',          # beyond 64 bits: json keeps the int
    b'{"a": -9999999999999999999}\n',                     # 19 digits, below int64
    b'{"a": 18446744073709551615, "b": 9223372036854775807}\n',
    b'{"a": 1e400, "b": -1e400}\n',                       # orjson refuses, json gives inf
    b'{"a": NaN, "b": Infinity, "c": -Infinity}\n',
    b'{"a": 0.1, "b": 1e-320, "c": -0, "d": -0.0, "e": 1E5, "f": 2.5e-3}\n',
    b'{"a": 0.12345678901234567890123}\n',                # a long mantissa
    b'{"a": "' + b"1" * 30 + b'"}\n',                     # a digit run inside text
    b'{"a": ' + b"1" * 4301 + b'}\n',                     # over Python's int digits limit
    b'{"a": "\\ud800"}\n',                                # a lone surrogate escape
    b'{"a": "\\ud83d\\ude00 \\u00e9"}\n',                 # a pair, and a BMP escape
    b'{"a": "caf\xc3\xa9 \xe6\x9d\xb1 \xf0\x9f\x99\x82"}\n',
    b'{"a": "\xed\xa0\x80"}\n',                           # a surrogate encoded in UTF-8
    b'{"a": "\xc0\x80"}\n',                               # overlong
    b'{"a": "ok"} \xff\n',                                # bad UTF-8 after the value
    b'{"a": 1,}\n',                                       # bad JSON: the column is reported
    b'{"a": [1, 2}\n',
    b'{"a": "x\x01y"}\n',                                 # a raw control character
    b'\xef\xbb\xbf{"a": 1}\n',                            # a BOM on a later line
    b'{"a": 1, "a": 2, "b": 3}\n',                        # duplicate keys
    b'[' * 101 + b']' * 101 + b'\n',                      # deeper than MAX_DEPTH
    b'{"a": ' + b'[' * 60 + b']' * 60 + b', "b": ' + b'{"c": ' * 45 + b'1' + b'}' * 45 + b'}\n',
    b'null\n', b'"text"\n', b'3\n', b'[{"role": "user", "content": "x"}]\n',
    b'{"a": 1}\x0c\n',                                    # a form feed is not JSON whitespace
    b'{"messages": [{"role": "user", "content": "a"}]} {"b": 1}\n',
]


def _same(a, b) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)


@pytest.mark.parametrize("k", range(len(LINES)))
def test_orjson_lines_parse_as_json_parses_them(k):
    item = RawLine(LINES[k], k + 1, 10 * k, "d.jsonl")
    want = _materialize_slow(item)
    assert _same(materialize(item), want)
    assert _same(parse_line(item)[0], want)
    if readers._orjson is None:  # pragma: no cover - orjson is a test dependency
        pytest.skip("orjson is not installed")


def test_bad_lines_keep_their_positions():
    bad = materialize(RawLine(b'{"a": 1,}\n', 7, 0, "d.jsonl"))
    assert isinstance(bad, readers.BadRow) and bad.reason.startswith("d.jsonl:7:9: invalid JSON")
    bad = materialize(RawLine(b'{"a": "\xff"}\n', 3, 100, "d.jsonl"))
    assert isinstance(bad, readers.BadRow) and "invalid UTF-8 at byte offset 107" in bad.reason


# rows for the canonical shortcut: canonical ones, and near misses that must be normalized
ROWS = [
    {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi \u00e9"},
                  {"role": "assistant", "content": "Hello \U0001f642"}]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    {"messages": [{"content": "Hi", "role": "user"}, {"content": "Yo", "role": "assistant"}]},
    {"messages": [{"role": "Human", "content": "Hi"}, {"role": "gpt", "content": "Hello"}]},
    {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}]},
    {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]},
    {"messages": [{"role": "user", "content": "q", "name": "n"}, {"role": "assistant", "content": "x"}]},
    {"messages": [{"role": "user", "content": "\ud800"}, {"role": "assistant", "content": "x"}]},
    {"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "x"}]},
    {"messages": [{"role": "user", "content": "q"}, "not a message"]},
    {"messages": []},
    {"messages": "text"},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "id": 12345678901234567890123},
    {"Messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    {"messages": [{"role": "user", "content": "<|begin_of_text|>q"}, {"role": "assistant", "content": "a"}]},
    {"messages": [{"role": "user", "content": "q <|eot_id|>"}, {"role": "assistant", "content": "a"}]},
]


@pytest.mark.parametrize("default_system", [None, "Be brief."])
@pytest.mark.parametrize("source", ["auto", "openai"])
def test_canonical_rows_skip_normalizing_with_the_same_result(default_system, source):
    import tmplc
    from tmplc.formatter.core import make_options
    from tmplc.formatter.rows import RowsJob, process_rows
    from tmplc.formatter.tokenizer_load import load_tokenizer_info

    job = RowsJob(tmplc.load("llama-3"), load_tokenizer_info(tokenizer_dir("llama3")), make_options(),
                  source=source, default_system=default_system)
    lines = [RawLine(json.dumps(r).encode() + b"\n", k + 1, 0, "d.jsonl") for k, r in enumerate(ROWS)]
    dicts = [materialize(x) for x in lines]
    numbers = list(range(len(ROWS)))
    fast = process_rows(job, numbers, lines, statuses=True, lists=True)
    ref = process_rows(job, numbers, dicts, statuses=True, lists=True)
    assert fast.statuses == ref.statuses and fast.lists == ref.lists and fast.rows == ref.rows
    assert fast.ids.tolist() == ref.ids.tolist() and fast.labels.tolist() == ref.labels.tolist()
    assert fast.summary.as_dict() == ref.summary.as_dict() and fast.sources == ref.sources
    assert fast.facts.double_bos == ref.facts.double_bos and fast.special_rows == ref.special_rows
    assert fast.first_problem == ref.first_problem


def test_cli_output_identical_with_and_without_orjson(tmp_path, monkeypatch):
    good = [{"messages": [{"role": "user", "content": f"q{i} \u00e9"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(40)]
    lines = [json.dumps(r).encode() + b"\n" for r in good] + LINES
    data = tmp_path / "d.jsonl"
    data.write_bytes(b"".join(lines))
    got = {}
    for name, mod in (("orjson", readers._orjson), ("json", None)):
        monkeypatch.setattr(readers, "_orjson", mod)
        for ext in ("parquet", "jsonl"):
            out, summ = tmp_path / f"{name}.{ext}", tmp_path / f"{name}.{ext}.json"
            assert main(["format", str(data), "-t", "llama-3", "--tokenizer", str(tokenizer_dir("llama3")),
                         "--out", str(out), "--max-rejected", "100%", "--summary-json", str(summ)]) == 0
            s = json.loads(summ.read_text())
            s.pop("output")
            got[name, ext] = (out.read_bytes(), s)
    for ext in ("parquet", "jsonl"):
        assert got["orjson", ext] == got["json", ext]
    reasons = [r["reason"] for r in got["json", "jsonl"][1]["rejected"]]
    assert any(":57:9: invalid JSON" in r for r in reasons)       # b'{"a": 1,}' is line 40 + 17
    assert any("invalid UTF-8 at byte offset" in r for r in reasons)
    assert any("Unexpected UTF-8 BOM" in r for r in reasons)


# -- the JSONL reader's batches (RawLines) -------------------------------------------------------

_LINE_BYTES = st.lists(st.sampled_from([b'{"a": 1}', b"", b"  ", b"\t", b"\r", b"\x0b", b"\x0c", b" {\"b\": \"x\"}",
                                        b"[1,2]", b"\xe6\x97\xa5", b'["\xe6\x97\xa5"]', b"\xff", b" \xc2\xa0 ",
                                        b"\xef\xbb\xbf{}"]), max_size=25)


def _reference_rows(data: bytes, path: str) -> list[tuple]:
    """(bytes, line, offset, path) of each non-blank line, as the reader's contract states it: lines
    split on \\n only, numbered from 1 with blank ones counted, a UTF-8 BOM at byte 0 not part of line 1."""
    out, offset = [], 0
    for n, line in enumerate(data.split(b"\n"), 1):
        start, offset = offset, offset + len(line) + 1
        if n == 1 and line.startswith(b"\xef\xbb\xbf"):
            line, start = line[3:], 3
        if line and not line.isspace():
            out.append((line + (b"\n" if offset <= len(data) else b""), n, start, path))
    return out


@example(lines=[b"\xef\xbb\xbf{}", b"x"], crlf=True, bom=False, final_newline=False, block=1, batch=1)
@example(lines=[b'["\xe6\x97\xa5"]'], crlf=False, bom=False, final_newline=True, block=1 << 22, batch=3)
@given(lines=_LINE_BYTES, crlf=st.booleans(), bom=st.booleans(), final_newline=st.booleans(),
       block=st.sampled_from([1, 2, 3, 5, 8, 64, 1 << 22]), batch=st.integers(1, 6))
def test_jsonl_batches_are_the_files_lines_whatever_the_block_size(tmp_path_factory, lines, crlf, bom,
                                                                    final_newline, block, batch):
    """Reading in blocks of any size (a line or a batch across block ends) gives every non-blank
    line with its number and offset, in batches of ``batch``; the bytes read reach the file's size.
    The second example: a first line starting with a multi-byte character (was refused as invalid
    UTF-8 when its first 4 bytes cut the character)."""
    import pickle

    sep = b"\r\n" if crlf else b"\n"
    data = (b"\xef\xbb\xbf" if bom else b"") + sep.join(lines) + (sep if final_newline and lines else b"")
    f = tmp_path_factory.mktemp("jsonl") / "d.jsonl"
    f.write_bytes(data)
    saved, readers._BLOCK = readers._BLOCK, block
    try:
        r = readers.Reader(f)
        got = list(r.batches(batch))
    finally:
        readers._BLOCK = saved
    want = _reference_rows(data, str(f))
    assert [len(b) for b in got] == [len(want[i:i + batch]) for i in range(0, len(want), batch)]
    flat = [(x.data, x.line, x.offset, x.path) for b in got for x in b]
    assert flat == want
    assert r.bytes_read == len(data)
    for b in got:  # what a worker process gets: the same lines
        assert isinstance(b, readers.RawLines)
        assert list(pickle.loads(pickle.dumps(b))) == list(b) == [b[i] for i in range(len(b))]
        assert b[1:3] == list(b)[1:3]
