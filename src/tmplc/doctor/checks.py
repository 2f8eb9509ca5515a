"""``check(path, template=None, data=None, ...) -> Report``: every check, in one pass.

Order: the folder's JSON files and tokenizer; the format (given, or the tokenizer's own); the
template findings; pad and vocabulary range; the embedding / lm_head rows (read in chunks); the
data (rendered and tokenized once); untrained tokens with their users; truncation; disk space.
A ``.gguf`` path goes to :mod:`tmplc.doctor.gguf`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmplc.doctor.findings import Report


def check(path: str | Path, template: Any = None, data: Any = None, *, max_seq_length: int | None = None,
          output_dir: str | Path | None = None, tokenizer: Any = None, keep_checkpoints: int = 2) -> Report:
    """Check a model folder, a tokenizer-only folder or a GGUF file for the pitfalls that silently
    ruin fine-tunes (see :mod:`tmplc.doctor`).  Raises :class:`DoctorInputError` for bad input."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".gguf" or (p.is_file() and _is_gguf(p)):
        from tmplc.doctor.gguf import check_gguf

        return check_gguf(p, template)
    return _check_folder(p, template, data, max_seq_length, output_dir, tokenizer, keep_checkpoints)[0]


def _is_gguf(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def _check_folder(p: Path, template, data, max_seq_length, output_dir, tokenizer, keep_checkpoints):
    """(report, context) — the context (folder, facts, format, scans, data scan) is what fix reuses."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tmplc.doctor.data import read_data, scan_data, scan_findings
    from tmplc.doctor.disk import disk_findings
    from tmplc.doctor.model import DoctorInputError, ModelFolder
    from tmplc.doctor.template import end_of_turn_text, resolve, template_findings
    from tmplc.doctor.tokens import TokFacts
    from tmplc.doctor.untrained import template_ids, untrained_finding
    from tmplc.doctor.vocab import pad_findings, vocab_findings
    from tmplc.doctor.weights import scan_rows

    if not p.exists():
        raise DoctorInputError(f"{p}: no such file or folder")
    folder = ModelFolder(p, tokenizer=tokenizer)
    # data rows go through the formatter, which needs the transformers tokenizer: then the facts too
    facts = TokFacts.of(folder.tokenizer if data is not None else folder.check_tokenizer)
    res = resolve(template, folder, facts)
    report = Report(p, res.name, res.source)
    eot = end_of_turn_text(res.fmt, facts) if res.fmt is not None else None
    eot_id = facts.single_id(eot) if eot else None
    for f in template_findings(res, folder, facts, eot):
        report.add(f)
    rows = folder.embedding_rows
    for f in pad_findings(folder, facts, eot, eot_id, rows):
        report.add(f)
    for f in vocab_findings(folder, facts, rows):
        report.add(f)
    scans = {}
    if folder.embedding is not None:
        scans["embedding"] = scan_rows(folder.embedding.file, folder.embedding.name)
        if not folder.tied and folder.lm_head is not None:
            scans["lm_head"] = scan_rows(folder.lm_head.file, folder.lm_head.name)
    watch = sorted(set().union(*(s.untrained for s in scans.values()))) if scans else []
    dscan = None
    if data is not None:
        rows_ = read_data(data)
        dscan = scan_data(res.fmt, folder.tokenizer, rows_, max_seq_length, watch)
    tids = template_ids(res.fmt, facts)
    report.add(untrained_finding(scans, facts, res.fmt, tids, dscan.used if dscan else None, data is not None))
    if dscan is not None:
        for f in scan_findings(dscan, folder.tokenizer, max_seq_length):
            report.add(f)
    for f in disk_findings(output_dir, folder.weights_bytes(), keep_checkpoints):
        report.add(f)
    report.sort()
    ctx = {"folder": folder, "facts": facts, "resolved": res, "eot": eot, "eot_id": eot_id, "scans": scans,
           "template_ids": tids, "data_scan": dscan}
    return report, ctx
