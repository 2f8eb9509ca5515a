"""tmplc.fileio: the decoding policy, atomic outputs, safe names."""

from __future__ import annotations

import os

import pytest

from tmplc.fileio import InputError, OutputError, atomic_output, atomic_write_text, read_text, safe_name


@pytest.mark.parametrize("data, text", [(b"hi\n", "hi\n"), (b"\xef\xbb\xbfhi", "hi"), (b"", "")])
def test_reads_utf8_with_or_without_bom(tmp_path, data, text):
    f = tmp_path / "f.txt"
    f.write_bytes(data)
    assert read_text(f) == text


@pytest.mark.parametrize("data, offset, line, column, words", [
    (b"ok\nab\xffc", 5, 2, 3, "invalid UTF-8 at byte offset 5"),
    (b"a\n\xed\xa0\x80", 2, 2, 1, "invalid UTF-8 at byte offset 2"),        # an encoded lone surrogate
    ("x".encode("utf-16"), 0, 1, 1, "UTF-16"),
    (b"\xef\xbb\xbfab\n\xc3", 6, 2, 1, "invalid UTF-8 at byte offset 6"),   # offsets count the BOM
])
def test_anything_else_names_file_offset_line(tmp_path, data, offset, line, column, words):
    f = tmp_path / "f.txt"
    f.write_bytes(data)
    with pytest.raises(InputError) as e:
        read_text(f)
    assert (e.value.offset, e.value.line, e.value.column) == (offset, line, column)
    assert str(e.value).startswith(f"{f}:{line}:{column}: ") and words in str(e.value)


def test_missing_and_folder_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_text(tmp_path / "nope")
    with pytest.raises(InputError, match="is a folder"):
        read_text(tmp_path)


def test_atomic_output_creates_parents_and_renames(tmp_path):
    out = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(out, "hello\r\n")
    assert out.read_bytes() == b"hello\r\n"
    assert os.listdir(out.parent) == ["out.txt"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_atomic_output_removes_temp_and_keeps_old_file(tmp_path, exc):
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    with pytest.raises(exc):
        with atomic_output(out) as f:
            f.write(b"partial")
            assert out.read_bytes() == b"old"       # the final name is untouched while writing
            raise exc()
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_output_problems_are_output_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_text(tmp_path, "x")
    with pytest.raises(OutputError, match="is a file"):
        atomic_write_text(tmp_path / "file" / "out.txt", "x")
    with pytest.raises(OutputError, match="no space left"):
        atomic_write_text("/dev/full", "x")
    assert not os.path.isfile("/dev/full")                 # a device is written in place, never replaced
    with pytest.raises(OutputError, match="lone surrogate U\\+D800"):
        atomic_write_text(tmp_path / "s.txt", "a\ud800")
    assert not (tmp_path / "s.txt").exists()


@pytest.mark.parametrize("name, safe", [
    ("../../x", "x"), ("/tmp/PWNED", "PWNED"), ("..", "unnamed"), ("", "unnamed"), (None, "unnamed"),
    (".hidden", "hidden"), ("C:\\win\\evil", "evil"), ("a\x00b", "a_b"), ("Llama 3.1 8B", "Llama 3.1 8B"),
])
def test_safe_name(name, safe):
    assert safe_name(name) == safe
