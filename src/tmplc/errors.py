"""Exceptions raised by tmplc.  Every error says where (line:column, message index) and what to do."""

from __future__ import annotations


class TmplcError(Exception):
    """Base class of every tmplc error.  ``exit_code`` is what the CLI exits with (by type: 1 a check
    failed, 2 bad input, 3 refused)."""

    exit_code = 1


#: the most characters of a source line an error quotes on each side of its column
QUOTE_WINDOW = 60
#: the most characters of an error message (longer ones keep their start and end)
MESSAGE_LIMIT = 2000


def cap(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text``, or its start and end around a note of how much is left out when it is longer than
    ``limit`` (an error never quotes megabytes of input)."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]} [... {len(text) - 2 * keep} characters left out ...] {text[-keep:]}"


def caret(source_line: str, column: int) -> str:
    """The source line (tabs as spaces; at most :data:`QUOTE_WINDOW` characters each side of the
    column) and a caret under ``column`` (1-based), indented."""
    line = source_line.replace("\t", " ")
    start = max(0, column - 1 - QUOTE_WINDOW)
    end = column - 1 + QUOTE_WINDOW
    shown = ("..." if start else "") + line[start:end] + ("..." if len(line) > end else "")
    return f"\n    {shown}\n    {' ' * (column - 1 - start + (3 if start else 0))}^"


class SpecError(TmplcError, ValueError):
    """A spec cannot be parsed or its structure cannot be recovered without guessing.

    Attributes:
        line: 1-based line in the spec source (or the file holding it).
        column: 1-based column.
        message: the bare message, without location or caret.
        source_line: the offending line of source, when known.
        filename: the file the spec came from, when known.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        line: int = 1,
        column: int = 1,
        source_line: str | None = None,
        filename: str | None = None,
    ) -> None:
        self.message = cap(message)
        self.line = line
        self.column = column
        self.source_line = source_line
        self.filename = filename
        super().__init__(self._format())

    def _format(self) -> str:
        text = f"line {self.line}, column {self.column}: {self.message}"
        return text + (caret(self.source_line, self.column) if self.source_line is not None else "")

    def relocated(self, filename: str | None, line_offset: int = 0, column_offset: int = 0,
                  source_line: str | None = None) -> "SpecError":
        """The same error with its position moved into the file that holds the spec."""
        return SpecError(
            self.message,
            self.line + line_offset,
            self.column + column_offset,
            source_line if source_line is not None else self.source_line,
            filename,
        )

    def cli_text(self) -> str:
        """`FILE:LINE:COL: error: message` plus the source line and caret, as the CLI prints it."""
        where = f"{self.filename or '<spec>'}:{self.line}:{self.column}"
        text = f"{where}: error: {self.message}"
        return text + (caret(self.source_line, self.column) if self.source_line is not None else "")


class MessageError(TmplcError, ValueError):
    """A conversation that the format cannot render; `.index` is the offending message's index."""

    exit_code = 2

    def __init__(self, index: int | None, message: str, row: int | None = None) -> None:
        self.index = index
        self.row = row
        self.message = message
        where = []
        if row is not None:
            where.append(f"row {row}")
        if index is not None:
            where.append(f"message {index}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


class RegistryError(TmplcError, LookupError):
    """A name that is neither a registry entry, an alias, a file, nor spec text."""

    exit_code = 2


class TargetError(TmplcError, ValueError):
    """A target that cannot write a format (or a value of it) exactly: the one refusal type of
    every target (``target``: ``"ollama"``, ``"llamacpp"``, ...; ``reason``: what and why).
    ``str(e)`` is the reason."""

    exit_code = 3

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(reason)

    def __reduce__(self):  # picklable across processes (the two-argument constructor)
        return (type(self), (self.target, self.reason))


class ModelfileSyntaxError(TargetError):
    """Text that Ollama's own Modelfile parser rejects (bad input where a Modelfile is read)."""

    exit_code = 2


class WorkerError(TmplcError, RuntimeError):
    """A worker process ended without answering (killed from outside, e.g. by the out-of-memory
    killer, or crashed)."""


class UsageError(TmplcError, ValueError):
    """A command line that cannot work (a missing or contradictory option): exit 2."""

    exit_code = 2
