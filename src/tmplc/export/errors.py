"""Errors of the GGUF exporter: bad input (exit 2), a refusal (exit 3), a failed check (exit 1)."""

from __future__ import annotations

from tmplc.errors import TmplcError


class ExportInputError(TmplcError, ValueError):
    """The model folder, adapter or options are unusable (missing file, bad JSON, unknown type).
    The message names the file and what to do.  CLI exit 2."""


class ExportRefused(TmplcError, RuntimeError):
    """tmplc will not export this model: an architecture, tokenizer, tensor or quant type it does
    not support, or a pre-tokenizer it cannot identify.  Never guessed.  CLI exit 3."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ValidationFailed(TmplcError, RuntimeError):
    """An export-time check failed: the files were not given their final names (unless --force).
    ``report`` is the :class:`~tmplc.export.report.ExportReport` saying which check and why.  CLI exit 1."""

    def __init__(self, message: str, report: object = None) -> None:
        self.report = report
        super().__init__(message)
