"""The pitfall doctor: ``check`` finds the template / tokenizer / model / data / GGUF pitfalls that
silently ruin fine-tunes, before training and at export; ``fix`` repairs them into a new folder.

::

    from tmplc.doctor import check, fix
    report = check("my-model/", template="llama-3", data="train.jsonl", max_seq_length=4096)
    report.ok, report.codes(), report.to_json()
    fix("my-model/", "my-model-fixed/", template="llama-3")   # writes tmplc-fix-report.json too

Finding codes: double-bos, pad-missing, pad-is-eos, pad-is-eot, pad-out-of-range, untrained-tokens,
eot-not-single-token, template-token-missing, eot-not-stop, vocab-out-of-range, template-mismatch,
template-shadowed, template-unimportable, template-missing, no-template, truncation,
data-rows-rejected, disk-space (and GGUF: the same codes read from GGUF keys and rows, plus
untrained-not-checked).

Modules: ``checks`` (``check``), ``repair`` (``fix``) — not ``check.py``/``fix.py``, whose module
objects would shadow the functions of the same name on this package once imported.

Importing this package imports neither torch nor transformers nor safetensors: they are imported
when a check runs.
"""

from __future__ import annotations

from tmplc.doctor.findings import Finding, Report

__all__ = ["Finding", "Report", "check", "data_findings", "fix", "DoctorInputError"]


def __getattr__(name: str):
    if name == "check":
        from tmplc.doctor.checks import check

        return check
    if name == "fix":
        from tmplc.doctor.repair import fix

        return fix
    if name == "data_findings":
        from tmplc.doctor.data import data_findings

        return data_findings
    if name == "DoctorInputError":
        from tmplc.doctor.model import DoctorInputError

        return DoctorInputError
    raise AttributeError(f"module 'tmplc.doctor' has no attribute {name!r}")
