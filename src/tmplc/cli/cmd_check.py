"""``tmplc check PATH [--template SPEC] [--data FILE] [--max-seq-length N] [--output-dir DIR] [--json]``.

Exit codes: 0 no error finding, 1 error findings, 2 bad input."""

from __future__ import annotations

import argparse
import json
import sys


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="model folder, tokenizer folder, or .gguf file")
    p.add_argument("--template", "-t", metavar="SPEC",
                   help="the format you train/serve with: registry name, spec/YAML file or spec text "
                        "(default: the tokenizer's own chat_template, imported)")
    p.add_argument("--data", metavar="FILE", help="training data (any shape tmplc format reads, or a 'text' column)")
    p.add_argument("--max-seq-length", type=int, default=None, metavar="N")
    p.add_argument("--output-dir", metavar="DIR", help="where checkpoints will go (disk-space check)")
    p.add_argument("--keep-checkpoints", type=int, default=2, metavar="N",
                   help="checkpoints kept (save_total_limit) for the disk-space check (default 2)")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "check", help="find template/tokenizer/model/data/GGUF pitfalls before training and at export",
        description="Check a model folder, tokenizer folder or GGUF file (and optionally the training data) for "
                    "the pitfalls that silently ruin fine-tunes: double BOS, pad == EOS/end-of-turn, untrained "
                    "special-token rows used by the template or data, end-of-turn that is not one token or not a "
                    "stop id, out-of-range token ids, a tokenizer template that is not the training format, "
                    "truncation, disk space. Exit 0: no error; 1: errors found; 2: bad input.")
    add_common(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def table(report) -> str:
    """The human view: one block per finding, errors first."""
    import textwrap

    lines = [f"tmplc check: {report.path}",
             f"  template: {report.template or '-'} ({report.template_source})"]
    if not report.findings:
        lines.append("  no findings")
    width = max([len(f.code) for f in report.findings] + [8])
    for f in report.findings:
        head = f"  {f.severity.upper():7} {f.code:{width}}  "
        body = textwrap.wrap(f.message, 100 - len(head)) or [""]
        lines.append(head + body[0])
        lines += [" " * len(head) + b for b in body[1:]]
        if f.fix:
            fixes = textwrap.wrap("fix: " + f.fix, 100 - len(head))
            lines += [" " * len(head) + b for b in fixes]
    n_e, n_w = len(report.errors), len(report.warnings)
    lines.append(f"  {n_e} error(s), {n_w} warning(s), {len(report.findings) - n_e - n_w} info")
    return "\n".join(lines)


def bad_input(e) -> int:
    """Any tmplc error while checking is bad input (the check itself never fails): exit 2."""
    from tmplc.errors import SpecError

    print(e.cli_text() if isinstance(e, SpecError) else f"tmplc: error: {e}", file=sys.stderr)
    return 2


def run(args) -> int:
    from tmplc.doctor import check
    from tmplc.errors import TmplcError

    try:
        report = check(args.path, args.template, args.data, max_seq_length=args.max_seq_length,
                       output_dir=args.output_dir, keep_checkpoints=args.keep_checkpoints)
    except TmplcError as e:
        return bad_input(e)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(table(report))
    sys.stdout.flush()
    return 0 if report.ok else 1
