"""The engines' conventions, coded once: what each engine does to a conversation around the template.

A target is exact when its engine's rendering of ``messages`` equals the reference rendering of
``messages`` *under the engine's conventions*.  Those conventions live here, and the targets' own
checks, the CLI and the tests all read them:

* Ollama (:func:`ollama_merge`, :func:`ollama_prompt_mode`, :func:`expected_ollama`): consecutive same-role messages are merged
  with ``"\\n\\n"`` before the template runs; there is no ``add_generation_prompt``: a conversation
  that ends with an assistant message is continued (its end-of-turn left out), any other gets the
  generation prompt; the runtime adds BOS, so a leading BOS is never in the rendered text.
* llama.cpp (:func:`llamacpp_merge_system`, :func:`expected_llamacpp`): llama-server merges a leading
  system message into the next one (``system + "\\n" + content``) when the template has no system
  slot; with the GGUF's ``add_bos_token`` it strips a leading BOS text from the render (the
  tokenizer adds the token).
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ChatFormat

#: What Ollama joins consecutive same-role messages with.
OLLAMA_MERGE_SEPARATOR = "\n\n"
#: What llama-server joins a leading system message and the next message with (no system slot).
LLAMACPP_SYSTEM_SEPARATOR = "\n"


def ollama_merge(messages: Sequence[dict]) -> list[dict]:
    """Ollama's collate: consecutive same-role messages joined with ``"\\n\\n"``."""
    out: list[dict] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"]:
            out[-1] = {"role": m["role"], "content": out[-1]["content"] + OLLAMA_MERGE_SEPARATOR + m["content"]}
        else:
            out.append(dict(m))
    return out


def ollama_prompt_mode(messages: Sequence[dict]) -> dict:
    """Ollama's stand-in for ``add_generation_prompt``, as reference keywords: a (merged)
    conversation ending with an assistant message is continued, any other gets the prompt."""
    return {"continue_final_message": True} if messages and messages[-1]["role"] == "assistant" \
        else {"add_generation_prompt": True}


def strip_leading_bos(text: str, bos: str | None) -> str:
    """``text`` without a leading ``bos`` (what a runtime that adds the BOS token itself does)."""
    return text[len(bos):] if bos and text.startswith(bos) else text


def expected_ollama(fmt: "ChatFormat", messages: Sequence[dict], *, date: "_dt.date | None" = None,
                    bos_token: str | None = None, eos_token: str | None = None) -> str:
    """What Ollama's prompt text is meant to be for ``messages`` (reference + Ollama's conventions).

    Raises MessageError where the reference refuses the (merged) conversation."""
    m = ollama_merge(messages)
    bos = bos_token if bos_token is not None else fmt.meta.bos_token
    text = fmt.render(m, bos_token=bos, eos_token=eos_token, date=date, **ollama_prompt_mode(m))
    return strip_leading_bos(text, bos) if fmt.structure.uses("BOS") else text


def llamacpp_merge_system(messages: Sequence[dict]) -> list[dict]:
    """llama-server's ``system_message_not_supported`` workaround."""
    msgs = [dict(m) for m in messages]
    if msgs and msgs[0]["role"] == "system":
        if len(msgs) > 1:
            msgs[1]["content"] = msgs[0]["content"] + LLAMACPP_SYSTEM_SEPARATOR + msgs[1]["content"]
        msgs.pop(0)
    return msgs


def expected_llamacpp(fmt: "ChatFormat", messages: Sequence[dict], add_generation_prompt: bool,
                      add_bos_token: bool, date: "_dt.date | None" = None, *,
                      bos_token: str | None = None, eos_token: str | None = None,
                      tools: Sequence[dict] | None = None) -> str:
    """What llama-server's prompt text is meant to be for ``messages`` (reference + llama.cpp
    conventions) on ``date`` (default: today).

    Raises MessageError where the reference refuses the (merged) conversation.
    """
    msgs = list(messages)
    if fmt.structure.system is None:
        msgs = llamacpp_merge_system(msgs)
    bos = bos_token if bos_token is not None else fmt.meta.bos_token
    text = fmt.render(msgs, add_generation_prompt=add_generation_prompt, date=date,
                      bos_token=bos_token, eos_token=eos_token, tools=tools)
    return strip_leading_bos(text, bos) if add_bos_token else text
