"""Fetch the part of llama.cpp's source that tmplc runs: its Jinja engine and built-in templates.

llama.cpp is vendored in the PyPI **sdist** of ``llama-cpp-python``; the network here reaches
package registries only, so that sdist is the source of truth.  :func:`fetch_llamacpp`
downloads the pinned version with ``pip download --no-deps --no-binary :all:``, checks its
SHA-256, and extracts only what tmplc needs into
``$TMPLC_CACHE_DIR/llamacpp/src-<version>/llama.cpp`` (``$TMPLC_CACHE_DIR`` defaults to
``$XDG_CACHE_HOME/tmplc`` or ``~/.cache/tmplc``):

- ``common/jinja/*`` — the C++ Jinja engine behind ``llama-server --jinja``;
- ``common/json.{h,cpp}``, ``common/unicode.{h,cpp}``, ``vendor/nlohmann/*`` — what it needs;
- ``src/llama-chat.{h,cpp}`` — the built-in templates and ``llm_chat_detect_template``;
- ``models/templates/*.jinja`` — llama.cpp's corpus of real model templates;
- ``LICENSE`` (MIT).

Nothing of llama.cpp is committed to tmplc.  The call is idempotent: a complete extraction
is marked by a ``.complete`` file and reused.  To work offline, point
``$TMPLC_LLAMACPP_SDIST`` at a previously downloaded ``llama_cpp_python-<version>.tar.gz``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

from tmplc.errors import TmplcError
from tmplc.resources import cache_dir

__all__ = [
    "LLAMA_CPP_PYTHON_VERSION",
    "LLAMA_CPP_PYTHON_SDIST_SHA256",
    "LlamaCppUnavailableError",
    "cache_dir",
    "fetch_llamacpp",
    "llamacpp_source_dir",
]

#: The pinned llama-cpp-python release; its vendored llama.cpp has ``common/jinja/``
#: (the in-house engine that replaced minja in llama.cpp b7756).
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
#: SHA-256 of ``llama_cpp_python-0.3.36.tar.gz`` as served by PyPI.
LLAMA_CPP_PYTHON_SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

_SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
_VENDOR_PREFIX = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"

#: Paths (relative to vendor/llama.cpp, fnmatch patterns) that are extracted.
EXTRACT_PATTERNS: tuple[str, ...] = (
    "LICENSE",
    "common/jinja/*",
    "common/json.h",
    "common/json.cpp",
    "common/unicode.h",
    "common/unicode.cpp",
    "vendor/nlohmann/json.hpp",
    "vendor/nlohmann/json_fwd.hpp",
    "src/llama-chat.h",
    "src/llama-chat.cpp",
    "models/templates/*.jinja",
)
#: llama.cpp translation units (relative to vendor/llama.cpp) linked into the driver.
LLAMACPP_SOURCES: tuple[str, ...] = (
    "common/jinja/lexer.cpp",
    "common/jinja/parser.cpp",
    "common/jinja/runtime.cpp",
    "common/jinja/value.cpp",
    "common/jinja/string.cpp",
    "common/jinja/caps.cpp",
    "common/json.cpp",
    "common/unicode.cpp",
    "src/llama-chat.cpp",
)
#: Files that must be present after extraction for the driver to build.
REQUIRED_FILES: tuple[str, ...] = LLAMACPP_SOURCES + ("vendor/nlohmann/json.hpp",)

_LOCK = threading.Lock()


class LlamaCppUnavailableError(TmplcError, RuntimeError):
    """llama.cpp's engine cannot be used here: the sdist cannot be fetched or no C++ compiler.

    Tests skip on this error (and fail when ``CI=true``); anything else is a real failure.
    """




def llamacpp_source_dir() -> Path:
    """Where the extracted ``vendor/llama.cpp`` subset lives (it may not exist yet)."""
    return cache_dir() / "llamacpp" / f"src-{LLAMA_CPP_PYTHON_VERSION}" / "llama.cpp"


def _is_complete(root: Path) -> bool:
    return (root / ".complete").is_file() and all((root / f).is_file() for f in REQUIRED_FILES)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_sdist(dest_dir: Path, log: bool) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check",
        f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
        "-d", str(dest_dir),
    ]
    if log:
        print(f"tmplc: downloading the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist "
              f"(~77 MB): {' '.join(cmd)}", file=sys.stderr)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise LlamaCppUnavailableError(f"cannot run pip to download the llama.cpp sources: {exc}") from exc
    sdist = dest_dir / _SDIST_NAME
    if proc.returncode != 0 or not sdist.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise LlamaCppUnavailableError(
            f"could not download llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} (sdist) with pip "
            f"(exit {proc.returncode}). tmplc needs it for llama.cpp's Jinja engine. Either give "
            f"pip access to PyPI, or download {_SDIST_NAME} elsewhere and set "
            f"TMPLC_LLAMACPP_SDIST to its path.\n{tail}"
        )
    return sdist


def _extract(sdist: Path, target: Path) -> int:
    """Extract the needed members of *sdist* into *target*; return the number of files."""
    count = 0
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:
                if not member.isfile() or not member.name.startswith(_VENDOR_PREFIX):
                    continue
                rel = member.name[len(_VENDOR_PREFIX):]
                if ".." in Path(rel).parts or rel.startswith("/"):
                    continue
                if not any(fnmatch.fnmatchcase(rel, pat) and rel.count("/") == pat.count("/")
                           for pat in EXTRACT_PATTERNS):
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                out = target / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with src, open(out, "wb") as fh:
                    shutil.copyfileobj(src, fh)
                count += 1
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise LlamaCppUnavailableError(f"cannot read the llama-cpp-python sdist {sdist}: {exc}") from exc
    return count


def fetch_llamacpp(*, log: bool = True) -> Path:
    """Make sure the llama.cpp source subset is in the cache; return its root directory.

    The root is the sdist's ``vendor/llama.cpp`` (with only the files listed in
    :data:`EXTRACT_PATTERNS`).  Idempotent and safe against concurrent callers: the
    extraction happens in a temporary directory which is renamed into place.

    Args:
        log: print what is downloaded to stderr (nothing is printed on a cache hit).

    Raises:
        LlamaCppUnavailableError: the sdist cannot be downloaded, has the wrong checksum,
            or lacks the expected files.
    """
    root = llamacpp_source_dir()
    with _LOCK:
        if _is_complete(root):
            return root
        parent = root.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LlamaCppUnavailableError(f"cannot create the cache directory {parent}: {exc}") from exc
        with tempfile.TemporaryDirectory(prefix="tmplc-llamacpp-", dir=parent) as tmp:
            tmp_path = Path(tmp)
            given = os.environ.get("TMPLC_LLAMACPP_SDIST")
            if given:
                sdist = Path(given)
                if not sdist.is_file():
                    raise LlamaCppUnavailableError(f"TMPLC_LLAMACPP_SDIST={given!r} is not a file")
            else:
                sdist = _download_sdist(tmp_path / "download", log)
            actual = _sha256(sdist)
            if actual != LLAMA_CPP_PYTHON_SDIST_SHA256:
                raise LlamaCppUnavailableError(
                    f"{sdist} has SHA-256 {actual}, expected {LLAMA_CPP_PYTHON_SDIST_SHA256} "
                    f"(llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist)"
                )
            staging = tmp_path / "llama.cpp"
            staging.mkdir()
            count = _extract(sdist, staging)
            missing = [f for f in REQUIRED_FILES if not (staging / f).is_file()]
            if missing:
                raise LlamaCppUnavailableError(
                    f"the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist lacks {', '.join(missing)}"
                )
            (staging / ".complete").write_text(
                f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}\nsha256 {actual}\nfiles {count}\n",
                encoding="utf-8",
            )
            if _is_complete(root):  # another process finished first
                return root
            if root.exists():  # an incomplete earlier attempt
                shutil.rmtree(root, ignore_errors=True)
            try:
                os.replace(staging, root)
            except OSError:
                if not _is_complete(root):  # another process won the race, else re-raise
                    raise
            if log:
                print(f"tmplc: extracted {count} llama.cpp files into {root}", file=sys.stderr)
    return root
