"""Render untrusted chat templates with limits on time, memory and output size.

Templates from model repositories are untrusted code.  They are rendered only in a subclass of
jinja2's ``ImmutableSandboxedEnvironment`` configured like transformers' (``trim_blocks``,
``lstrip_blocks``, ``loopcontrols``, ``raise_exception``, ``tojson``, a *fixed* ``strftime_now``,
the ``{% generation %}`` tag; see :mod:`tmplc.jinja_env`), which additionally:

* refuses ``*``/``**``/``+`` results larger than the output cap (``'x' * 10**9``, ``9**9**9``);
* stops a render whose output passes ``max_output`` characters.

On POSIX every batch of renders runs in a forked child process with a wall-clock limit
(``timeout`` seconds, the child is killed after it), an address-space limit
(``max_memory`` bytes above what the process already maps) and a CPU-time limit, so an endless
loop or a memory bomb ends in :class:`SandboxError` and never stalls the caller.  (jinja2's
sandbox already caps ``range()`` at 100 000 items and blocks ``_``-attributes such as
``''.__class__``.)  Elsewhere the batch runs in-process with the operator and output limits only.
"""

from __future__ import annotations

import datetime as _dt
import operator
import os
import pickle
import select
import signal
import time
from dataclasses import dataclass
from typing import Any, Sequence

from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tmplc.convert.errors import SandboxError
from tmplc.jinja_env import GenerationTag, TemplateRaised, make_env

MAX_TEMPLATE_CHARS = 1_000_000


@dataclass(frozen=True)
class Limits:
    """Sandbox limits for one batch of renders."""

    timeout: float = 20.0          # wall-clock seconds per batch
    max_output: int = 1_000_000    # characters per render
    max_memory: int = 1 << 30      # bytes of extra address space in the child


DEFAULT_LIMITS = Limits()


class OutputLimit(SecurityError):
    """A render (or one operation in it) produced more than the output cap."""


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment that caps the size of ``*``, ``**`` and ``+`` results."""

    intercepted_binops = frozenset(["*", "**", "+"])

    def __init__(self, *args: Any, max_output: int = DEFAULT_LIMITS.max_output, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.max_output = max_output

    def call_binop(self, context, op: str, left: Any, right: Any) -> Any:  # noqa: D102
        cap = self.max_output
        if op == "**":
            if isinstance(right, int) and isinstance(left, (int, float)) and abs(right) > 64 \
                    and abs(left) not in (0, 1):
                raise OutputLimit(f"sandbox: refusing {left!r} ** {right!r} (exponent too large)")
            return operator.pow(left, right)
        if op == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > cap:
                    raise OutputLimit(f"sandbox: refusing a {type(seq).__name__} of {len(seq) * n} "
                                      f"items from '*' (limit {cap})")
            return operator.mul(left, right)
        if op == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)) \
                    and len(left) + len(right) > cap:
                raise OutputLimit(f"sandbox: refusing a result of {len(left) + len(right)} items from '+' "
                                  f"(limit {cap})")
            return operator.add(left, right)
        return super().call_binop(context, op, left, right)


def make_limited_env(today: _dt.date = _dt.date(2026, 1, 1), max_output: int = DEFAULT_LIMITS.max_output
                     ) -> LimitedSandbox:
    """The HF-like sandbox of :func:`tmplc.jinja_env.make_env`, with the operator caps."""
    base = make_env(today)
    env = LimitedSandbox(trim_blocks=True, lstrip_blocks=True,
                         extensions=[GenerationTag, "jinja2.ext.loopcontrols"], max_output=max_output)
    env.filters.update(base.filters)
    env.globals.update(base.globals)
    return env


# A job is a dict: messages, add_generation_prompt, and any other template variables
# (bos_token, eos_token, tools, ...), plus the optional key "__today__" (a datetime.date).
# A result is ("ok", text) or (kind, message) with kind in
#   raise (raise_exception), security (unsafe operation / limit), error (other template error),
#   memory (MemoryError / address-space limit).


def _render_one(template, job: dict, max_output: int) -> tuple[str, str]:
    ctx = {k: v for k, v in job.items() if k != "__today__"}
    try:
        out: list[str] = []
        n = 0
        for chunk in template.generate(**ctx):
            n += len(chunk)
            if n > max_output:
                raise OutputLimit(f"sandbox: the render passed the output limit of {max_output} characters")
            out.append(chunk)
        return ("ok", "".join(out))
    except TemplateRaised as e:
        return ("raise", str(e))
    except SecurityError as e:
        return ("security", str(e))
    except MemoryError:
        return ("memory", "sandbox: the template exceeded the memory limit")
    except RecursionError:
        return ("security", "sandbox: the template recursed too deeply")
    except (TemplateError, Exception) as e:  # noqa: BLE001 - untrusted code: any error is a result
        return ("error", f"{type(e).__name__}: {e}")


def _render_batch(template_src: str, jobs: Sequence[dict], max_output: int) -> list[tuple[str, str]]:
    templates: dict = {}
    results = []
    for job in jobs:
        today = job.get("__today__", _dt.date(2026, 1, 1))
        if today not in templates:
            env = make_limited_env(today, max_output)
            templates[today] = env.from_string(template_src)
        results.append(_render_one(templates[today], job, max_output))
    return results


def check_syntax(template_src: str) -> None:
    """Parse the template (no execution); raise ConversionRefused on a syntax error."""
    from tmplc.convert.errors import ConversionRefused

    if not isinstance(template_src, str):
        raise ConversionRefused(f"the template must be a string, got {type(template_src).__name__}", "syntax")
    if len(template_src) > MAX_TEMPLATE_CHARS:
        raise SandboxError(f"sandbox: the template is {len(template_src)} characters long "
                           f"(limit {MAX_TEMPLATE_CHARS})")
    try:
        make_limited_env().from_string(template_src)  # parse + compile; nothing of the template runs
    except TemplateSyntaxError as e:
        raise ConversionRefused(f"the template does not parse: line {e.lineno}: {e.message}", "syntax") from None
    except TemplateError as e:  # e.g. TemplateAssertionError: an unknown filter or test
        raise ConversionRefused(f"the template does not compile: {e}", "syntax") from None
    except (RecursionError, MemoryError):
        from tmplc.convert.errors import TemplateTooDeep

        raise TemplateTooDeep("the template is nested too deeply to parse (thousands of nested parentheses, "
                              "blocks or lists); chat templates nest a few levels") from None


def _child_limits(limits: Limits) -> None:
    try:
        import resource

        try:
            with open("/proc/self/statm") as fh:
                vm = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (vm + limits.max_memory, vm + limits.max_memory))
        except (OSError, ValueError):
            pass
        cpu = int(limits.timeout) + 2
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        except (OSError, ValueError):
            pass
    except ImportError:  # pragma: no cover
        pass


def render_batch(template_src: str, jobs: Sequence[dict], limits: Limits = DEFAULT_LIMITS
                 ) -> list[tuple[str, str]]:
    """Render every job with the untrusted template, under the limits (see the module docstring).

    Raises SandboxError when the batch as a whole runs out of time or dies (memory); per-job
    errors (a raise_exception, an unsafe attribute, the output cap) come back as results.
    """
    check_syntax(template_src)
    if not hasattr(os, "fork") or os.environ.get("TMPLC_SANDBOX_INPROCESS"):
        return _render_batch(template_src, jobs, limits.max_output)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(rfd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _child_limits(limits)
            try:
                res = _render_batch(template_src, jobs, limits.max_output)
                payload = pickle.dumps(("ok", res), protocol=pickle.HIGHEST_PROTOCOL)
            except MemoryError:
                payload = pickle.dumps(("memory", None))
            except BaseException as e:  # noqa: BLE001
                payload = pickle.dumps(("crash", f"{type(e).__name__}: {e}"))
            view = memoryview(payload)
            while view:
                k = os.write(wfd, view)
                view = view[k:]
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + limits.timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([rfd], [], [], left)
            if not ready:
                continue
            data = os.read(rfd, 1 << 20)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(rfd)
        if timed_out:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
    if timed_out:
        raise SandboxError(f"sandbox: the template ran longer than the time limit ({limits.timeout:g} s) "
                           f"while rendering {len(jobs)} conversations (an endless or huge loop?)")
    blob = b"".join(chunks)
    if not blob:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        what = {signal.SIGXCPU: "the CPU-time limit", signal.SIGKILL: "a limit (killed)"}.get(sig, "")
        raise SandboxError("sandbox: the render process died"
                           + (f" on {what}" if what else f" (status {status})")
                           + " — the template exceeded a limit")
    kind, res = pickle.loads(blob)
    if kind == "memory":
        raise SandboxError("sandbox: the template exceeded the memory limit")
    if kind == "crash":
        raise SandboxError(f"sandbox: the render failed: {res}")
    return res


__all__ = ["Limits", "DEFAULT_LIMITS", "LimitedSandbox", "make_limited_env", "render_batch",
           "check_syntax", "OutputLimit"]
