"""``tmplc identify SRC``: which registry entry a template is equivalent to (by IR equality)."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "identify", help="name the registry entry a template is equivalent to",
        description="Convert SRC (tokenizer_config.json, *.jinja, model folder, *.gguf, Modelfile) exactly "
                    "and print the registry entry whose layout and token strings are equal to it, or say "
                    "there is none. Never matches by string similarity. Exit 0 when found, 1 when not, "
                    "3 when the template cannot be converted exactly.",
    )
    p.add_argument("src", metavar="SRC")
    return p


def run(args) -> int:
    from tmplc.convert import ConversionRefused, identify, load_template_source

    src = load_template_source(args.src)
    try:
        fmt = src.convert()
    except ConversionRefused as e:
        code = getattr(e, "exit_code", 3)
        print(f"tmplc: {'refused: ' if code == 3 else 'error: '}{args.src}: {e.reason}", file=sys.stderr)
        return code
    name = identify(fmt)
    how = ""
    if name is None and src.kind == "ollama":
        from tmplc.convert.verify import identify_by_rendering

        name = identify_by_rendering(src)
        how = " (as its Ollama Modelfile renders it: Ollama adds BOS and cannot trim)"
    if name is None:
        print(f"tmplc: {args.src}: no registry entry is equivalent (convert it with "
              f"`tmplc convert {args.src} --to yaml`)")
        return 1
    print(f"tmplc: {args.src} is equivalent to the registry entry {name!r}{how}")
    return 0
