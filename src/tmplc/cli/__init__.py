"""The ``tmplc`` command line.  One module per subcommand (``cmd_<name>.py``) with
``add_parser(subparsers)`` and ``run(args) -> int``; heavy imports happen inside ``run``.

Exit codes: 0 ok, 1 failure of a check, 2 bad input (spec/messages/usage), 3 conversion refused.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tmplc.errors import MessageError, RegistryError, SpecError, TmplcError

# display order; any other cmd_*.py module in this package is added after these
ORDER = ["list", "compile", "render", "format", "convert", "identify", "train"]


def _commands() -> list[str]:
    import pkgutil
    from pathlib import Path

    found = {m.name[4:] for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("cmd_")}
    return [c for c in ORDER if c in found] + sorted(found - set(ORDER))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tmplc",
        description="Chat-template compiler: one two-repetition spec -> HF Jinja, training masks, "
                    "Ollama, llama.cpp.",
    )
    from tmplc import __version__

    parser.add_argument("--version", action="version", version=f"tmplc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _commands():
        mod = importlib.import_module(f"tmplc.cli.cmd_{name}")
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except TmplcError as e:
        if type(e).__name__ in ("ConversionRefused", "SandboxError"):
            print(f"tmplc: conversion refused: {getattr(e, 'reason', e)}", file=sys.stderr)
            return 3
        return _report(e)
    except BrokenPipeError:  # e.g. `tmplc compile x | head`
        return 0


def _report(e: TmplcError) -> int:
    """Print a tmplc error the way the CLI promises (no traceback) and return its exit code."""
    code = getattr(type(e), "exit_code", None)
    if code is not None:  # errors that carry their exit code (the trainer's: 2 bad input, 3 refused)
        print(f"tmplc: {'refused' if code == 3 else 'error'}: {e}", file=sys.stderr)
        return int(code)
    if isinstance(e, SpecError):
        print(e.cli_text(), file=sys.stderr)
        return 2
    print(f"tmplc: error: {e}", file=sys.stderr)
    return 2 if isinstance(e, (MessageError, RegistryError)) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
