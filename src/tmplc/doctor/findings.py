"""What the doctor reports: one :class:`Finding` per pitfall, gathered in a :class:`Report`.

A finding has a stable ``code`` (tests and filters match on it), a ``severity`` (``error``: the
run will go wrong; ``warning``: it goes wrong on a path the user may take; ``info``: worth
knowing), a ``message`` naming the exact tokens (id and text), rows or keys, the ``fix``, and
``details`` (the same facts as data: ids, token texts, row indices...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One pitfall found in a model folder, tokenizer, data set or GGUF file."""

    code: str
    severity: str
    message: str
    fix: str = ""
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_json(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.message, "fix": self.fix,
                "details": _jsonable(self.details)}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        items = sorted(x) if isinstance(x, (set, frozenset)) else x
        return [_jsonable(v) for v in items]
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return x.item()
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


class Report:
    """The findings of one ``check`` (or the re-check after a ``fix``).

    ``template``: the format's name (None when no format could be determined);
    ``template_source``: where it came from (``"given"``, ``"tokenizer chat_template"``,
    ``"gguf chat_template"``, ``"none"`` ...)."""

    def __init__(self, path: Any, template: str | None = None, template_source: str = "none",
                 findings: list[Finding] | None = None, changes: list[dict] | None = None) -> None:
        self.path = str(path)
        self.template = template
        self.template_source = template_source
        self.findings: list[Finding] = list(findings or [])
        #: for ``fix``: what was changed (one dict per change); empty for ``check``
        self.changes: list[dict] = list(changes or [])

    @property
    def ok(self) -> bool:
        """No error finding."""
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def by_code(self, code: str) -> list[Finding]:
        return [f for f in self.findings if f.code == code]

    def add(self, finding: Finding | None) -> None:
        if finding is not None:
            self.findings.append(finding)

    def sort(self) -> None:
        order = {s: i for i, s in enumerate(SEVERITIES)}
        self.findings.sort(key=lambda f: order[f.severity])

    def to_json(self) -> dict:
        out = {"path": self.path, "template": self.template, "template_source": self.template_source,
               "ok": self.ok, "findings": [f.to_json() for f in self.findings]}
        if self.changes:
            out["changes"] = _jsonable(self.changes)
        return out

    def __repr__(self) -> str:
        return f"Report({self.path!r}, template={self.template!r}, codes={sorted(self.codes())}, ok={self.ok})"
