"""``tmplc render SPEC --messages FILE``."""

from __future__ import annotations

import argparse
import sys

from tmplc.cli.common import add_token_options, load_format, read_conversations, write_output
from tmplc.errors import MessageError

STYLES = {"preamble": "dim", "system": "cyan", "user": "yellow", "assistant": "bold green"}


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "render", help="render conversations with a format",
        description="Render the conversations in FILE (a JSON list of messages, or JSONL: one conversation "
                    "per line) exactly, adding nothing. --show colours the pieces and marks trainable text.",
    )
    p.add_argument("spec", metavar="SPEC", help="registry name/alias, spec or YAML file, or spec text")
    p.add_argument("--messages", "-m", required=True, metavar="FILE",
                   help="a JSON list of messages, JSONL conversations, or any data file `tmplc format` reads "
                        "(.jsonl, .json, .csv, .tsv, .parquet: OpenAI messages, ShareGPT, Alpaca, "
                        "prompt/completion, --merged-prompt); '-' = JSON/JSONL on stdin")
    p.add_argument("--source", default="auto",
                   choices=["auto", "openai", "sharegpt", "alpaca", "prompt_completion", "merged"],
                   help="row shape (default: detected per row, as tmplc format does)")
    p.add_argument("--merged-prompt", metavar="TEMPLATE",
                   help="build the user message from columns, as tmplc format does: '{instruction}[[ {input}]]'")
    p.add_argument("--output-column", default="output", help="with --merged-prompt: the assistant column")
    p.add_argument("--default-system", metavar="TEXT", help="system message for rows that have none")
    p.add_argument("--limit", type=int, metavar="N", help="render only the first N rows (a preview)")
    p.add_argument("--tools", metavar="FILE",
                   help="a JSON file holding the tool definitions (transformers' [{\"type\": \"function\", "
                        "\"function\": {...}}]), rendered with every conversation; needs a format with tool "
                        "support (e.g. qwen3-tools; docs/tools.md)")
    p.add_argument("--tools-column", default="tools", metavar="NAME",
                   help="the column holding each row's own tool definitions, as tmplc format reads it "
                        "(default: tools; '' to not read it); a row with tools cannot be combined with --tools")
    p.add_argument("--add-generation-prompt", action="store_true", help="append the assistant prefix")
    p.add_argument("--continue-final-message", action="store_true",
                   help="leave the final assistant message open (no suffix)")
    p.add_argument("--show", action="store_true",
                   help="show segments: trainable text highlighted, context dimmed (colour on a terminal, "
                        "[[...]] markers with --plain)")
    p.add_argument("--plain", action="store_true",
                   help="with --show/--show-labels: no colour; trainable text in [[ ]]")
    add_token_options(p, tokenizer=False)
    p.add_argument("--tokenizer", metavar="DIR",
                   help="a local HF tokenizer folder: BOS/EOS strings the spec lacks, and the tokens of --show-labels")
    p.add_argument("--show-labels", action="store_true",
                   help="with --tokenizer: print the token stream as the formatter tokenizes it, trained tokens "
                        "highlighted and masked tokens dimmed (colour on a terminal, [[...]] with --plain); "
                        "tokens are separated by '·', newlines shown as \\n")
    p.add_argument("--policy", default="assistant", help="with --show-labels: masking policy (see tmplc format)")
    p.add_argument("--special-tokens", choices=["text", "control"], default="text",
                   help="with --show-labels: special-token text in content as plain text (default) or control")
    return p


def _read_tools(path: str, fmt) -> list:
    """The tool definitions of ``--tools FILE`` (a JSON list), checked against the format."""
    import json

    from tmplc.fileio import InputError, read_text
    from tmplc.render import check_tools

    raw = read_text(path, what="tools file")
    try:
        tools = json.loads(raw)
    except ValueError as e:
        raise InputError(path, f"invalid JSON in the tools file: {getattr(e, 'msg', e)}",
                         getattr(e, "lineno", None), getattr(e, "colno", None)) from None
    if isinstance(tools, dict) and "tools" in tools:
        tools = tools["tools"]
    try:
        check_tools(tools, fmt.name, fmt.structure.tools)
    except MessageError as e:
        raise InputError(path, e.message) from None
    return tools


def _show_labels(args, fmt, convs, row_tools) -> int:
    import warnings

    from tmplc.formatter import IGNORE, FormatterWarning, RowDropped, tokenize_messages, tokenizer_info
    from tmplc.formatter.tokenizer_load import load_tokenizer_dir

    tok = load_tokenizer_dir(args.tokenizer)  # InputError saying what is wrong with the folder
    for h in tokenizer_info(tok).hazards(fmt):
        print(f"warning: {h}", file=sys.stderr)
    plain = args.plain or not sys.stdout.isatty()
    for row, msgs in enumerate(convs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FormatterWarning)
                out = tokenize_messages(fmt, msgs, tok, policy=args.policy, special_tokens=args.special_tokens,
                                        tools=row_tools[row])
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
    from tmplc.errors import UsageError

    if args.show_labels and not args.tokenizer:
        raise UsageError("--show-labels needs --tokenizer DIR (a local tokenizer folder)")
    if args.show_labels:
        from tmplc.errors import TmplcError
        from tmplc.formatter import get_policy

        try:
            get_policy(args.policy)
        except TmplcError as e:
            raise UsageError(f"--policy: {e}") from None
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    if args.source == "merged" and args.merged_prompt is None:
        raise UsageError("--source merged needs --merged-prompt")
    args._needs_tokens = True
    fmt = load_format(args.spec, args)
    args._tools = _read_tools(args.tools, fmt) if args.tools else None
    rows = read_conversations(args.messages, source=args.source, merged_prompt=args.merged_prompt,
                              output_column=args.output_column, default_system=args.default_system,
                              limit=args.limit, tools_column=args.tools_column or None)
    convs, row_tools = [m for m, _ in rows], [t for _, t in rows]
    for row, tools in enumerate(row_tools):
        if tools is not None and args._tools is not None:
            raise UsageError(f"row {row} of {args.messages} has its own tools (column {args.tools_column!r}) and "
                             "--tools gives tools for every row: drop one (--tools-column '' ignores the column)")
    if args._tools is not None:
        row_tools = [args._tools] * len(convs)
    if args.show_labels:
        return _show_labels(args, fmt, convs, row_tools)
    for row, msgs in enumerate(convs):
        try:
            segs = fmt.segments(msgs, args.add_generation_prompt, args.continue_final_message, tools=row_tools[row])
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
