"""``tmplc verify DEPLOYED --template SPEC``: does what I deploy render like what I trained?"""

from __future__ import annotations

import argparse
import sys

from tmplc.cli.common import add_token_options, load_format


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "verify", help="check that a deployed template renders exactly like a spec",
        description="Render DEPLOYED (an Ollama Modelfile, a GGUF file, a tokenizer folder or "
                    "tokenizer_config.json, a chat_template.jinja, or the folder/manifest.json that "
                    "`tmplc compile --to all` wrote: sha256s checked first) with its own engine on the "
                    "verification conversations and compare it byte for byte with SPEC. Exit 0 when "
                    "identical, 1 with the first differing conversation shown, 2 for unreadable input, "
                    "3 when the deployed template passes a sandbox limit.")
    p.add_argument("deployed", metavar="DEPLOYED", help="Modelfile, *.gguf, tokenizer folder, *.jinja, or manifest")
    p.add_argument("--template", "-t", required=True, metavar="SPEC",
                   help="what was trained: registry name/alias, spec or YAML file, or spec text")
    p.add_argument("--conversations", type=int, default=40, metavar="N",
                   help="random conversations besides the fixed set (default 40)")
    add_token_options(p)
    return p


def run(args) -> int:
    from tmplc.convert.verify import verify_deployed
    from tmplc.errors import UsageError

    if args.conversations < 0:
        raise UsageError(f"--conversations must be 0 or more, got {args.conversations}")
    fmt = load_format(args.template, args)
    from tmplc.convert.errors import ConversionRefused

    try:
        report = verify_deployed(args.deployed, fmt, n_random=args.conversations)
    except ConversionRefused as e:  # the deployed template passed a sandbox limit (or cannot be parsed)
        code = getattr(e, "exit_code", 3)
        print(f"tmplc: {'refused: ' if code == 3 else 'error: '}{args.deployed}: {e.reason}", file=sys.stderr)
        return code
    if report.ok:
        for line in report.checked:
            print(f"ok: {line}")
        print(f"tmplc verify: {args.deployed} matches {fmt.name}")
        return 0
    print(f"tmplc verify: {args.deployed} does NOT match {fmt.name}", file=sys.stderr)
    for line in report.problems:
        print(line, file=sys.stderr)
    for line in report.checked:
        print(f"ok: {line}")
    return 1
