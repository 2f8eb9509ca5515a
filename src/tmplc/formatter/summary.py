"""The formatter's accounting: every input row is either output or rejected, with a reason.

``rows_in == rows_out + rows_rejected`` always holds; rejected rows are those that could not be
read/normalized (``invalid``), could not be rendered or tokenized (``errors``), or were dropped
(no trainable token, too long under ``truncation="drop"``, no trainable token left after
truncation).  Row numbers are 0-based positions among the data rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

MAX_EXAMPLES = 20


@dataclass
class FormatSummary:
    rows_in: int = 0
    rows_out: int = 0
    truncated: int = 0
    special_token_rows: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    invalid: Counter = field(default_factory=Counter)    # reason -> count (reading / normalizing)
    errors: Counter = field(default_factory=Counter)     # reason -> count (render / tokenize)
    dropped: Counter = field(default_factory=Counter)    # reason -> count
    examples: list = field(default_factory=list)         # (row, kind, reason), first MAX_EXAMPLES
    warnings: list = field(default_factory=list)
    rejected: list = field(default_factory=list)         # (row, kind, reason), every rejected row
    findings: list = field(default_factory=list)         # the doctor's data findings (tmplc.doctor.Finding)
    tool_call_tokens: int | None = None                  # trained tool-call tokens (formats with tool support)

    @property
    def rows_rejected(self) -> int:
        return sum(self.invalid.values()) + sum(self.errors.values()) + sum(self.dropped.values())

    def check(self) -> None:
        assert self.rows_in == self.rows_out + self.rows_rejected, self.as_dict()

    def note(self, row: int | None, kind: str, reason: str) -> None:
        self.rejected.append((row, kind, reason))
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append((row, kind, reason))

    def reject(self, row: int | None, kind: str, reason: str) -> None:
        """Count one rejected row (kind: invalid | error | dropped) and name it."""
        key = reason.split(": ", 1)[1] if reason.startswith("message ") else reason
        {"invalid": self.invalid, "error": self.errors, "dropped": self.dropped}[kind][key] += 1
        self.note(row, kind, reason)

    def merge(self, other: "FormatSummary") -> "FormatSummary":
        for f in ("rows_in", "rows_out", "truncated", "special_token_rows", "tokens", "trained_tokens"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.invalid.update(other.invalid)
        self.errors.update(other.errors)
        self.dropped.update(other.dropped)
        self.examples = (self.examples + other.examples)[:MAX_EXAMPLES]
        self.rejected.extend(other.rejected)
        if other.tool_call_tokens is not None:
            self.tool_call_tokens = (self.tool_call_tokens or 0) + other.tool_call_tokens
        for w in other.warnings:
            if w not in self.warnings:
                self.warnings.append(w)
        return self

    def as_dict(self) -> dict:
        return {
            "rows_in": self.rows_in, "rows_out": self.rows_out, "rows_rejected": self.rows_rejected,
            "truncated": self.truncated, "special_token_rows": self.special_token_rows,
            "tokens": self.tokens, "trained_tokens": self.trained_tokens,
            "invalid": dict(self.invalid), "errors": dict(self.errors), "dropped": dict(self.dropped),
            "examples": [list(e) for e in self.examples], "warnings": list(self.warnings),
            "rejected": [{"row": r, "kind": k, "reason": why} for r, k, why in self.rejected],
            "findings": [f.to_json() for f in self.findings],
            **({} if self.tool_call_tokens is None else {"tool_call_tokens": self.tool_call_tokens}),
        }

    def __str__(self) -> str:
        L = [
            f"rows in:        {self.rows_in}",
            f"rows out:       {self.rows_out}",
            f"rows rejected:  {self.rows_rejected}",
        ]
        for title, c in (("invalid (not normalized)", self.invalid), ("errors (not rendered)", self.errors),
                         ("dropped", self.dropped)):
            for reason, n in sorted(c.items(), key=lambda x: -x[1]):
                L.append(f"  {title}: {n}  {reason}")
        L.append(f"truncated:      {self.truncated}")
        L.append(f"special-token text in content: {self.special_token_rows} rows")
        if self.tokens:
            L.append(f"tokens:         {self.tokens} ({self.trained_tokens} trained, "
                     f"{100.0 * self.trained_tokens / self.tokens:.1f}%)")
        if self.tool_call_tokens is not None:
            L.append(f"tool-call tokens trained: {self.tool_call_tokens}")
        if self.examples:
            L.append("first problems:")
            for row, kind, reason in self.examples:
                L.append(f"  row {row}: {kind}: {reason}")
            more = len(self.rejected) - len(self.examples)
            if more > 0:
                L.append(f"  ... and {more} more rejected rows (every one is listed in the JSON summary: "
                         "--summary-json / as_dict()['rejected'])")
        for w in self.warnings:
            L.append(f"warning: {w}")
        for f in self.findings:
            L.append(f"{f.severity} [{f.code}]: {f.message}")
            if f.fix:
                L.append(f"  fix: {f.fix}")
        return "\n".join(L)
