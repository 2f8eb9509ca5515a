"""``tmplc list``: the registry."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("list", help="list registry templates (name, aliases, description)",
                       description="List the built-in template registry: name, aliases, description.")
    p.add_argument("--names", action="store_true", help="print only the names, one per line")
    return p


def run(args) -> int:
    from tmplc.registry import registry

    for name in registry:
        fmt = registry[name]
        if args.names:
            print(name)
            continue
        aliases = ", ".join(fmt.meta.aliases)
        print(f"{name:<14} {fmt.meta.description}")
        if aliases:
            print(f"{'':<14} aliases: {aliases}")
    return 0
