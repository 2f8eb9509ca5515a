"""The one place tmplc reads text files and writes output files.

Reading (``read_text``, ``decode_text``): UTF-8, with or without a byte-order mark.  Anything
else (UTF-16/UTF-32 with a BOM, invalid UTF-8, encoded lone surrogates) is ``InputError``
naming the file, the byte offset, the line and the column; the CLI reports it as bad input
(exit 2).  Nothing is guessed or replaced.

Writing (``atomic_output``, ``atomic_write_text``): every file is written to a hidden temporary
name in the same folder (``.NAME.tmplc-PID-RANDOM.tmp``) and renamed onto the final name only
when complete, so the final name never holds a partial file: an exception or Ctrl-C removes the
temporary file; ``kill -9`` may leave the hidden temporary file, never the final name.  Missing
parent folders are created.  An existing device or pipe (``/dev/null``, ``/dev/stdout``, a FIFO)
is written in place instead (it cannot be replaced, and must not be).  Problems (a folder where the file should be, a read-only folder,
a full disk) are ``OutputError`` (exit 2) naming the path.

Text that contains lone surrogates cannot be written as UTF-8: ``atomic_write_text`` and
``write_stdout`` refuse it with ``OutputError`` naming the character position (nothing is
escaped silently).

``safe_name`` reduces an untrusted string (file metadata, a model name) to a base name that
cannot leave the folder it is joined to.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import sys
from pathlib import Path
from typing import IO, Iterator

from tmplc.errors import TmplcError

UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
)


class InputError(TmplcError, ValueError):
    """A file (or standard input) that cannot be read as tmplc input.  The CLI exits 2.

    Attributes: ``path`` (str), ``message`` (the bare reason), ``line`` / ``column`` (1-based,
    when known), ``offset`` (0-based byte offset, when known)."""

    exit_code = 2

    def __init__(self, path, message: str, line: int | None = None, column: int | None = None,
                 offset: int | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.message = message
        self.line = line
        self.column = column
        self.offset = offset
        where = self.path or "<input>"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")


class OutputError(TmplcError, OSError):
    """An output that cannot be written (the CLI exits 2); ``path`` names it."""

    exit_code = 2

    def __init__(self, path, message: str) -> None:
        self.path = str(path) if path is not None else None
        self.message = message
        TmplcError.__init__(self, f"{self.path or '<output>'}: {message}")

    def __str__(self) -> str:
        return f"{self.path or '<output>'}: {self.message}"


# ---------------------------------------------------------------------------------------- reading

def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a byte offset (column counted in bytes)."""
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


def utf8_bom_length(head: bytes, path=None, *, what: str = "file", line_offset: int = 0) -> int:
    """The length of the UTF-8 BOM that ``head`` (a file's first bytes) starts with (0 or 3); a
    UTF-16/UTF-32 BOM raises ``InputError``."""
    if head.startswith(UTF8_BOM):
        return len(UTF8_BOM)
    for bom, name in _OTHER_BOMS:
        if head.startswith(bom):
            raise InputError(path, f"this {what} is {name} (byte-order mark at byte 0); tmplc reads "
                                   "UTF-8 text: convert it, e.g. iconv -f UTF-16 -t UTF-8",
                             line=1 + line_offset, column=1, offset=0)
    return 0


def decode_text(data: bytes, path=None, *, what: str = "file", line_offset: int = 0,
                byte_offset: int = 0) -> str:
    """Decode bytes under tmplc's policy (UTF-8, optional leading BOM) or raise ``InputError``.

    ``line_offset`` / ``byte_offset`` place a chunk inside a larger file (for line readers); a
    BOM is only recognised at byte 0 of the file."""
    skip = utf8_bom_length(data, path, what=what, line_offset=line_offset) if byte_offset == 0 else 0
    try:
        return data[skip:].decode("utf-8") if skip else data.decode("utf-8")
    except UnicodeDecodeError as e:
        at = e.start + skip
        line, col = _position(data, at)
        bad = data[at:at + 4].hex(" ")
        raise InputError(path, f"invalid UTF-8 at byte offset {at + byte_offset} (bytes {bad}: {e.reason}); "
                               "tmplc reads UTF-8 text (with or without a BOM)",
                         line=line + line_offset, column=col, offset=at + byte_offset) from None


def read_bytes(path, *, what: str = "file", max_bytes: int | None = None) -> bytes:
    """The bytes of ``path`` (``"-"`` = standard input) or ``InputError`` saying why not."""
    if str(path) == "-":
        if sys.stdin is None:
            raise InputError("<stdin>", "standard input is closed")
        data = sys.stdin.buffer.read()
    else:
        p = Path(path)
        try:
            if p.is_dir():
                raise InputError(path, f"is a folder, not a {what}")
            with p.open("rb") as f:
                data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        except FileNotFoundError:
            raise InputError(path, f"no such {what}") from None
        except PermissionError:
            raise InputError(path, f"permission denied reading this {what}") from None
        except IsADirectoryError:
            raise InputError(path, f"is a folder, not a {what}") from None
        except OSError as e:
            raise InputError(path, f"cannot read this {what}: {e.strerror or e}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(path, f"this {what} is larger than the limit of {max_bytes} bytes")
    return data


def read_text(path, *, what: str = "file", max_bytes: int | None = None) -> str:
    """The text of ``path`` (``"-"`` = standard input) under the decoding policy above.

    Raises ``InputError`` (missing, a folder, unreadable, not UTF-8, over ``max_bytes``)."""
    shown = "<stdin>" if str(path) == "-" else path
    return decode_text(read_bytes(path, what=what, max_bytes=max_bytes), shown, what=what)


# ---------------------------------------------------------------------------------------- writing

def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmplc-{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _os_problem(e: OSError, what: str) -> str:
    if isinstance(e, PermissionError):
        return f"permission denied {what}"
    if e.errno == errno.ENOSPC:
        return f"no space left on the device {what}"
    if e.errno == errno.EROFS:
        return f"read-only file system {what}"
    return f"{e.strerror or e} {what}".strip()


def prepare_output(path) -> Path:
    """Check that ``path`` can become an output file; create missing parent folders.

    Raises ``OutputError`` when it is a folder, a parent is a file, or the folder is not writable."""
    p = Path(path)
    if str(path) in ("", "-"):
        raise OutputError(path, "not a file name")
    if p.is_dir():
        raise OutputError(path, "is a folder; give a file name")
    parent = p.parent
    for anc in [parent, *parent.parents]:
        if anc.exists() and not anc.is_dir():
            raise OutputError(path, f"{anc} is a file, so it cannot hold the folder this output needs")
        if anc.exists():
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(path, _os_problem(e, f"creating the folder {parent}")) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(path, f"the folder {parent} is not writable")
    return p


@contextlib.contextmanager
def atomic_output(path, mode: str = "wb", *, encoding: str = "utf-8") -> Iterator[IO]:
    """``with atomic_output("out.parquet") as f: ...`` writes to a temporary name in the same
    folder, renamed onto ``path`` when the block ends without an exception.  On any exception
    (KeyboardInterrupt included) the temporary file is removed and the exception propagates.
    ``mode``: "wb" (binary) or "w" (text, UTF-8, newlines written as given)."""
    if mode not in ("wb", "w"):
        raise ValueError("atomic_output: mode must be 'wb' or 'w'")
    p = Path(path)
    if p.exists() and not p.is_file() and not p.is_dir():
        # a device or a pipe (/dev/null, /dev/stdout, a FIFO): written in place, never replaced
        with _special_output(p, mode, encoding) as f:
            yield f
        return
    p = prepare_output(path)
    tmp = _temp_name(p)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise OutputError(path, _os_problem(e, f"creating a file in {p.parent}")) from None
    f = os.fdopen(fd, mode, **({"encoding": encoding, "newline": ""} if mode == "w" else {}))
    done = False
    try:
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
        except OSError as e:
            if isinstance(e, TmplcError):
                raise
            raise OutputError(path, _os_problem(e, "while writing")) from None
        finally:
            try:
                f.close()
            except OSError as e:
                if sys.exc_info()[0] is None:
                    raise OutputError(path, _os_problem(e, "while writing")) from None
        try:
            os.replace(tmp, p)
        except OSError as e:
            raise OutputError(path, _os_problem(e, "renaming the finished file into place")) from None
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@contextlib.contextmanager
def _special_output(p: Path, mode: str, encoding: str) -> Iterator[IO]:
    try:
        f = open(p, mode, **({"encoding": encoding, "newline": ""} if mode == "w" else {}))
    except OSError as e:
        raise OutputError(p, _os_problem(e, "opening it for writing")) from None
    try:
        yield f
        f.flush()
    except OSError as e:
        if isinstance(e, TmplcError):
            raise
        raise OutputError(p, _os_problem(e, "while writing")) from None
    finally:
        with contextlib.suppress(OSError):
            f.close()


def _check_encodable(text: str, path) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise OutputError(path, f"the text holds a lone surrogate U+{ord(text[e.start]):04X} at character "
                                f"{e.start}, which UTF-8 cannot encode; nothing was written") from None


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8, exactly as given) to ``path`` atomically (see ``atomic_output``).

    Text holding a lone surrogate is refused with ``OutputError`` before anything is written."""
    _check_encodable(text, path)
    with atomic_output(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_output``)."""
    with atomic_output(path, "wb") as f:
        f.write(data)


def write_stdout(text: str) -> None:
    """Write ``text`` to standard output as UTF-8; ``OutputError`` when stdout is closed or the
    text holds a lone surrogate (refused, nothing written)."""
    _check_encodable(text, "<stdout>")
    out = sys.stdout
    if out is None:
        raise OutputError("<stdout>", "standard output is closed")
    try:
        buf = getattr(out, "buffer", None)
        if buf is not None:
            out.flush()
            buf.write(text.encode("utf-8"))
            buf.flush()
        else:
            out.write(text)
            out.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as e:
        raise OutputError("<stdout>", f"cannot write to standard output: {getattr(e, 'strerror', None) or e}") \
            from None


def printable(text: str) -> str:
    """``text`` with lone surrogates shown as ``\\udXXX`` escapes: for messages printed to a terminal."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


# ---------------------------------------------------------------------------------------- names

_UNSAFE = set('/\\:*?"<>|\0')


def safe_name(untrusted, *, default: str = "unnamed", max_length: int = 100) -> str:
    """A base name made from an untrusted string: no path separators, no leading dots, no control
    characters, non-empty, at most ``max_length`` characters.  ``"../../x"`` -> ``"x"``,
    ``"/tmp/PWNED"`` -> ``"PWNED"``, ``".."`` -> ``default``."""
    s = str(untrusted if untrusted is not None else "")
    s = s.replace("\\", "/").split("/")
    s = next((part for part in reversed(s) if part.strip(". ")), "")
    s = "".join("_" if (c in _UNSAFE or ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF) else c
                for c in s)
    s = s.strip().lstrip(".").strip()
    s = s[:max_length].rstrip(". ")
    return s or default
