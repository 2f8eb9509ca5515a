"""``tmplc compile SPEC --to TARGET``."""

from __future__ import annotations

import argparse
import json

from tmplc.cli.common import add_token_options, load_format, write_output
from tmplc.ir import TRIM_FILTERS

# target name -> (description, function(fmt, args) -> str)
TARGETS: dict[str, tuple[str, object]] = {
    "jinja": ("HF chat template (tokenizer.chat_template)", lambda f, a: f.to_jinja()),
    "spec": ("canonical two-repetition spec text", lambda f, a: f.to_spec()),
    "yaml": ("YAML spec file with metadata (registry format)", lambda f, a: f.to_yaml()),
    "json": ("the IR as JSON", lambda f, a: json.dumps(f.to_dict(), indent=2, ensure_ascii=False) + "\n"),
    "ollama": ("Ollama Modelfile (FROM, TEMPLATE, SYSTEM, PARAMETER stop)",
               lambda f, a: f.to_ollama(from_=a.from_, allow_untrimmed=not a.strict)),
    "llamacpp": ("llama.cpp: GGUF chat template, built-in name, llama-server/llama-cli arguments",
                 lambda f, a: f.to_llamacpp().report()),
    "all": ("every target into --out DIR, with manifest.json (target -> file -> sha256)", None),
}


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compile", help="compile a spec to a target",
        description="Compile SPEC (a registry name or alias, a spec/YAML file, or spec text) to a target. "
                    "Targets: " + "; ".join(f"{k}: {v[0]}" for k, v in TARGETS.items()),
    )
    p.add_argument("spec", metavar="SPEC", help="registry name/alias, spec or YAML file, or spec text")
    p.add_argument("--to", dest="target", default="jinja", choices=list(TARGETS), help="target (default: jinja)")
    p.add_argument("--out", "-o", metavar="FILE", help="write to FILE instead of stdout (--to all: a directory)")
    p.add_argument("--from", dest="from_", metavar="PATH",
                   help="with --to ollama: the model for the Modelfile's FROM line (default: a placeholder)")
    p.add_argument("--strict", action="store_true",
                   help="with --to ollama: refuse (exit 3) a format with " + "/".join("|" + f for f in TRIM_FILTERS) + ", which Ollama "
                        "templates cannot carry. Default: write the Modelfile with contents rendered as sent, "
                        "with the caveat on stderr and in the Modelfile (as Ollama's own templates do)")
    p.add_argument("--allow-untrimmed", action="store_true",
                   help="with --to ollama: the default (kept for scripts that pass it); --strict refuses instead")
    add_token_options(p)
    return p


def run(args) -> int:
    from tmplc.cli.common import check_output

    check_output(args.out, folder=args.target == "all")
    fmt = load_format(args.spec, args)
    import sys

    from tmplc.lint import caveats

    for c in caveats(fmt):  # on stderr: stdout may be the compiled template
        print(f"tmplc: caveat: {c}", file=sys.stderr)
    if args.target == "ollama" and not args.strict:
        from tmplc.targets.ollama import untrimmed_caveat

        caveat = untrimmed_caveat(fmt)
        if caveat is not None:
            print(f"tmplc: caveat: {caveat}", file=sys.stderr)
    if args.target == "all":
        from tmplc.targets.bundle import write_all

        if not args.out:
            print("tmplc compile: error: --to all writes a directory: give it with --out DIR", file=sys.stderr)
            return 2
        from tmplc.cli.common import print_bundle

        print_bundle(write_all(fmt, args.out, from_=args.from_), args.out)
        return 0
    write_output(TARGETS[args.target][1](fmt, args), args.out)
    return 0
