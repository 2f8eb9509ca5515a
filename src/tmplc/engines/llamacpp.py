"""Render chat templates with llama.cpp's own engines, from Python.

Two engines of llama.cpp are run, compiled standalone (no libllama, no ggml):

- the C++ Jinja engine ``common/jinja/*`` that ``llama-server --jinja`` uses (the default
  since it replaced minja in b7756): :func:`render_llamacpp`, :func:`render_llamacpp_one`,
  :func:`template_caps`;
- the built-in templates of ``src/llama-chat.cpp`` that llama.cpp falls back to without
  ``--jinja``, and the substring heuristics ``llm_chat_detect_template`` that pick one from a
  GGUF's ``tokenizer.chat_template``: :func:`detect_builtin`, :func:`render_builtin`,
  :func:`builtin_names`.

A render mirrors how ``common/chat.cpp`` builds the context for a text-only chat (see the
comment at the top of ``llamacpp_driver/driver.cpp``): the template is probed for its
capabilities; ``developer`` becomes ``system``; a template without a system role gets the
system message merged into the next message (``system + "\\n" + content``); the context holds
``messages``, ``bos_token``, ``eos_token``, ``enable_thinking=true``, ``datetime``,
``date_string`` and ``add_generation_prompt`` (*set only when true*).  llama-server then
removes a leading ``bos_token`` from the text when the GGUF says ``add_bos_token`` (and a
trailing ``eos_token`` when ``add_eos_token``): pass ``add_bos=True`` to get that.

The sources come from the pinned ``llama-cpp-python`` sdist (:mod:`tmplc.engines.llamacpp_fetch`);
the nine llama.cpp translation units are compiled once into object files (``g++ -O1
-std=c++17``) cached under ``$TMPLC_CACHE_DIR/llamacpp/build-*``, and our driver is linked
against them into a binary keyed by a hash of its sources, the sdist version and the compiler.
All jobs of one call run in a single process.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path
from typing import Any

from tmplc.engines.llamacpp_fetch import (
    LLAMA_CPP_PYTHON_VERSION,
    LLAMACPP_SOURCES,
    LlamaCppUnavailableError,
    cache_dir,
    fetch_llamacpp,
)
from tmplc.engines.jobs import JobError
from tmplc.errors import TmplcError

__all__ = [
    "LlamaCppDriverError",
    "LlamaCppRenderError",
    "LlamaCppUnavailableError",
    "builtin_names",
    "detect_builtin",
    "detect_builtins",
    "ensure_llamacpp_driver",
    "find_cxx",
    "render_builtin",
    "render_llamacpp",
    "render_llamacpp_one",
    "run_driver_jobs",
    "template_caps",
]

_DRIVER_FILES: tuple[str, ...] = ("driver.cpp", "shim/ggml.h", "shim/llama.h")
CXXFLAGS: tuple[str, ...] = ("-O1", "-std=c++17")

_BUILD_LOCK = threading.Lock()
_DRIVER_CACHE: dict[str, Path] = {}


class LlamaCppDriverError(TmplcError, RuntimeError):
    """The driver could not be compiled, or its process failed as a whole."""


class LlamaCppRenderError(JobError):
    """One job failed inside llama.cpp: a lexer/parser/runtime error, an unknown filter, ...

    Instances are *returned* by :func:`render_llamacpp` in place of the failing job's output
    (one bad job does not hide the others) and *raised* by the single-job helpers.

    Attributes:
        message: llama.cpp's error text.
        index: the job's position in the batch, when known.
        lossy_output: for an output that is not valid UTF-8 (the engine slices strings by
            bytes), the text with U+FFFD replacements; otherwise ``None``.
    """

    def __init__(self, message: str, index: int | None = None, lossy_output: str | None = None) -> None:
        super().__init__(message, index)
        self.lossy_output = lossy_output


# --- toolchain and build ----------------------------------------------------------------------

def find_cxx() -> list[str]:
    """Return the C++ compiler command: ``$TMPLC_CXX``, ``$CXX``, then ``g++``/``c++``/``clang++``.

    Raises:
        LlamaCppUnavailableError: no compiler was found.
    """
    for var in ("TMPLC_CXX", "CXX"):
        value = os.environ.get(var)
        if value:
            parts = value.split()
            if shutil.which(parts[0]):
                return parts
            raise LlamaCppUnavailableError(f"{var}={value!r} is not an executable C++ compiler")
    for name in ("g++", "c++", "clang++"):
        found = shutil.which(name)
        if found:
            return [found]
    raise LlamaCppUnavailableError(
        "a C++17 compiler is needed to build llama.cpp's Jinja engine, but none of g++, c++, "
        "clang++ is on PATH (set CXX or TMPLC_CXX). On Debian: `apt-get install g++`."
    )


def _compiler_id(cxx: Sequence[str]) -> str:
    try:
        proc = subprocess.run([*cxx, "--version"], capture_output=True, text=True)
    except OSError as exc:
        raise LlamaCppUnavailableError(f"cannot run the C++ compiler {cxx[0]}: {exc}") from exc
    return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else " ".join(cxx)


def _driver_sources() -> dict[str, bytes]:
    root = files("tmplc.engines") / "llamacpp_driver"
    out: dict[str, bytes] = {}
    for rel in _DRIVER_FILES:
        node = root
        for part in rel.split("/"):
            node = node / part
        out[rel] = node.read_bytes()
    return out


def _run_compiler(cmd: Sequence[str], what: str) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise LlamaCppDriverError(
            f"compiling {what} failed (exit {proc.returncode}):\n$ {' '.join(cmd)}\n"
            f"{(proc.stderr or proc.stdout).strip()[-4000:]}"
        )


def _build_objects(cxx: Sequence[str], src_root: Path, include: Sequence[str], obj_dir: Path) -> list[Path]:
    """Compile every llama.cpp source once into *obj_dir* (atomically, in parallel)."""
    obj_dir.mkdir(parents=True, exist_ok=True)
    objects = [obj_dir / (rel.replace("/", "__").removesuffix(".cpp") + ".o") for rel in LLAMACPP_SOURCES]
    todo = [(rel, obj) for rel, obj in zip(LLAMACPP_SOURCES, objects) if not obj.is_file()]

    def compile_one(item: tuple[str, Path]) -> None:
        rel, obj = item
        fd, tmp_name = tempfile.mkstemp(prefix=obj.stem + ".", suffix=".o.tmp", dir=obj_dir)
        os.close(fd)
        try:
            _run_compiler([*cxx, *CXXFLAGS, *include, "-c", str(src_root / rel), "-o", tmp_name], rel)
            os.replace(tmp_name, obj)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    if todo:
        workers = max(1, min(len(todo), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(compile_one, todo):
                pass
    return objects


def ensure_llamacpp_driver() -> Path:
    """Return the path of the compiled driver, fetching and compiling what is missing.

    Layout under the cache: ``llamacpp/src-<ver>/llama.cpp`` (sources),
    ``llamacpp/build-<ver>-<key>/obj/*.o`` (llama.cpp objects, key = compiler + flags + shims)
    and ``llamacpp/build-<ver>-<key>/driver-<hash>`` (key also covers ``driver.cpp``).

    Raises:
        LlamaCppUnavailableError: no sdist or no C++ compiler.
        LlamaCppDriverError: a compile or link failed.
    """
    sources = _driver_sources()
    with _BUILD_LOCK:
        cxx = find_cxx()
        compiler = _compiler_id(cxx)
        shim_digest = hashlib.sha256()
        for rel in ("shim/ggml.h", "shim/llama.h"):
            shim_digest.update(rel.encode() + b"\0" + sources[rel] + b"\0")
        obj_key = hashlib.sha256(
            "\0".join([LLAMA_CPP_PYTHON_VERSION, " ".join(cxx), compiler, *CXXFLAGS, shim_digest.hexdigest()]).encode()
        ).hexdigest()[:16]
        driver_key = hashlib.sha256(obj_key.encode() + b"\0" + sources["driver.cpp"]).hexdigest()[:16]
        cached = _DRIVER_CACHE.get(driver_key)
        if cached is not None and cached.is_file():
            return cached

        build_dir = cache_dir() / "llamacpp" / f"build-{LLAMA_CPP_PYTHON_VERSION}-{obj_key}"
        suffix = ".exe" if sys.platform == "win32" else ""
        binary = build_dir / f"driver-{driver_key}{suffix}"
        if not binary.is_file():
            src_root = fetch_llamacpp()
            build_dir.mkdir(parents=True, exist_ok=True)
            shim_dir = build_dir / "shim"
            shim_dir.mkdir(exist_ok=True)
            for rel in ("shim/ggml.h", "shim/llama.h"):
                target = build_dir / rel
                if not target.is_file() or target.read_bytes() != sources[rel]:
                    target.write_bytes(sources[rel])
            include = [f"-I{shim_dir}", f"-I{src_root / 'common'}", f"-I{src_root / 'vendor'}",
                       f"-I{src_root / 'src'}"]
            objects = _build_objects(cxx, src_root, include, build_dir / "obj")
            with tempfile.TemporaryDirectory(prefix="tmplc-driver-", dir=build_dir) as tmp:
                driver_src = Path(tmp) / "driver.cpp"
                driver_src.write_bytes(sources["driver.cpp"])
                out = Path(tmp) / binary.name
                _run_compiler([*cxx, *CXXFLAGS, *include, str(driver_src), *map(str, objects), "-o", str(out)],
                              "the tmplc llama.cpp driver")
                os.replace(out, binary)
        _DRIVER_CACHE[driver_key] = binary
        return binary


# --- running jobs -----------------------------------------------------------------------------

def _run_once(binary: Path, payload: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """Run the driver on *payload*; return the results it finished and, if it died, why."""
    data = json.dumps(list(payload), ensure_ascii=False).encode("utf-8")
    try:
        proc = subprocess.run([str(binary)], input=data, capture_output=True)
    except OSError as exc:
        raise LlamaCppDriverError(f"cannot run the llama.cpp driver {binary}: {exc}") from exc
    results: list[dict[str, Any]] = []
    lines = proc.stdout.decode("utf-8", "replace").split("\n")
    for line in lines[1:]:
        text = line.rstrip()
        if text == "]":
            break
        try:
            results.append(json.loads(text.removesuffix(",")))
        except json.JSONDecodeError:
            break  # a partial line written just before a crash
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode == 0 and len(results) == len(payload):
        return results, None
    if not lines or lines[0].strip() != "[":
        # it died before looking at any job: nothing to blame on a single job
        raise LlamaCppDriverError(
            f"the llama.cpp driver {binary} failed (exit {proc.returncode}) before rendering: {stderr[-2000:]}"
        )
    return results, f"the llama.cpp driver died (exit {proc.returncode}) on this job: {stderr[-2000:]}"


def run_driver_jobs(jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Run raw driver jobs (see ``driver.cpp``) and return the raw result objects.

    A job that crashes the process (an abort or a segfault inside llama.cpp) gets
    ``{"error": ...}``; the driver is restarted on the remaining jobs.
    """
    payload = [dict(job) for job in jobs]
    if not payload:
        return []
    binary = ensure_llamacpp_driver()
    out: list[dict[str, Any]] = []
    start = 0
    while start < len(payload):
        results, crash = _run_once(binary, payload[start:])
        out.extend(results)
        start += len(results)
        if crash is not None:
            out.append({"error": crash, "crashed": True})
            start += 1
    return out


def _messages(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        raise TypeError(f"{where}: 'messages' must be a list of {{'role', 'content'}} mappings")
    out: list[dict[str, str]] = []
    for m in messages:
        content = m.get("content")
        out.append({"role": str(m["role"]), "content": "" if content is None else content})
    return out


_RENDER_OPTIONAL = ("add_bos", "add_eos", "enable_thinking", "workarounds", "extra_context", "date", "raw_messages")


def _render_payload(job: Mapping[str, Any], index: int) -> dict[str, Any]:
    template = job.get("template")
    if not isinstance(template, str):
        raise TypeError(f"job {index}: 'template' must be a str")
    payload: dict[str, Any] = {
        "template": template,
        "messages": list(job.get("messages", [])) if job.get("raw_messages") else _messages(
            job.get("messages", []), f"job {index}"),
        "bos_token": job.get("bos_token") or "",
        "eos_token": job.get("eos_token") or "",
        "add_generation_prompt": bool(job.get("add_generation_prompt", False)),
    }
    for key in _RENDER_OPTIONAL:
        if job.get(key) is not None:
            payload[key] = job[key]
    if isinstance(payload.get("date"), (datetime.date, datetime.datetime)):
        d = payload["date"]
        payload["date"] = f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
    return payload


def _to_output(item: Mapping[str, Any], index: int) -> str | LlamaCppRenderError:
    if "output" in item:
        return str(item["output"])
    return LlamaCppRenderError(str(item.get("error", "unknown error")), index, item.get("output_lossy"))


def render_llamacpp(jobs: Sequence[Mapping[str, Any]]) -> list[str | LlamaCppRenderError]:
    """Render every job with llama.cpp's Jinja engine, as ``llama-server --jinja`` would, in one process.

    Each job is a mapping with:

    - ``template`` (str): the chat template (GGUF ``tokenizer.chat_template``);
    - ``messages``: list of ``{"role": str, "content": str}``;
    - ``bos_token`` / ``eos_token`` (str): the vocab's BOS/EOS text (default ``""``);
    - ``add_generation_prompt`` (bool, default False);
    - optional ``add_bos`` / ``add_eos`` (bool, default False): strip a leading ``bos_token``
      / trailing ``eos_token`` from the result, as llama-server does when the GGUF's
      ``add_bos_token`` / ``add_eos_token`` is true;
    - optional ``enable_thinking`` (bool, default True), ``workarounds`` (bool, default True:
      apply llama-server's developer→system and no-system-role merges),
      ``extra_context`` (dict added to the template context, like ``chat_template_kwargs``);
    - optional ``date`` ("YYYY-MM-DD" or a ``datetime.date``): a *test hook* (llama.cpp has no
      such option) fixing "now" to local midnight of that day for ``strftime_now`` and the
      ``datetime``/``date_string`` variables; absent, they read the clock, as llama.cpp does.

    Returns:
        One entry per job: the rendered text, or a :class:`LlamaCppRenderError` for a job
        that llama.cpp rejected (parse error, unknown filter, ``raise_exception``, ...).

    Raises:
        LlamaCppUnavailableError: no sdist or compiler to build the driver.
        LlamaCppDriverError: the build or the driver process failed as a whole.
        TypeError: a job is malformed.
    """
    payload = [_render_payload(job, i) for i, job in enumerate(jobs)]
    return [_to_output(item, i) for i, item in enumerate(run_driver_jobs(payload))]


def render_llamacpp_one(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = False,
    add_bos: bool = False,
    add_eos: bool = False,
) -> str:
    """Render one conversation (see :func:`render_llamacpp`); raise :class:`LlamaCppRenderError` on error."""
    (result,) = render_llamacpp([{
        "template": template, "messages": list(messages), "bos_token": bos_token,
        "eos_token": eos_token, "add_generation_prompt": add_generation_prompt,
        "add_bos": add_bos, "add_eos": add_eos,
    }])
    if isinstance(result, LlamaCppRenderError):
        raise LlamaCppRenderError(result.message, None, result.lossy_output)
    return result


def template_caps(template: str) -> dict[str, bool]:
    """Return llama.cpp's capability probe of a template (``jinja::caps_get``), e.g.
    ``{"supports_system_role": True, "supports_typed_content": False, ...}``.

    Raises:
        LlamaCppRenderError: the template does not lex/parse.
    """
    (item,) = run_driver_jobs([{"caps": template}])
    if "caps" not in item:
        raise LlamaCppRenderError(str(item.get("error", "unknown error")))
    return {str(k): bool(v) for k, v in item["caps"].items()}


def detect_builtins(templates: Sequence[str]) -> list[str | None]:
    """Batch form of :func:`detect_builtin`."""
    items = run_driver_jobs([{"detect": t} for t in templates])
    out: list[str | None] = []
    for item in items:
        if "name" not in item:
            raise LlamaCppRenderError(str(item.get("error", "unknown error")))
        out.append(item["name"] or None)
    return out


def detect_builtin(template: str) -> str | None:
    """Name of the built-in template llama.cpp picks for *template* without ``--jinja``.

    This is ``llm_chat_detect_template``: an exact built-in name, else the first matching
    substring heuristic.  Returns ``None`` when llama.cpp would not recognise it (then
    ``llama_chat_apply_template`` fails with -1).  ``"dots1"`` is returned for the one
    built-in that is detectable but has no name in llama.cpp.
    """
    return detect_builtins([template])[0]


def render_builtin(name: str, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = False) -> str:
    """Render with a built-in template, as ``llama_chat_apply_template(name, ...)`` does.

    *name* may be a built-in name (``"chatml"``, ``"llama3"``, ...) or a template text, which
    goes through :func:`detect_builtin` first (the Jinja text is never executed).

    Raises:
        LlamaCppRenderError: unknown template (llama.cpp returns -1).
    """
    (item,) = run_driver_jobs([{
        "builtin": name, "messages": _messages(messages, "render_builtin"),
        "add_generation_prompt": bool(add_generation_prompt),
    }])
    result = _to_output(item, 0)
    if isinstance(result, LlamaCppRenderError):
        raise LlamaCppRenderError(result.message, None, result.lossy_output)
    return result


def builtin_names() -> list[str]:
    """The names of llama.cpp's built-in templates (``llama_chat_builtin_templates``)."""
    (item,) = run_driver_jobs([{"list_builtins": True}])
    if "names" not in item:
        raise LlamaCppDriverError(str(item.get("error", "unknown error")))
    return [str(n) for n in item["names"]]
