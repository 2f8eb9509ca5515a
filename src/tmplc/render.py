"""The reference renderer: the single definition of what a format means.

Conversation rules (every target reproduces them, or refuses at compile time):

* ``{DATE=...}`` renders ``date`` (default: today) with its strftime format.
* Roles are ``system``, ``user`` and ``assistant``; any other role is a MessageError naming the
  message index.  Content must be a string.
* A system message is allowed only as message 0.  A format without a system block refuses one.
* Consecutive messages of the same role are rendered as separate turns, each with its own
  prefix and suffix (as HF templates do).  (Ollama merges them first; its target documents that.)
* A conversation may start with an assistant message, except when the system block sits inside
  the first user turn and there is a system message (or default) to place.
* ``add_generation_prompt`` appends the assistant prefix (not the lead: the model writes it),
  then the assistant's ``prompt_only`` text.  After a last *assistant* message it follows that
  answer rendered as the final one (``prompt_after_answer == "final"``), or as an earlier one
  (``"history"``: no final rule or ending), or it does nothing (``"skip"``: as without it).
* A system message with content ``""`` counts as no system message when the block is
  ``skip_empty`` (the default, if any, is rendered instead).
* A *final* answer (the last message when it is an assistant one; by ``final_scope``: the last
  assistant message, or every answer after the last user message) ends with the assistant
  ``final_suffix`` when the format has one, and renders its content with the assistant ``final``
  rule when there is one (its reasoning block, if any, is part of the content: the model writes it).
* Without a system message, a standalone block with ``absent`` text renders that text instead.
  ``continue_final_message`` requires the last message to be an assistant one and leaves out
  its suffix; the two are exclusive.
* An empty answer of a format with an assistant ``empty`` turn renders that text instead of its
  prefix, lead, content and suffix (as context); it cannot be continued.
* Without ``add_generation_prompt`` (and without ``continue_final_message``) the ``closing`` text
  ends the conversation; after a final answer it is part of that answer's suffix (trained).
* Trainable (the default masking policy): the assistant lead, content and suffix (so the
  end-of-turn token trains).  Everything else is context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

from tmplc.errors import MessageError
from tmplc.ir import DateToken, Fragment, SpecialToken

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ChatFormat

Part = Literal["preamble", "prefix", "lead", "content", "suffix", "generation_prompt", "closing"]
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Segment:
    """One piece of a rendered conversation.

    ``role`` is None for the preamble; ``message_index`` is the index in the input messages
    (None for the preamble, a default system message and the generation prompt).
    """

    text: str
    role: str | None
    part: Part
    message_index: int | None
    trainable: bool


def _check(messages: Sequence[dict]) -> None:
    if not isinstance(messages, (list, tuple)):
        raise MessageError(None, f"messages must be a list of {{'role', 'content'}} dicts, got {type(messages).__name__}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise MessageError(i, f"a message must be a dict with 'role' and 'content', got {type(m).__name__}")
        role = m.get("role")
        if role not in ROLES:
            raise MessageError(i, f"unknown role {role!r}: this format supports system, user and assistant")
        content = m.get("content")
        if not isinstance(content, str):
            raise MessageError(i, f"content must be a string, got {type(content).__name__} (tmplc formats are text-only)")
        if role == "system" and i != 0:
            raise MessageError(i, "a system message is only allowed as the first message")


def render_segments(
    fmt: "ChatFormat",
    messages: Sequence[dict],
    add_generation_prompt: bool = False,
    continue_final_message: bool = False,
    *,
    bos_token: str | None = None,
    eos_token: str | None = None,
    date=None,
) -> list[Segment]:
    """Render ``messages`` with ``fmt`` into segments (see the module docstring for the rules)."""
    st = fmt.structure
    _check(messages)
    if continue_final_message:
        if add_generation_prompt:
            raise MessageError(None, "add_generation_prompt and continue_final_message cannot both be set")
        if not messages or messages[-1]["role"] != "assistant":
            raise MessageError(len(messages) - 1 if messages else None,
                               "continue_final_message needs the last message to be an assistant message")
    bos = bos_token if bos_token is not None else fmt.meta.bos_token
    eos = eos_token if eos_token is not None else fmt.meta.eos_token

    def text(frag: Fragment) -> str:
        out = []
        for p in frag:
            if isinstance(p, DateToken):
                out.append(p.render(date))
            elif isinstance(p, SpecialToken):
                tok = bos if p.name == "BOS" else eos
                if tok is None:
                    raise MessageError(None, f"format {fmt.name!r} uses {{{p.name}}} but no "
                                       f"{p.name.lower()}_token is declared; pass {p.name.lower()}_token=")
                out.append(tok)
            else:
                out.append(p.value)
        return "".join(out)

    segs: list[Segment] = []

    def emit(t: str, role, part, idx, trainable=False):
        if t:
            segs.append(Segment(t, role, part, idx, trainable))

    emit(text(st.preamble), None, "preamble", None)
    start = 0
    sys_content: str | None = None
    sys_index: int | None = None
    no_message = st.system is not None
    if messages and messages[0]["role"] == "system":
        if st.system is None:
            raise MessageError(0, f"format {fmt.name!r} has no system message slot ({{SYSTEM}} is not in its spec)")
        start = 1
        if not (st.system.skip_empty and messages[0]["content"] == ""):
            sys_content, sys_index, no_message = messages[0]["content"], 0, False
    if no_message:
        if st.system.default is not None:
            sys_content = st.system.default
        elif st.system.absent is not None:
            emit(text(st.system.absent), "system", "prefix", None)

    def emit_system():
        sb = st.system
        content = sb.content(sys_content)
        emit(text(sb.prefix), "system", "prefix", sys_index)
        emit(content, "system", "content", sys_index)
        emit(text(sb.suffix), "system", "suffix", sys_index)

    inline_pending = False
    if sys_content is not None:
        if st.system.placement == "standalone":
            emit_system()
        else:
            inline_pending = True

    last = len(messages) - 1
    if add_generation_prompt and messages and messages[-1]["role"] == "assistant" and st.prompt_after_answer == "skip":
        add_generation_prompt = False
    finals = st.final_answers(messages, add_generation_prompt)
    for i in range(start, len(messages)):
        m = messages[i]
        if m["role"] == "user":
            turn = st.user
            emit(text(turn.prefix), "user", "prefix", i)
            if inline_pending:
                emit_system()
                inline_pending = False
            emit(turn.content(m["content"]), "user", "content", i)
            emit(text(turn.suffix), "user", "suffix", i)
        elif m["role"] == "assistant":
            if inline_pending:
                raise MessageError(i, f"format {fmt.name!r} places the system message inside the first "
                                   "user turn, but the first turn after it is an assistant message")
            turn = st.assistant
            body = turn.content(m["content"], final=i in finals)
            if turn.empty is not None and (m["content"] if turn.empty_raw else body) == "":
                if continue_final_message and i == last:
                    raise MessageError(i, f"format {fmt.name!r} renders an empty answer as a whole turn of its "
                                       "own ({EMPTY}): an empty last answer cannot be continued")
                emit(text(turn.empty), "assistant", "prefix", i)  # context: there is no answer to train
                continue
            emit(text(turn.prefix), "assistant", "prefix", i)
            emit(text(turn.lead), "assistant", "lead", i, True)
            emit(body, "assistant", "content", i, True)
            if not (continue_final_message and i == last):
                final = i in finals and turn.final_suffix is not None
                emit(text(turn.final_suffix if final else turn.suffix), "assistant", "suffix", i, True)
        else:  # system not first: excluded by _check
            raise MessageError(i, "a system message is only allowed as the first message")
    if inline_pending and sys_index is not None:
        raise MessageError(0, f"format {fmt.name!r} places the system message inside the first user "
                           "turn, but the conversation has no user message")
    if add_generation_prompt:
        emit(text(st.assistant.prefix) + st.assistant.prompt_only, "assistant", "generation_prompt", None)
    elif st.closing and not continue_final_message:
        if messages and messages[-1]["role"] == "assistant":  # ends the answer: the model writes it
            emit(text(st.closing), "assistant", "suffix", last, True)
        else:
            emit(text(st.closing), None, "closing", None)
    return segs
