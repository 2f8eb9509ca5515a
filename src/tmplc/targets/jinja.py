"""IR -> HF Jinja chat template (``tokenizer.chat_template``).

The template is written so that its meaning does not depend on whitespace options: every tag
strips the source whitespace around it (``{%- -%}``) and all output comes from ``{{ '...' }}``
string literals and message contents, so ``trim_blocks``/``lstrip_blocks`` (HF) and engines
without them (llama.cpp) render the same bytes.  It uses only if/for/set, ``loop.first``,
``loop.index0``, ``|length``, ``|trim``, ``.lstrip()``/``.rstrip()`` (only for ``|lstrip``/``|rstrip``
formats) and ``raise_exception``: the subset every engine has.

BOS policy (HF convention): a ``{BOS}`` in the spec becomes ``{{ bos_token }}`` in the template,
and ``apply_chat_template`` tokenizes without adding special tokens, so BOS appears exactly where
the spec puts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tmplc.ir import THINK_END, DateToken, Fragment, SpecialToken

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ChatFormat

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def jinja_string(s: str) -> str:
    """A single-quoted Jinja string literal for ``s``."""
    return "'" + "".join(_ESCAPES.get(c, c) for c in s) + "'"


def _out(frag: Fragment) -> str:
    parts = []
    for p in frag:
        if isinstance(p, SpecialToken):
            parts.append("{{- bos_token -}}" if p.name == "BOS" else "{{- eos_token -}}")
        elif isinstance(p, DateToken):
            parts.append("{{- strftime_now(" + jinja_string(p.format) + ") -}}")
        else:
            parts.append("{{- " + jinja_string(p.value) + " -}}")
    return "".join(parts)


def content_expr(expr: str, part) -> str:
    """``expr`` as the Turn/SystemBlock ``part`` renders it (``| trim``, ``.lstrip()``, ``.rstrip()``)."""
    if getattr(part, "drop_think", ""):
        expr = ("(" + expr + ").split(" + jinja_string(THINK_END)
                + (", 1" if part.drop_think == "first" else "") + ")[-1]")
    if not part.trim:
        return expr
    if part.trim_side == "both":
        return expr + " | trim"
    return "(" + expr + ")." + ("lstrip" if part.trim_side == "left" else "rstrip") + "()"


def _content(expr: str, part) -> str:
    return "{{- " + content_expr(expr, part) + " -}}"


def to_jinja(fmt: "ChatFormat", *, generation_tags: bool = True) -> str:
    """Generate the chat template.  ``generation_tags`` wraps the assistant lead, content and
    suffix in ``{% generation %}`` for ``return_assistant_tokens_mask`` (HF; llama.cpp ignores it)."""
    st = fmt.structure
    name = fmt.name.replace("#}", "# }")
    L: list[str] = [f"{{#- tmplc chat template: {name} -#}}"]
    L.append("{%- set has_system = messages | length > 0 and messages[0]['role'] == 'system' -%}")
    sb = st.system
    sys_on = "has_system"
    if sb is not None and sb.skip_empty:  # an empty system message counts as none
        L.append("{%- set system_shown = has_system and messages[0]['content'] != '' -%}")
        sys_on = "system_shown"
    L.append(_out(st.preamble))
    if sb is None:
        L.append("{%- if has_system -%}{{- raise_exception('tmplc: message 0: format "
                 + jinja_string(fmt.name)[1:-1] + " has no system message slot') -}}{%- endif -%}")
        block = ""
    else:
        block = ("{%- if " + sys_on + " -%}" + _out(sb.prefix) + _content("messages[0]['content']", sb)
                 + _out(sb.suffix))
        if sb.default is not None:
            block += ("{%- else -%}" + _out(sb.prefix)
                      + ("{{- " + jinja_string(sb.content(sb.default)) + " -}}")
                      + _out(sb.suffix))
        elif sb.absent is not None:
            block += "{%- else -%}" + _out(sb.absent)
        block += "{%- endif -%}"
        if sb.placement == "standalone":
            L.append(block)
    inline = sb is not None and sb.placement == "first_user"
    first_turn = "((has_system and loop.index0 == 1) or (not has_system and loop.first))"
    L.append("{%- for message in messages -%}")
    L.append("{%- if message['role'] == 'system' -%}"
             "{%- if not loop.first -%}{{- raise_exception('tmplc: message ' ~ loop.index0 ~ "
             "': a system message is only allowed as the first message') -}}{%- endif -%}")
    L.append("{%- elif message['role'] == 'user' -%}" + _out(st.user.prefix))
    if inline:
        L.append("{%- if " + first_turn + " -%}" + block + "{%- endif -%}")
    L.append(_content("message['content']", st.user) + _out(st.user.suffix))
    L.append("{%- elif message['role'] == 'assistant' -%}")
    if inline:
        cond = sys_on if sb.default is None else "true"
        L.append("{%- if " + first_turn + " and " + cond + " -%}{{- raise_exception('tmplc: message ' ~ "
                 "loop.index0 ~ ': this format places the system message inside the first user turn, "
                 "but the first turn after it is an assistant message') -}}{%- endif -%}")
    L.append(_out(st.assistant.prefix))
    a = st.assistant
    ending = _out(a.suffix)
    if a.final_suffix is not None:
        ending = "{%- if loop.last -%}" + _out(a.final_suffix) + "{%- else -%}" + ending + "{%- endif -%}"
    body = _out(a.lead) + _content("message['content']", a) + ending
    if generation_tags:
        body = "{%- generation -%}" + body + "{%- endgeneration -%}"
    L.append(body)
    L.append("{%- else -%}{{- raise_exception('tmplc: message ' ~ loop.index0 ~ ': unknown role \\'' ~ "
             "message['role'] ~ '\\': this format supports system, user and assistant') -}}")
    L.append("{%- endif -%}")
    L.append("{%- endfor -%}")
    if inline:
        L.append("{%- if " + sys_on + " and messages | length == 1 -%}{{- raise_exception('tmplc: message 0: "
                 "this format places the system message inside the first user turn, but the "
                 "conversation has no user message') -}}{%- endif -%}")
    gen = _out(st.assistant.prefix)
    if st.assistant.prompt_only:
        gen += "{{- " + jinja_string(st.assistant.prompt_only) + " -}}"
    L.append("{%- if add_generation_prompt -%}" + gen + "{%- endif -%}")
    return "\n".join(x for x in L if x)
