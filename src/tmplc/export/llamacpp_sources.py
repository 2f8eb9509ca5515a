"""Files of the pinned llama-cpp-python sdist that the exporter reads as facts (the pre-tokenizer
table) or runs as a yardstick (``convert_hf_to_gguf.py`` in the benchmark).  The tarball is kept at
``$TMPLC_LLAMACPP_SDIST`` or ``<cache>/sdist/llama_cpp_python-<ver>.tar.gz`` and fetched with
``pip download`` when missing (checked against the pinned SHA-256)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from tmplc.engines.llamacpp_fetch import (LLAMA_CPP_PYTHON_SDIST_SHA256, LLAMA_CPP_PYTHON_VERSION,
                                          LlamaCppUnavailableError, _sha256, cache_dir)

SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
VENDOR = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"


def sdist_path(download: bool = True) -> Path:
    """The verified sdist tarball (downloaded into the cache when missing and ``download``)."""
    given = os.environ.get("TMPLC_LLAMACPP_SDIST")
    path = Path(given) if given else cache_dir() / "sdist" / SDIST_NAME
    if not path.is_file():
        if given or not download:
            raise LlamaCppUnavailableError(f"the llama-cpp-python sdist is not at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
               f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(path.parent)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not path.is_file():
            raise LlamaCppUnavailableError(f"could not download {SDIST_NAME}: {proc.stderr.strip()[-800:]}")
    if _sha256(path) != LLAMA_CPP_PYTHON_SDIST_SHA256:
        raise LlamaCppUnavailableError(f"{path} does not have the pinned SHA-256 {LLAMA_CPP_PYTHON_SDIST_SHA256}")
    return path


def read_sdist_member(rel: str, sdist: Path | None = None) -> str:
    """The text of ``vendor/llama.cpp/<rel>`` in the sdist."""
    with tarfile.open(sdist or sdist_path(), "r:gz") as tar:
        f = tar.extractfile(VENDOR + rel)
        if f is None:
            raise LlamaCppUnavailableError(f"{rel} is not a file in {SDIST_NAME}")
        return f.read().decode("utf-8")


def extract_converter(dest: Path, sdist: Path | None = None) -> Path:
    """Extract convert_hf_to_gguf.py, conversion/ and gguf-py/ into ``dest``; return the script path."""
    with tarfile.open(sdist or sdist_path(), "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(VENDOR) and (
            m.name[len(VENDOR):] == "convert_hf_to_gguf.py"
            or m.name[len(VENDOR):].startswith(("conversion/", "gguf-py/")))]
        for m in members:
            rel = m.name[len(VENDOR):]
            if ".." in Path(rel).parts:
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            assert src is not None
            out.write_bytes(src.read())
    return dest / "convert_hf_to_gguf.py"
