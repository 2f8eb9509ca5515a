"""A sandboxed jinja2 environment that renders chat templates the way transformers does.

ImmutableSandboxedEnvironment with ``trim_blocks`` and ``lstrip_blocks``, the globals
``raise_exception``, ``strftime_now`` (fixed to a given date: output never depends on the clock)
and the ``tojson`` filter, plus the ``{% generation %}`` tag (rendered transparently).
Untrusted templates (from model repositories) are rendered only here.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTag(Extension):
    """``{% generation %}...{% endgeneration %}``: renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


class TemplateRaised(TemplateError):
    """The template called ``raise_exception(message)``."""


def _raise(message: Any) -> None:
    raise TemplateRaised(str(message))


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators=None, sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def make_env(today: _dt.date = _dt.date(2026, 1, 1)) -> ImmutableSandboxedEnvironment:
    """A fresh HF-compatible sandboxed environment (``strftime_now`` formats ``today``: a date at
    midnight, or a datetime as it is — the converter probes the time of day with one)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, "jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    now = today if isinstance(today, _dt.datetime) else _dt.datetime.combine(today, _dt.time())
    env.globals["strftime_now"] = lambda fmt: now.strftime(fmt)
    return env


_ENV: ImmutableSandboxedEnvironment | None = None
#: compiled templates by source (a generated template compiles in ~0.1 s: render many conversations
#: with one compile); bounded, cleared when full
_COMPILED: dict[str, Any] = {}
_COMPILED_MAX = 64


def _compiled(template: str):
    global _ENV
    t = _COMPILED.get(template)
    if t is None:
        if _ENV is None:
            _ENV = make_env()
        t = _ENV.from_string(template)
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        _COMPILED[template] = t
    return t


def render_template(template: str, messages: list[dict], *, add_generation_prompt: bool = False,
                    bos_token: str | None = None, eos_token: str | None = None,
                    today: _dt.date | None = None, **extra: Any) -> str:
    """Render a chat template in the sandbox with HF's variables (``strftime_now``: ``today``,
    default the real date, as HF).  The compiled template is cached by its source; the date is a
    variable of each render, so a cached template never sees another call's day."""
    day = today or _dt.date.today()
    now = day if isinstance(day, _dt.datetime) else _dt.datetime.combine(day, _dt.time())
    ctx: dict[str, Any] = {"messages": messages, "add_generation_prompt": add_generation_prompt,
                           "strftime_now": lambda fmt: now.strftime(fmt)}
    if bos_token is not None:
        ctx["bos_token"] = bos_token
    if eos_token is not None:
        ctx["eos_token"] = eos_token
    ctx.update(extra)
    return _compiled(template).render(**ctx)
