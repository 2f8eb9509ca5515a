"""Render Ollama Modelfile TEMPLATEs with a real Go ``text/template`` engine.

The Go program in ``ollama_harness/main.go`` re-implements what Ollama's
``template/template.go`` does around ``text/template`` (FuncMap,
``missingkey=zero``, the appended ``{{ .Response }}``, ``collate``, the
messages/legacy/FIM mode switch, the Modelfile SYSTEM rule of the chat
handler); see the comment at the top of that file for the exact behaviours
and the Ollama commit they were checked against.

The binary is built with ``go build`` on first use into a cache directory
(``$TMPLC_CACHE_DIR`` or ``~/.cache/tmplc``), keyed by a hash of its sources,
so an edited ``main.go`` is rebuilt automatically.  All jobs of one
:func:`render_ollama` call are rendered by a single process.

Install Go (1.19 or newer, standard library only) with::

    apt-get install golang-go
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from tmplc.engines.jobs import JobError
from tmplc.errors import TmplcError
from tmplc.resources import cache_dir as _cache_dir

__all__ = [
    "GoNotFoundError",
    "DEFAULT_LIMITS",
    "HarnessError",
    "HarnessLimitError",
    "HarnessLimits",
    "OllamaRenderError",
    "find_go",
    "harness_binary",
    "render_ollama",
    "render_ollama_one",
]

_HARNESS_FILES = ("main.go", "go.mod")
_BUILD_LOCK = threading.Lock()
_BINARY_CACHE: dict[str, Path] = {}


class GoNotFoundError(TmplcError, RuntimeError):
    """No Go toolchain was found to build the Ollama template harness."""


class HarnessError(TmplcError, RuntimeError):
    """The harness could not be built, or the harness process failed as a whole."""


class OllamaRenderError(JobError):
    """One job failed in Go: a template parse error, an execution error, or a panic.

    Instances are *returned* by :func:`render_ollama` in place of the output of
    the failing job (so one bad job does not hide the others) and *raised* by
    :func:`render_ollama_one`.

    Attributes:
        message: the error text produced by Go (``template: :1: unclosed action``...).
        index: the position of the job in the batch.
    """



class HarnessLimitError(HarnessError):
    """The harness process passed a limit (an untrusted template: endless loop, memory or output
    bomb) and was stopped.  ``limit`` is ``"time"``, ``"memory"`` or ``"output"``."""

    def __init__(self, limit: str, reason: str) -> None:
        self.limit = limit
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class HarnessLimits:
    """Bounds on one harness process (one :func:`render_ollama` call), enforced from Python.

    ``timeout``: wall-clock seconds, then the process group is killed; ``max_memory``: the
    address-space limit (``RLIMIT_AS``, hard) of the process (Go reserves several hundred MiB of
    address space at start: below about 1 GiB the harness cannot start), with ``GOMEMLIMIT`` at half of it so
    Go collects garbage before reaching it; ``max_output``: bytes of results read back (the
    process is killed past it); ``max_output_per_render``: bytes one render may write (checked in
    Go, ``TMPLC_HARNESS_MAX_OUTPUT``); ``max_stack``: goroutine stack bytes (deep
    ``{{ template }}`` recursion)."""

    timeout: float = 20.0
    max_memory: int = 2 << 30
    max_output: int = 64 << 20
    max_output_per_render: int = 1 << 20
    max_stack: int = 64 << 20


#: for templates tmplc wrote itself (tests render thousands of conversations in one call)
DEFAULT_LIMITS = HarnessLimits(timeout=300.0)
_OUTPUT_LIMIT_MSG = "tmplc-harness: output limit"


def _rlimits(limits: HarnessLimits) -> list[tuple[int, tuple[int, int]]]:
    import resource

    cpu = int(limits.timeout * max(1, os.cpu_count() or 1)) + 5
    return [(resource.RLIMIT_AS, (limits.max_memory, limits.max_memory)), (resource.RLIMIT_CPU, (cpu, cpu))]


def _limit_child(limits: HarnessLimits):  # pragma: no cover - runs in the child (non-Linux POSIX)
    def apply() -> None:
        import resource

        for which, value in _rlimits(limits):
            resource.setrlimit(which, value)
    return apply


def _apply_limits(proc: subprocess.Popen, limits: HarnessLimits) -> None:
    """Linux: set the child's limits with prlimit right after it starts.  The harness reads all of
    its stdin before running anything, and stdin is written only after this, so no template code
    runs unbounded (and no Python runs between fork and exec, unlike preexec_fn)."""
    import resource

    for which, value in _rlimits(limits):
        resource.prlimit(proc.pid, which, value)


def run_bounded(argv: list[str], stdin: bytes, limits: HarnessLimits, what: str) -> bytes:
    """Run ``argv`` in its own process group with ``stdin``; return its stdout.  The group is
    killed when the wall time or the stdout size passes its limit (HarnessLimitError); a
    non-zero exit is a HarnessError, or a HarnessLimitError("memory") when Go ran out of memory
    or stack under the limits."""
    env = dict(os.environ)
    env.update(GOMEMLIMIT=str(limits.max_memory // 2), TMPLC_HARNESS_MAX_OUTPUT=str(limits.max_output_per_render),
               TMPLC_HARNESS_MAX_STACK=str(limits.max_stack))
    posix = os.name == "posix"
    try:
        import resource as _res

        has_prlimit = posix and hasattr(_res, "prlimit")
    except ImportError:  # pragma: no cover - not POSIX
        has_prlimit = False
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=posix,
                            preexec_fn=_limit_child(limits) if posix and not has_prlimit else None)
    if has_prlimit:
        try:
            _apply_limits(proc, limits)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    out: list[bytes] = []
    err: list[bytes] = []
    over = threading.Event()

    def kill() -> None:
        try:
            if posix:
                os.killpg(proc.pid, signal.SIGKILL)
            else:  # pragma: no cover
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass

    def pump(stream, sink: list[bytes], cap: int | None) -> None:
        n = 0
        while True:
            chunk = stream.read(1 << 16)
            if not chunk:
                return
            n += len(chunk)
            if cap is not None and n > cap:
                over.set()
                kill()
                return
            if cap is not None or n < (1 << 16):
                sink.append(chunk)

    def feed() -> None:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    threads = [threading.Thread(target=feed, daemon=True),
               threading.Thread(target=pump, args=(proc.stdout, out, limits.max_output), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err, None), daemon=True)]
    for t in threads:
        t.start()
    try:
        proc.wait(timeout=limits.timeout)
    except subprocess.TimeoutExpired:
        kill()
        proc.wait()
        raise HarnessLimitError("time", f"{what} ran longer than the time limit of {limits.timeout:g} s "
                                "(an endless or exponential loop?); the process was killed") from None
    except BaseException:  # Ctrl-C: never leave the process behind
        kill()
        proc.wait()
        raise
    finally:
        for t in threads[1:]:
            t.join(timeout=5)
    if over.is_set():
        raise HarnessLimitError("output", f"{what} wrote more than the output limit of {limits.max_output} bytes; "
                                "the process was killed")
    if proc.returncode != 0:
        text = b"".join(err).decode("utf-8", "replace").strip()
        low = text.lower()
        if "out of memory" in low or "cannot allocate memory" in low or "stack exceeds" in low \
                or "failed to reserve" in low \
                or "stack overflow" in low or proc.returncode in (-signal.SIGKILL, -signal.SIGXCPU):
            first = text.splitlines()[0] if text else f"killed by signal {-proc.returncode}"
            raise HarnessLimitError("memory", f"{what} passed the memory limit ({limits.max_memory >> 20} MiB of "
                                    f"address space, {limits.max_stack >> 20} MiB of stack): {first}")
        raise HarnessError(f"Ollama template harness exited with {proc.returncode}: {text[:2000]}")
    return b"".join(out)


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"go-(\d+(?:\.\d+)*)", path)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def find_go() -> Path:
    """Return the ``go`` executable: ``$TMPLC_GO``, then ``PATH``, then Debian's locations.

    Raises:
        GoNotFoundError: when none exists.
    """
    explicit = os.environ.get("TMPLC_GO")
    if explicit:
        if os.access(explicit, os.X_OK):
            return Path(explicit)
        raise GoNotFoundError(f"TMPLC_GO={explicit!r} is not an executable Go binary")
    on_path = shutil.which("go")
    if on_path:
        return Path(on_path)
    candidates = ["/usr/lib/go/bin/go"]
    candidates += sorted(glob.glob("/usr/lib/go-1.*/bin/go"), key=_version_key, reverse=True)
    candidates += ["/usr/local/go/bin/go"]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    raise GoNotFoundError(
        "Go is needed to render Ollama templates with the real text/template engine, but no `go` "
        "was found on PATH, in /usr/lib/go/bin or in /usr/lib/go-1.*/bin. Install it with "
        "`apt-get install golang-go` (Go >= 1.19, no modules are downloaded), or set TMPLC_GO "
        "to the go binary."
    )




def _harness_sources() -> dict[str, bytes]:
    root = files("tmplc.engines") / "ollama_harness"
    return {name: (root / name).read_bytes() for name in _HARNESS_FILES}


def harness_binary() -> Path:
    """Return the path of the harness binary, building it first if needed.

    The binary is ``<cache>/ollama-harness-<sha256 of the sources>``; building
    happens in a temporary directory and the result is moved into place
    atomically, so concurrent test processes are safe.

    Raises:
        GoNotFoundError: no Go toolchain.
        HarnessError: ``go build`` failed.
    """
    sources = _harness_sources()
    digest = hashlib.sha256()
    for name in _HARNESS_FILES:
        digest.update(name.encode() + b"\0" + sources[name] + b"\0")
    key = digest.hexdigest()[:16]
    with _BUILD_LOCK:
        cached = _BINARY_CACHE.get(key)
        if cached is not None and cached.exists():
            return cached
        cache = _cache_dir()
        suffix = ".exe" if sys.platform == "win32" else ""
        binary = cache / f"ollama-harness-{key}{suffix}"
        if not binary.exists():
            _build(sources, cache, binary)
        _BINARY_CACHE[key] = binary
        return binary


def _build(sources: Mapping[str, bytes], cache: Path, binary: Path) -> None:
    go = find_go()
    cache.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("GOCACHE", str(cache / "go-build"))
    env.setdefault("GOPATH", str(cache / "gopath"))
    env.update({"GO111MODULE": "on", "GOFLAGS": "", "GOPROXY": "off",
                "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"})
    with tempfile.TemporaryDirectory(prefix="tmplc-go-", dir=cache) as tmp:
        for name, data in sources.items():
            Path(tmp, name).write_bytes(data)
        out = Path(tmp, binary.name)
        proc = subprocess.run(
            [str(go), "build", "-trimpath", "-o", str(out), "."],
            cwd=tmp, env=env, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise HarnessError(
                f"`go build` of the Ollama template harness failed ({go}):\n"
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        os.replace(out, binary)


def _job_payload(job: Mapping[str, Any], index: int) -> dict[str, Any]:
    if "template" not in job or not isinstance(job["template"], str):
        raise TypeError(f"job {index}: 'template' must be a str")
    messages = job.get("messages", [])
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        raise TypeError(f"job {index}: 'messages' must be a list of dicts")
    payload: dict[str, Any] = {"template": job["template"], "messages": [dict(m) for m in messages]}
    for key in ("system", "think", "prompt", "suffix", "date"):
        if job.get(key) is not None:
            payload[key] = job[key]
    if isinstance(payload.get("date"), (datetime.date, datetime.datetime)):
        d = payload["date"]
        payload["date"] = f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
    return payload


def render_ollama(jobs: Sequence[Mapping[str, Any]], limits: "HarnessLimits | None" = None
                  ) -> list[str | OllamaRenderError]:
    """Render every job the way Ollama would, in one harness process.

    Each job is a mapping with:

    - ``template`` (str): the Modelfile TEMPLATE text;
    - ``messages`` (list of ``{"role", "content"}``, optionally ``thinking``,
      ``tool_calls``, ``tool_name``, ``tool_call_id``): the /api/chat messages;
    - ``system`` (str, optional): the Modelfile SYSTEM default, prepended as a
      system message when the first message is not a system message;
    - ``think`` (bool or "low"/"medium"/"high"/"max", optional): sets
      ``.Think``/``.ThinkLevel``/``.IsThinkSet`` as Ollama does; absent = unset;
    - ``prompt``/``suffix`` (optional): both non-empty selects Ollama's FIM mode;
    - ``date`` ("YYYY-MM-DD" or a ``datetime.date``, optional): a *test hook* (Ollama has no
      such input) fixing the day ``currentDate``/``yesterdayDate`` see; absent, they read the
      clock (local time), as Ollama does.

    Returns:
        One entry per job, in order: the rendered string, or an
        :class:`OllamaRenderError` describing that job's parse/execute error.

    ``limits``: the bounds of the harness process (:class:`HarnessLimits`, default
    :data:`DEFAULT_LIMITS`): an untrusted template that passes one raises
    :class:`HarnessLimitError`.

    Raises:
        GoNotFoundError: no Go toolchain to build the harness.
        HarnessLimitError: the process passed a limit (time, memory, output) and was killed.
        HarnessError: the build or the harness process failed as a whole.
        TypeError: a job is malformed.
    """
    payload = [_job_payload(job, i) for i, job in enumerate(jobs)]
    if not payload:
        return []
    binary = harness_binary()
    data = json.dumps(payload, ensure_ascii=True).encode("ascii")
    stdout = run_bounded([str(binary)], data, limits or DEFAULT_LIMITS, what=f"rendering {len(payload)} "
                         "conversations with the Ollama template")
    results = json.loads(stdout.decode("utf-8"))
    if not isinstance(results, list) or len(results) != len(payload):
        raise HarnessError(f"harness returned {len(results)} results for {len(payload)} jobs")
    out: list[str | OllamaRenderError] = []
    for i, item in enumerate(results):
        if "output" in item:
            out.append(item["output"])
        else:
            message = str(item.get("error", "unknown error"))
            if _OUTPUT_LIMIT_MSG in message:
                lim = limits or DEFAULT_LIMITS
                raise HarnessLimitError("output", f"the template wrote more than {lim.max_output_per_render} bytes "
                                        f"for one conversation (job {i}); limit: max_output_per_render")
            out.append(OllamaRenderError(message, i))
    return out


def render_ollama_one(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    system: str | None = None,
) -> str:
    """Render one conversation; raise :class:`OllamaRenderError` if Go reports an error."""
    job: dict[str, Any] = {"template": template, "messages": list(messages)}
    if system is not None:
        job["system"] = system
    (result,) = render_ollama([job])
    if isinstance(result, OllamaRenderError):
        raise OllamaRenderError(result.message)
    return result
