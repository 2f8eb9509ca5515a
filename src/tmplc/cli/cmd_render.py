"""``tmplc render SPEC --messages FILE``."""

from __future__ import annotations

import argparse
import sys

from tmplc.cli.common import read_conversations, write_output
from tmplc.errors import MessageError

STYLES = {"preamble": "dim", "system": "cyan", "user": "yellow", "assistant": "bold green"}


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "render", help="render conversations with a format",
        description="Render the conversations in FILE (a JSON list of messages, or JSONL: one conversation "
                    "per line) exactly, adding nothing. --show colours the pieces and marks trainable text.",
    )
    p.add_argument("spec", metavar="SPEC", help="registry name/alias, spec or YAML file, or spec text")
    p.add_argument("--messages", "-m", required=True, metavar="FILE", help="JSON or JSONL file ('-' = stdin)")
    p.add_argument("--add-generation-prompt", action="store_true", help="append the assistant prefix")
    p.add_argument("--continue-final-message", action="store_true",
                   help="leave the final assistant message open (no suffix)")
    p.add_argument("--show", action="store_true",
                   help="show segments: trainable text highlighted, context dimmed (colour on a terminal, "
                        "[[...]] markers with --plain)")
    p.add_argument("--plain", action="store_true", help="with --show: no colour; trainable text in [[ ]]")
    return p


def run(args) -> int:
    from tmplc.api import load

    fmt = load(args.spec)
    convs = read_conversations(args.messages)
    for row, msgs in enumerate(convs):
        try:
            segs = fmt.segments(msgs, args.add_generation_prompt, args.continue_final_message)
        except MessageError as e:
            raise MessageError(e.index, e.message, row=row if len(convs) > 1 else None) from None
        if not args.show:
            write_output("".join(s.text for s in segs), None)
        elif args.plain or not sys.stdout.isatty():
            out = []
            for s in segs:
                out.append(f"[[{s.text}]]" if s.trainable else s.text)
            write_output("".join(out) + ("\n" if len(convs) > 1 else ""), None)
        else:
            from rich.console import Console
            from rich.text import Text

            t = Text()
            for s in segs:
                style = STYLES.get(s.role or "preamble", "")
                if s.trainable:
                    style += " underline"
                else:
                    style = "dim " + style
                t.append(s.text, style=style.strip())
            Console(highlight=False).print(t, end="\n" if len(convs) > 1 else "")
    return 0
