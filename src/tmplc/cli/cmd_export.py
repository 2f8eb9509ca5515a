"""``tmplc export MODEL [--template SPEC] --out DIR [--outtype f16,q8_0] [--adapter DIR] [--force]``:
HF model (+ LoRA adapter) -> validated GGUF files, Modelfile and export-report.json."""

from __future__ import annotations

import argparse
import os
import sys


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export an HF model (+ LoRA adapter) to GGUF + Modelfile, validated",
                       description=__doc__)
    p.add_argument("model", help="HF model folder (config.json + safetensors + tokenizer)")
    p.add_argument("--template", "-t", default=None,
                   help="chat format (registry name, spec file or text); default: tmplc.yaml in the adapter or "
                        "model folder, else the tokenizer's chat_template")
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--outtype", default="f16", help="comma-separated: f32,f16,bf16,q8_0,q4_k_m,q5_k_m,q6_k "
                                                     "(default f16)")
    p.add_argument("--adapter", default=None, help="PEFT LoRA adapter folder to merge first")
    p.add_argument("--name", default=None, help="file name stem (default: the model folder's name)")
    p.add_argument("--force", action="store_true", help="write the files even if a check fails (marked in the report)")
    p.add_argument("--no-logits", action="store_true", help="skip the llama.cpp-vs-torch logits check")
    return p


def run(args) -> int:
    from tmplc.export import ExportInputError, ExportRefused, ValidationFailed, export

    try:
        report = export(args.model, args.template, args.out, outtypes=args.outtype, adapter=args.adapter,
                        name=args.name, force=args.force, logits=not args.no_logits)
    except ValidationFailed as exc:
        print("tmplc: export refused: a check failed (no GGUF or Modelfile written; see "
              f"{args.out}/export-report.json; --force writes anyway)", file=sys.stderr)
        if exc.report is not None:
            print(exc.report.summary(), file=sys.stderr)
        return 1
    except ExportRefused as exc:
        print(f"tmplc: export refused: {exc.reason}", file=sys.stderr)
        return 3
    except ExportInputError as exc:
        print(f"tmplc: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    for n in report.notes:
        print(f"  note: {n}")
    for f, h in report.files.items():
        print(f"  wrote {os.path.join(args.out, f)}  sha256 {h[:16]}...")  # (no "//" for an --out ending in /)
    if not report.ok:
        print("tmplc: --force: files written although checks failed (marked in export-report.json)", file=sys.stderr)
    return 0
