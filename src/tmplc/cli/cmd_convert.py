"""``tmplc convert SRC --to TARGET``: import a template (exactly, or refuse with exit 3)."""

from __future__ import annotations

import argparse
import json
import sys

TARGETS = ("jinja", "ollama", "llamacpp", "spec", "yaml", "json", "all")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert", help="import an HF/Ollama chat template into tmplc (exact, or refused with a reason)",
        description="Convert SRC (a tokenizer_config.json, a chat_template.jinja, a model folder, a GGUF "
                    "file, or an Ollama Modelfile) into a tmplc format and write it as TARGET. The "
                    "template is probed in a sandbox, its structure recovered and verified byte for "
                    "byte; anything tmplc cannot reproduce exactly is refused (exit 3) with the reason.",
    )
    p.add_argument("src", metavar="SRC", help="tokenizer_config.json, *.jinja, model folder, *.gguf or Modelfile")
    p.add_argument("--to", dest="target", default="spec", choices=TARGETS, help="output (default: spec)")
    p.add_argument("--out", "-o", metavar="PATH",
                   help="write to PATH (a folder with --to all, with manifest.json) instead of stdout; "
                        "--to all without --out writes NAME-converted/ in the working folder (NAME from "
                        "SRC's metadata, reduced to a safe base name)")
    p.add_argument("--bos-token", help="override the BOS token string")
    p.add_argument("--eos-token", help="override the EOS token string")
    p.add_argument("--name", help="name of the resulting format (default: from SRC)")
    p.add_argument("--var", action="append", default=[], metavar="KEY=JSON",
                   help="extra template variable baked into the result (e.g. date_string='\"26 Jul 2024\"' "
                        "or enable_thinking=false); the value is JSON, else a string")
    p.add_argument("--text-only", action="store_true",
                   help="import the text part only (skip probing the template's tools, tool calls and tool "
                        "results); without it a template that uses tools gets its tool part when tmplc can "
                        "reproduce it exactly, and the reason on stderr when not")
    return p


def _vars(items: list[str]) -> dict:
    from tmplc.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--var needs KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _tool_line(conv) -> str:
    if conv.tools == "exact":
        left = "".join(f"; {n}" for n in conv.tools_notes)
        return f"tools: exact (tool list, tool calls and tool results verified byte for byte{left})"
    return (f"tools: refused: {conv.tools_reason} — the result is the text part only: it refuses tools, tool "
            "calls and tool messages (MessageError) rather than render them differently")


def _render(fmt, target: str) -> str:
    if target == "jinja":
        return fmt.to_jinja()
    if target == "spec":
        return fmt.to_spec()
    if target == "yaml":
        return fmt.to_yaml()
    if target == "json":
        return json.dumps(fmt.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if target == "ollama":
        return fmt.to_ollama()
    if target == "llamacpp":
        return fmt.to_llamacpp().report()
    raise ValueError(target)  # pragma: no cover


def run(args) -> int:
    from dataclasses import replace

    from tmplc.cli.common import write_output
    from tmplc.convert import ConversionRefused, identify, load_template_source

    from tmplc.cli.common import check_output

    check_output(args.out, folder=args.target == "all")
    src = load_template_source(args.src)
    if args.bos_token is not None:
        src = replace(src, bos_token=args.bos_token)
    if args.eos_token is not None:
        src = replace(src, eos_token=args.eos_token)
    if args.name:
        src = replace(src, name=args.name)
    kw = _vars(args.var)
    try:
        if args.text_only:
            fmt = src.convert(**kw)
        else:
            conv = src.convert_with_tools(**kw)
            fmt = conv.format
    except ConversionRefused as e:
        code = getattr(e, "exit_code", 3)
        print(f"tmplc: {'refused: ' if code == 3 else 'error: '}{args.src}: {e.reason}", file=sys.stderr)
        return code
    if not args.text_only and conv.tools != "none":
        print(f"tmplc: {args.src}: {_tool_line(conv)}", file=sys.stderr)
    same = identify(fmt)
    if same:
        print(f"tmplc: {args.src} is equivalent to the registry entry {same!r}", file=sys.stderr)
    from tmplc.lint import caveats

    for c in caveats(fmt):
        print(f"tmplc: caveat: {c}", file=sys.stderr)
    for what in () if args.text_only else conv.renders_otherwise:
        print(f"tmplc: caveat: the template renders {what} otherwise than this format (each message its own "
              f"turn): rows with {what} train a text the template does not show; merge or drop them",
              file=sys.stderr)
    if args.target != "all":
        if args.target == "spec" and fmt.structure.tools is not None:
            print("tmplc: note: the spec text (--to spec, the default) holds the text format only; the tool "
                  "layout is written by --to yaml, json, jinja, llamacpp or all", file=sys.stderr)
        write_output(_render(fmt, args.target), args.out)
        return 0
    from tmplc.cli.common import print_bundle
    from tmplc.fileio import safe_name
    from tmplc.targets.bundle import write_all

    # the default folder is named after the source's metadata (a GGUF's general.name, a folder
    # name): untrusted, so reduced to a safe base name inside the working folder
    out = args.out or safe_name(f"{fmt.name}-converted", default="imported-converted")
    print_bundle(write_all(fmt, out), out)
    return 0
