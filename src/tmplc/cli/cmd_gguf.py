"""``tmplc gguf inspect FILE`` / ``tmplc gguf set-template FILE --template SPEC [--out FILE2]``."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("gguf", help="inspect a GGUF's chat format, or rewrite its template and token keys",
                       description=__doc__)
    gs = p.add_subparsers(dest="gguf_command", metavar="ACTION")
    gs.required = True
    i = gs.add_parser("inspect", help="embedded template, equivalent registry entry, token keys, doctor findings")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="print JSON")
    s = gs.add_parser("set-template", help="rewrite tokenizer.chat_template + ids/flags (tensors unchanged)")
    s.add_argument("file")
    s.add_argument("--template", "-t", required=True, help="chat format (registry name, spec file or text)")
    s.add_argument("--out", "-o", default=None, help="write here instead of rewriting FILE in place")
    return p


def run(args) -> int:
    from tmplc.export import ExportInputError, ExportRefused
    from tmplc.export.gguf_edit import inspect_gguf, set_template

    try:
        if args.gguf_command == "inspect":
            info = inspect_gguf(args.file)
            if args.json:
                print(json.dumps(info.__dict__, indent=2, ensure_ascii=False))
            else:
                sys.stdout.write(info.text())
            return 0
        res = set_template(args.file, args.template, args.out)
        for k, v in res["changed"].items():
            print(f"set {k} = {v}")
        for k in res["removed"]:
            print(f"removed {k}")
        print(f"wrote {args.out or args.file}")
        return 0
    except ExportRefused as exc:
        print(f"tmplc: refused: {exc.reason}", file=sys.stderr)
        return 3
    except ExportInputError as exc:
        print(f"tmplc: error: {exc}", file=sys.stderr)
        return 2
