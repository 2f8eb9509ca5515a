"""Helpers shared by subcommands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tmplc.errors import MessageError


def write_output(text: str, out: str | None) -> None:
    """Write exactly ``text`` to ``out`` (atomically: a temporary name renamed when complete) or
    stdout (nothing added); problems are ``OutputError`` (exit 2) naming the path."""
    from tmplc.fileio import atomic_write_text, write_stdout

    if out and out != "-":
        atomic_write_text(out, text)
    else:
        write_stdout(text)


def print_bundle(manifest: dict, out: str) -> None:
    """The listing of ``--to all``: one line per file, refusal and caveat, then the manifest."""
    base = str(out).rstrip("/")
    for target, files in manifest["targets"].items():
        for rel in files:
            print(f"{target:<9} {base}/{rel}")
    for target, reason in manifest["refused"].items():
        print(f"{target:<9} refused: {reason}")
    for target, note in manifest["caveats"].items():
        print(f"{target:<9} caveat: {note}")
    print(f"manifest  {base}/manifest.json")


def read_conversations(path: str) -> list[list[dict]]:
    """A JSON list of messages (one conversation) or a JSONL file of conversations.

    A JSONL line may be a list of messages or an object with ``messages``.  Errors name the
    file and line (JSONL rows are 0-based in the message index sense: row N = line N+1)."""
    raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    lines = [l for l in raw.splitlines() if l.strip()]
    if raw.lstrip().startswith("["):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            if len(lines) <= 1:
                raise MessageError(None, f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
        else:
            if data and all(isinstance(x, list) for x in data):
                return data
            return [data]
    convs = []
    for n, line in enumerate(raw.splitlines()):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise MessageError(None, f"{path}:{n + 1}:{e.colno}: invalid JSON: {e.msg}", row=len(convs)) from None
        if isinstance(item, dict) and "messages" in item:
            item = item["messages"]
        if not isinstance(item, list):
            raise MessageError(None, f"{path}:{n + 1}: each line must be a list of messages or "
                               "an object with 'messages'", row=len(convs))
        convs.append(item)
    return convs
