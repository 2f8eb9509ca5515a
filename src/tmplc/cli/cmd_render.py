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
    p.add_argument("--plain", action="store_true",
                   help="with --show/--show-labels: no colour; trainable text in [[ ]]")
    p.add_argument("--tokenizer", metavar="DIR", help="HF tokenizer directory (for --show-labels)")
    p.add_argument("--show-labels", action="store_true",
                   help="with --tokenizer: print the token stream as the formatter tokenizes it, trained tokens "
                        "highlighted and masked tokens dimmed (colour on a terminal, [[...]] with --plain); "
                        "tokens are separated by '·', newlines shown as \\n")
    p.add_argument("--policy", default="assistant", help="with --show-labels: masking policy (see tmplc format)")
    p.add_argument("--special-tokens", choices=["text", "control"], default="text",
                   help="with --show-labels: special-token text in content as plain text (default) or control")
    return p


def _show_labels(args, fmt, convs) -> int:
    import warnings

    from tmplc.errors import TmplcError
    from tmplc.formatter import IGNORE, FormatterWarning, RowDropped, tokenize_messages, tokenizer_info

    if not args.tokenizer:
        raise TmplcError("--show-labels needs --tokenizer DIR")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    for h in tokenizer_info(tok).hazards(fmt):
        print(f"warning: {h}", file=sys.stderr)
    plain = args.plain or not sys.stdout.isatty()
    for row, msgs in enumerate(convs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FormatterWarning)
                out = tokenize_messages(fmt, msgs, tok, policy=args.policy, special_tokens=args.special_tokens)
        except MessageError as e:
            raise MessageError(e.index, e.message, row=row if len(convs) > 1 else None) from None
        except RowDropped as e:
            print(f"row {row}: dropped: {e.reason}", file=sys.stderr)
            continue
        ids, labels = out["input_ids"], out["labels"]
        pieces = [tok.decode([i]).replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
                  for i in ids]
        trained = [lab != IGNORE for lab in labels]
        head = f"row {row}: {len(ids)} tokens, {sum(trained)} trained\n"
        if plain:
            buf = [head]
            for k, (p, t) in enumerate(zip(pieces, trained)):
                if t and (k == 0 or not trained[k - 1]):
                    buf.append("[[")
                elif k:
                    buf.append("·")
                buf.append(p)
                if t and (k + 1 == len(trained) or not trained[k + 1]):
                    buf.append("]]")
            write_output("".join(buf) + "\n", None)
        else:
            from rich.console import Console
            from rich.text import Text

            text = Text(head)
            for k, (p, t) in enumerate(zip(pieces, trained)):
                if k:
                    text.append("·", style="dim")
                text.append(p, style="bold green underline" if t else "dim")
            Console(highlight=False).print(text)
    return 0


def run(args) -> int:
    from tmplc.api import load

    fmt = load(args.spec)
    convs = read_conversations(args.messages)
    if args.show_labels:
        return _show_labels(args, fmt, convs)
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
