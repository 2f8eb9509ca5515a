"""``export-report.json``: what was exported, every check with its result, each file's SHA-256,
and the format's spec -- the record that the GGUF, the Modelfile and training agree."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Check:
    """One export-time check: ``name``, ``ok`` (True; False = failed or could not run; None = not
    applicable, e.g. no Modelfile for a format Ollama cannot carry), what was compared."""

    name: str
    ok: bool | None
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportReport:
    """The result of :func:`tmplc.export`."""

    model: str
    adapter: str | None
    format: str
    spec: str
    spec_source: str
    outtypes: list[str]
    out_dir: str
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256
    checks: list[Check] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    forced: bool = False
    refused: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # phase -> wall seconds

    @property
    def ok(self) -> bool:
        """No check failed (a not-applicable check does not count)."""
        return all(c.ok is not False for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def summary(self) -> str:
        lines = []
        for c in self.checks:
            mark = "ok  " if c.ok else ("FAIL" if c.ok is False else "n/a ")
            lines.append(f"  [{mark}] {c.name}: {c.detail}")
        return "\n".join(lines)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
