"""The ``tmplc`` command line.  One module per subcommand (``cmd_<name>.py``) with
``add_parser(subparsers)`` and ``run(args) -> int``; heavy imports happen inside ``run``.

Exit codes: 0 ok, 1 failure of a check, 2 bad input (spec/messages/usage), 3 conversion refused.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tmplc.errors import SpecError, TargetError, TmplcError

# display order; any other cmd_*.py module in this package is added after these
ORDER = ["list", "compile", "render", "format", "check", "fix", "train", "export", "gguf", "convert", "identify", "verify"]


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
        return _report(e)
    except BrokenPipeError:  # e.g. `tmplc compile x | head`
        return 0
    except KeyboardInterrupt:  # Ctrl-C: outputs in progress were removed by tmplc.fileio
        print("tmplc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI never prints a traceback (TMPLC_DEBUG=1 does)
        import os

        if os.environ.get("TMPLC_DEBUG"):
            raise
        print(f"tmplc: internal error: {type(e).__name__}: {e} (a bug in tmplc: please report it; "
              "TMPLC_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def _report(e: TmplcError) -> int:
    """Print a tmplc error the way the CLI promises (no traceback) and return its exit code (by the
    error's type: ``e.exit_code``)."""
    if isinstance(e, SpecError):
        print(e.cli_text(), file=sys.stderr)
    elif isinstance(e, TargetError) and e.exit_code == 3:
        print(f"tmplc: refused: the {e.target} target cannot write this format: {e.reason}", file=sys.stderr)
    elif e.exit_code == 3 and hasattr(e, "reason"):  # the converter's refusals carry their reason
        print(f"tmplc: conversion refused: {e.reason}", file=sys.stderr)
    elif e.exit_code == 3:  # other refusals (the trainer's, the exporter's)
        print(f"tmplc: refused: {e}", file=sys.stderr)
    else:
        print(f"tmplc: error: {e}", file=sys.stderr)
    return e.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
