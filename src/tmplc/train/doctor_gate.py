"""The doctor before training: refuse on error findings unless each code is ``--ignore``-d.

``tmplc.doctor.check(model_dir, template=fmt, data=..., max_seq_length=N, output_dir=OUT)``
returns a report whose ``errors`` are findings with ``.code``, ``.severity`` and ``.message``.
The findings gone past are recorded in ``OUT/tmplc-train.json``.  ``template-mismatch`` /
``template-shadowed`` about the input folder's chat template do not stop a run: the saved
tokenizer carries the training format (recorded as ``resolved_by_save``).  The doctor is imported when a
run starts (it is a separate part of tmplc); a build without it says so on stderr and in the record.
"""

from __future__ import annotations

import sys

from tmplc.train.config import TrainConfig, TrainRefused

# findings about the *input* folder's chat template that the trainer's own save resolves: the saved
# tokenizer carries the training format (chat_template.jinja and tokenizer_config.json agree)
RESOLVED_BY_SAVE = ("template-mismatch", "template-shadowed")


def run_doctor(cfg: TrainConfig, fmt, *, quiet: bool = False) -> dict:
    try:
        from tmplc.doctor import check
    except ImportError as e:
        if not quiet:
            print(f"tmplc train: warning: the doctor is not available in this build ({e}); "
                  "model/tokenizer/data checks skipped", file=sys.stderr)
        return {"ran": False, "reason": f"tmplc.doctor not importable: {e}"}
    kw = {"tokenizer": cfg.tokenizer} if cfg.tokenizer else {}
    report = check(cfg.model, template=fmt, data=cfg.data, max_seq_length=cfg.max_seq_length, output_dir=cfg.out,
                   keep_checkpoints=cfg.save_total_limit, **kw)
    errors = [f for f in report.errors if f.code not in RESOLVED_BY_SAVE]
    resolved = [f for f in report.errors if f.code in RESOLVED_BY_SAVE]
    warnings = [f for f in report.findings if f.severity == "warning"]
    blocking = [f for f in errors if f.code not in cfg.ignore]
    ignored = [f for f in errors if f.code in cfg.ignore]
    if blocking:
        lines = "\n".join(f"  {f.severity} {f.code}: {f.message}" + (f"\n    fix: {f.fix}" if f.fix else "")
                           for f in blocking)
        codes = " ".join(sorted({f"--ignore {f.code}" for f in blocking}))
        raise TrainRefused(f"the doctor found {len(blocking)} error(s) in model/tokenizer/data/format:\n{lines}\n"
                           f"fix them (tmplc fix), or go on with {codes} (recorded in the output)")
    for f in ignored:
        if not quiet:
            print(f"tmplc train: warning: going on despite doctor error {f.code} (--ignore): {f.message}",
                  file=sys.stderr)
    for f in resolved:
        if not quiet:
            print(f"tmplc train: note: doctor {f.code} in the input folder; the saved tokenizer carries the "
                  "training format as its chat_template", file=sys.stderr)
    if warnings and not quiet:
        print(f"tmplc train: doctor: {len(warnings)} warning(s): " + ", ".join(sorted({f.code for f in warnings})),
              file=sys.stderr)
    return {"ran": True, "ok": not blocking,
            "ignored": [{"code": f.code, "severity": f.severity, "message": f.message} for f in ignored],
            "warnings": [{"code": f.code, "message": f.message} for f in warnings],
            "resolved_by_save": [{"code": f.code, "message": f.message} for f in resolved],
            "errors": len(errors)}
