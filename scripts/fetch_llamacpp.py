#!/usr/bin/env python3
"""Fetch llama.cpp's Jinja engine + built-in templates (from the pinned llama-cpp-python sdist).

Usage:
    python scripts/fetch_llamacpp.py           # fetch + extract; print the source root
    python scripts/fetch_llamacpp.py --build   # also compile the tmplc driver; print its path

The files go to ``$TMPLC_CACHE_DIR/llamacpp`` (default ``~/.cache/tmplc/llamacpp``); nothing
is downloaded when they are already there.  Set ``TMPLC_LLAMACPP_SDIST`` to a downloaded
``llama_cpp_python-<version>.tar.gz`` to work offline.  Exit status 1 on failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import tmplc  # noqa: F401
except ImportError:  # running from a source checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="also compile the llama.cpp driver")
    args = parser.parse_args(argv)

    from tmplc.engines.llamacpp_fetch import LlamaCppUnavailableError, fetch_llamacpp

    try:
        root = fetch_llamacpp()
        print(root)
        if args.build:
            from tmplc.engines.llamacpp import LlamaCppDriverError, ensure_llamacpp_driver

            try:
                print(ensure_llamacpp_driver())
            except LlamaCppDriverError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
    except LlamaCppUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
