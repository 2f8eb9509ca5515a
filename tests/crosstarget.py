"""``validate_all``: one row shows a format's output, or its refusal, in every target (sqlglot's
``validate_all(sql, write={dialect: expected or UnsupportedError})``), each rendered by its REAL
engine under the conventions of :mod:`tmplc.targets.conventions`.

    validate_all("chatml", [user("Hi"), assistant("Hello")],
                 reference="<|im_start|>user\\nHi<|im_end|>\\n...",
                 jinja=SAME, ollama="...", llamacpp=Refused("..."))

Targets (a keyword each; leave one out to not check it):

* ``reference``: ``fmt.render(messages, add_generation_prompt=gen)``;
* ``jinja``: the HF template in jinja2's sandbox with HF's settings;
* ``ollama``: the Modelfile TEMPLATE (``to_ollama``, strict) in the Go harness; Ollama has no
  generation-prompt flag: the text is what Ollama prompts with for ``messages``;
* ``ollama_untrimmed``: the same with ``allow_untrimmed=True`` (the CLI's default);
* ``llamacpp``: the GGUF template in llama.cpp's C++ engine, as llama-server with the target's
  ``add_bos_token``.

An expected value is the text, :data:`SAME` (the reference's text, under the target's conventions
it must equal), or :class:`Refused` (a regex the target's :class:`tmplc.errors.TargetError` must
match; any other error fails).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

import tmplc
from tmplc.errors import TargetError

SAME = object()


@dataclass(frozen=True)
class Refused:
    """The target must refuse, with a reason matching ``pattern``."""

    pattern: str = ""


def user(t: str) -> dict:
    return {"role": "user", "content": t}


def assistant(t: str) -> dict:
    return {"role": "assistant", "content": t}


def system(t: str) -> dict:
    return {"role": "system", "content": t}


def _outcome(make, render):
    """``render(make())``, or the TargetError ``make`` raised."""
    try:
        compiled = make()
    except TargetError as e:
        return e
    return render(compiled)


def _check(target: str, want: Any, got: Any, same: Any) -> None:
    if isinstance(want, Refused):
        assert isinstance(got, TargetError), f"{target}: expected a refusal, got {got!r}"
        assert re.search(want.pattern, got.reason), f"{target}: refusal {got.reason!r} !~ {want.pattern!r}"
        assert got.target == target.split("_")[0], (target, got.target)
        return
    assert not isinstance(got, Exception), f"{target}: refused: {got}"
    assert got == (same if want is SAME else want), f"{target}: {got!r}"


def validate_all(spec: Any, messages: list[dict], *, gen: bool = False, reference: str | None = None,
                 jinja: Any = None, ollama: Any = None, ollama_untrimmed: Any = None,
                 llamacpp: Any = None) -> None:
    """Assert one row: ``spec`` (a ChatFormat or what ``tmplc.load`` reads) on ``messages``."""
    from tmplc.engines.llamacpp import LlamaCppRenderError, render_llamacpp
    from tmplc.engines.ollama import OllamaRenderError, render_ollama
    from tmplc.jinja_env import render_template
    from tmplc.targets.conventions import expected_llamacpp, expected_ollama
    from tmplc.targets.ollama import modelfile_fields

    fmt = spec if isinstance(spec, tmplc.ChatFormat) else tmplc.load(spec)
    bos, eos = fmt.meta.bos_token, fmt.meta.eos_token
    ref = fmt.render(messages, add_generation_prompt=gen)
    if reference is not None:
        assert ref == reference, f"reference: {ref!r}"
    if jinja is not None:
        got = render_template(fmt.to_jinja(), messages, add_generation_prompt=gen, bos_token=bos, eos_token=eos)
        _check("jinja", jinja, got, ref)
    for key, want, allow in (("ollama", ollama, False), ("ollama_untrimmed", ollama_untrimmed, True)):
        if want is None:
            continue

        def run_ollama(mf: str) -> Any:
            f = modelfile_fields(mf)
            job = {"template": f["template"], "messages": messages, **({"system": f["system"]} if f["system"] else {})}
            (out,) = render_ollama([job])
            if isinstance(out, OllamaRenderError):
                pytest.fail(f"{key}: the Go harness failed: {out}")
            return out

        got = _outcome(lambda: fmt.to_ollama(allow_untrimmed=allow), run_ollama)
        same = None if isinstance(want, Refused) or want is not SAME else expected_ollama(fmt, messages)
        _check(key, want, got, same)
    if llamacpp is not None:
        def run_llamacpp(target: Any) -> Any:
            (out,) = render_llamacpp([{"template": target.chat_template, "messages": messages, "bos_token": bos or "",
                                       "eos_token": eos or "", "add_generation_prompt": gen,
                                       "add_bos": target.add_bos_token}])
            if isinstance(out, LlamaCppRenderError):
                pytest.fail(f"llamacpp: the engine failed: {out}")
            return out

        got = _outcome(fmt.to_llamacpp, run_llamacpp)
        same = None
        if llamacpp is SAME:
            same = expected_llamacpp(fmt, messages, gen, fmt.to_llamacpp().add_bos_token)
        _check("llamacpp", llamacpp, got, same)
