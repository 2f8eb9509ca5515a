"""The doctor's data checks, from facts gathered while formatting (no second pass over the data).

``process_rows`` fills a ``DataFacts`` per batch; ``tmplc format`` merges them and asks
``findings`` for the doctor's ``truncation`` and ``double-bos`` findings
(``tmplc.doctor.data.scan_findings``, where their wording and severities are defined), printed in
its summary and written in ``--summary-json``.

* truncation: every row longer than ``--max-seq-length`` (truncated, dropped or refused), with its
  length before truncation and the trained tokens past the limit.  Per-row lengths (12 bytes a
  row) are kept only when ``--max-seq-length`` is given, to give the doctor the share and the
  trained-token total it reports.
* double BOS: rows whose rendered tokens start with two BOS (rejected by the formatter), and rows
  whose message content starts with the tokenizer's BOS text: pre-rendered text put in a
  message, which a trainer that tokenizes with special tokens turns into a second BOS (tmplc
  tokenizes it as plain text by default, so the model would learn the BOS text as words).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from types import SimpleNamespace


@dataclass
class DataFacts:
    """Per-row facts for the data checks (see the module docstring)."""

    rows: array = field(default_factory=lambda: array("q"))      # rows encoded (with a length)
    lengths: array = field(default_factory=lambda: array("q"))   # their tokens before truncation
    trained: array = field(default_factory=lambda: array("q"))   # their trained tokens before truncation
    cut: dict = field(default_factory=dict)                      # row over the limit -> trained tokens past it
    double_bos: list = field(default_factory=list)

    def merge(self, other: "DataFacts") -> "DataFacts":
        self.rows.extend(other.rows)
        self.lengths.extend(other.lengths)
        self.trained.extend(other.trained)
        self.cut.update(other.cut)
        self.double_bos.extend(other.double_bos)
        return self


def starts_with_bos(messages, bos_text: str | None) -> bool:
    """Whether a message's content starts with the BOS text."""
    if not bos_text:
        return False
    for m in messages:
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, str) and c.startswith(bos_text):
            return True
    return False


def findings(facts: DataFacts, info, max_seq_length: int | None) -> list:
    """The doctor's ``truncation`` / ``double-bos`` findings for these facts (``Finding`` objects)."""
    if not facts.double_bos and not facts.cut:
        return []
    from tmplc.doctor.data import DataScan, scan_findings

    scan = DataScan(n_rows=len(facts.rows))
    scan.double_bos = sorted(set(facts.double_bos))
    if facts.cut and max_seq_length is not None:
        scan.lengths = dict(zip(facts.rows, facts.lengths))
        scan.trained = dict(zip(facts.rows, facts.trained))
        scan.cut_trained = dict(facts.cut)
    tok = SimpleNamespace(bos_token=info.bos_token, bos_token_id=info.bos_id)
    return scan_findings(scan, tok, max_seq_length)
