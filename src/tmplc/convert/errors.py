"""Errors of the converter."""

from __future__ import annotations

from tmplc.errors import TmplcError


class ConversionRefused(TmplcError, ValueError):
    """A template that tmplc cannot convert exactly into a ChatFormat.

    Attributes:
        reason: a precise human reason ("trims message content in a way ...",
            "injects today's date", "different text on message 5 ...").
        category: a short key for grouping refusals (``syntax``, ``sandbox``, ``date``,
            ``tools``, ``raises``, ``structure``, ``system``, ``content``, ``tokens``,
            ``verification``).
    """

    exit_code = 3  # the CLI's "refused"

    def __init__(self, reason: str, category: str = "verification") -> None:
        self.reason = reason
        self.category = category
        super().__init__(f"conversion refused: {reason}")


class SandboxError(ConversionRefused):
    """The untrusted template hit a sandbox limit or tried something unsafe (attribute escape,
    time limit, output limit, memory limit).  Nothing outside the sandbox was executed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "sandbox")


class TemplateTooDeep(ConversionRefused):
    """A template nested too deeply for the parser (thousands of parentheses or blocks): bad
    input (exit 2), not a conversion decision."""

    exit_code = 2

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "syntax")
