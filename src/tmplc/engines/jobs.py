"""The error of one job of an engine batch (a render that failed inside the real engine)."""

from __future__ import annotations

from tmplc.errors import TmplcError


class JobError(TmplcError, RuntimeError):
    """One job of a batch failed inside its engine; instances are *returned* in place of the job's
    output (one bad job does not hide the others) and *raised* by the single-job helpers.

    Attributes:
        message: the engine's error text.
        index: the job's position in the batch, when known.
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        self.message = message
        self.index = index
        super().__init__(message if index is None else f"job {index}: {message}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return (self.message, self.index) == (other.message, other.index)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.message, self.index))
