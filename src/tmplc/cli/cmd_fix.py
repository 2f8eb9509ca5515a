"""``tmplc fix PATH --out DIR [--template SPEC] [--data FILE] [--pad-token TEXT] [--json]``: repair
what ``tmplc check`` finds into a new folder (never in place), with tmplc-fix-report.json.

Exit codes: 0 the fixed folder has no error finding, 1 errors remain (not fixable), 2 bad input."""

from __future__ import annotations

import argparse
import json
import sys

from tmplc.cli.cmd_check import add_common, bad_input, table


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "fix", help="repair what tmplc check finds into a new model folder, with a report",
        description="Write a complete new model folder with the fixable findings repaired: untrained rows set to "
                    "the mean of the trained rows, a distinct pad token (existing reserved token, or a new one with "
                    "the embeddings resized), the end-of-turn id added to generation_config's stop ids, the training "
                    "format written as the chat template, a double BOS removed at its source. Writes "
                    "tmplc-fix-report.json (every change, each id) and prints the re-check of the new folder.")
    add_common(p)
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="the new folder (must not exist, or be empty)")
    p.add_argument("--pad-token", metavar="TEXT", help="use this pad token (a new special token if not in the vocabulary)")
    p.add_argument("--json", action="store_true", help="print the re-check (with the changes) as JSON")
    return p


def run(args) -> int:
    from tmplc.doctor import fix
    from tmplc.errors import TmplcError

    try:
        report = fix(args.path, args.out, args.template, args.data, max_seq_length=args.max_seq_length,
                     output_dir=args.output_dir, keep_checkpoints=args.keep_checkpoints, pad_token=args.pad_token)
    except TmplcError as e:
        return bad_input(e)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(f"tmplc fix: {args.path} -> {args.out} ({len(report.changes)} change(s); "
              f"{args.out}/tmplc-fix-report.json)")
        for c in report.changes:
            what = {k: v for k, v in c.items() if k not in ("code", "tokens", "old", "note")}
            ids = what.pop("ids", None)
            shown = ", ".join(f"{k}={v}" for k, v in what.items())
            if ids is not None:
                shown += f", ids={ids[:12]}{' ...' if len(ids) > 12 else ''}"
            print(f"  changed {c['code']}: {shown}")
        for nf in getattr(report, "not_fixed", []):
            print(f"  not fixed {nf['code']}: {nf['why']}")
        print("re-check of the new folder:")
        print(table(report))
    return 0 if report.ok else 1
