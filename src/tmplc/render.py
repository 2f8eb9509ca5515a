"""The reference renderer: the single definition of what a format means.

The rules below are coded once, in :func:`walk`, which yields the conversation as a stream of
:class:`Event` (role, part, message index, trainable, and what the piece renders).
:func:`render_segments` turns the events into text; the formatter's compiled plans
(:mod:`tmplc.formatter.plan`) compile the same events into token ids; nothing else restates them.

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
* A system message with content ``""`` (``empty_after_trim``: blank, as the block trims it)
  counts as no system message when the block is ``skip_empty`` (the default, if any, is rendered
  instead; with ``empty_omitted``, nothing is).
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

Tools and reasoning (``docs/tools.md``; transformers' message conventions):

* ``tools`` (beside the messages) and ``role: "tool"`` messages need a format with tool support
  (``Structure.tools``); without it they are a MessageError, never text.  With tools, the system
  block renders even without a system message, holding the tool list (:class:`~tmplc.ir.ToolFormat`),
  or the list goes into the first user turn (``placement="first_user"``: the first message after
  the system message must then be a user message).  A format may limit the calls per answer
  (``max_calls``) and refuse content beside calls (``calls_alone``): MessageErrors.
* An assistant message's ``tool_calls`` render after its content, before its suffix, and train
  with it (parts ``call``: the format's text, ``call_content``: name and arguments).  A tool
  result is context (role ``tool``), as are the tool definitions.
* An assistant message's ``reasoning_content`` (or ``thinking``) is its reasoning: the format's
  reasoning block shows it, and its content is then not split at ``</think>``.  A format whose
  answers render no reasoning refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Literal, Sequence

import json

from tmplc.errors import MessageError
from tmplc.ir import (IDENTITY, DateToken, Fragment, SpecialToken, Text, apply_trim, fragment, message_reasoning,
                      python_def_problem)

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ChatFormat, ContentRule, Structure, ToolFormat

Part = Literal["preamble", "prefix", "lead", "content", "suffix", "generation_prompt", "closing", "call",
               "call_content"]
ROLES = ("system", "user", "assistant")
#: the parts whose text is message data (not template text): special-token text in them is content
DATA_PARTS = ("content", "call_content")


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
    #: an answer's reasoning block (``{THINK}...{/THINK}``: its open, reasoning and close), a
    #: ``content`` segment of its own that a policy may mask (``train_reasoning``)
    reasoning: bool = False


def refused_empty_answer(st: "Structure", m: dict) -> bool:
    """Whether message ``m`` is an empty answer (content "" or None, no tool calls) that the format
    refuses (``Structure.refuses_empty_answers``)."""
    return st.refuses_empty_answers and m.get("role") == "assistant" and not m.get("content") and not m.get("tool_calls")


def _check(messages: Sequence[dict], fmt: "ChatFormat | None" = None, tools=None) -> None:
    if not isinstance(messages, (list, tuple)):
        raise MessageError(None, f"messages must be a list of {{'role', 'content'}} dicts, got {type(messages).__name__}")
    has_tools = fmt is not None and fmt.structure.tools is not None
    name = fmt.name if fmt is not None else "custom"
    if tools is not None:
        check_tools(tools, name, fmt.structure.tools if has_tools else None)
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise MessageError(i, f"a message must be a dict with 'role' and 'content', got {type(m).__name__}")
        role = m.get("role")
        if role == "tool":
            if not has_tools:
                raise MessageError(i, f"unknown role 'tool': format {name!r} has no tool support (use a "
                                   "tool format, e.g. qwen3-tools)")
            if fmt.structure.tools.results_answer_calls and (i == 0 or messages[i - 1].get("role") != "tool"):
                _check_run(messages, i, name)
        elif role not in ROLES:
            raise MessageError(i, f"unknown role {role!r}: this format supports system, user and assistant"
                               + (" and tool" if has_tools else ""))
        content = m.get("content")
        if len(m) == 2 and isinstance(content, str) and (content or role != "assistant"):  # nothing else to check
            if role == "system" and i != 0:
                raise MessageError(i, "a system message is only allowed as the first message")
            continue
        calls = m.get("tool_calls")
        if content is None and role == "assistant" and calls:
            pass  # a tool-call-only answer (transformers' convention): its content is ""
        elif not isinstance(content, str):
            raise MessageError(i, f"content must be a string, got {type(content).__name__} (tmplc formats are text-only)")
        if role == "system" and i != 0:
            raise MessageError(i, "a system message is only allowed as the first message")
        if calls is not None:
            if role != "assistant":
                raise MessageError(i, f"only an assistant message can carry tool_calls (this one is {role!r})")
            if not has_tools:
                raise MessageError(i, f"format {name!r} has no tool support: it cannot render tool_calls "
                                   "(use a tool format, e.g. qwen3-tools)")
            tool_calls(m, i)
        if fmt is not None and refused_empty_answer(fmt.structure, m):
            raise MessageError(i, f"format {name!r} refuses an empty answer (its template raises on one): give the "
                               "answer its text, or leave the message out")
        r = message_reasoning(m)
        if r is not None:
            if role != "assistant":
                raise MessageError(i, f"only an assistant message can carry reasoning (this one is {role!r})")
            if not isinstance(r, str):
                raise MessageError(i, f"reasoning_content must be a string, got {type(r).__name__}")
            if fmt is not None and not fmt.structure.reads_reasoning:
                if fmt.structure.given_reasoning == "refused":
                    raise MessageError(i, f"format {name!r} does not read reasoning_content/thinking (its template "
                                       "splits the reasoning off the content): put the reasoning in the content "
                                       "as <think>...</think>, or drop it")
                raise MessageError(i, f"format {name!r} renders no reasoning: drop the message's "
                                   "reasoning_content/thinking, or use a reasoning format (e.g. qwen3-tools)")


def _check_run(messages: Sequence[dict], i: int, name: str) -> None:
    """A run of results starting at ``i`` answers each call of the answer right before it (``results_answer_calls``)."""
    n = next((k for k in range(i, len(messages)) if not isinstance(messages[k], dict)
              or messages[k].get("role") != "tool"), len(messages)) - i
    before = messages[i - 1] if i else None
    calls = before.get("tool_calls") if isinstance(before, dict) and before.get("role") == "assistant" else None
    k = len(calls) if isinstance(calls, (list, tuple)) else 0
    if n != k:
        raise MessageError(i, f"format {name!r} renders a run of tool results as the answers to the calls of the "
                           f"answer right before it, one result per call (its template closes the run after the "
                           f"last call's result); this run has {n} result{'s' * (n != 1)} for {k} call"
                           f"{'s' * (k != 1)}: give one result per call, right after the answer with the calls")


def check_tools(tools, name: str, tf: "ToolFormat | None") -> None:
    """Validate a ``tools`` list (transformers' ``[{"type": "function", "function": {...}}]``) for
    a format with tool format ``tf`` (None: no tool support).
    An empty list means no tools, as in the real templates (``{% if tools %}``), so a format without
    tool support accepts it (llama.cpp's capability probe renders every template with ``tools=[]``)."""
    if tf is None:
        if isinstance(tools, (list, tuple)) and not tools:
            return
        raise MessageError(None, f"format {name!r} has no tool support: it cannot render tools "
                           "(use a tool format, e.g. qwen3-tools)")
    if not isinstance(tools, (list, tuple)):
        raise MessageError(None, f"tools must be a list of tool definitions, got {type(tools).__name__}")
    if tools and not tf.renders_list:
        raise MessageError(None, f"format {name!r} renders no tool list (its template never reads tools): write "
                           "the tool definitions into the system message as the model expects them")
    for k, t in enumerate(tools):
        if not isinstance(t, dict):
            raise MessageError(None, f"tools[{k}] must be an object "
                               '({"type": "function", "function": {"name", "description", "parameters"}})')
        if tf.tool_object == "function" and not isinstance(t.get("function"), dict):
            raise MessageError(None, f"tools[{k}] has no 'function' object: format {name!r} lists each tool's "
                               'function object ({"type": "function", "function": {"name", "description", '
                               '"parameters"}})')
        try:
            json.dumps(t)
        except (TypeError, ValueError) as e:
            raise MessageError(None, f"tools[{k}] is not JSON-serialisable: {e}") from None
        if tf.tool_layout == "python_def" and (why := python_def_problem(t)) is not None:
            raise MessageError(None, f"tools[{k}]: format {name!r} writes each tool as a Python signature, and {why}")


def tool_calls(message: dict, index: int) -> list[tuple[str, object]]:
    """An assistant message's tool calls as ``(name, arguments)``: each call is
    ``{"type": "function", "function": {"name", "arguments"}}`` or ``{"name", "arguments"}``;
    arguments are an object or a JSON string (rendered as given; it must parse)."""
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, (list, tuple)):
        raise MessageError(index, f"tool_calls must be a list, got {type(calls).__name__}")
    out = []
    for k, c in enumerate(calls):
        f = c.get("function", c) if isinstance(c, dict) else None
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise MessageError(index, f"tool_calls[{k}] must be {{\"type\": \"function\", \"function\": "
                               "{\"name\": str, \"arguments\": object or JSON string}}")
        args = f.get("arguments", {})
        if isinstance(args, str):
            try:
                json.loads(args)
            except ValueError as e:
                raise MessageError(index, f"tool_calls[{k}] ({f['name']!r}): arguments is a string that is "
                                   f"not JSON ({e}); pass an object or a JSON string") from None
        elif isinstance(args, dict):
            try:
                json.dumps(args)
            except (TypeError, ValueError) as e:
                raise MessageError(index, f"tool_calls[{k}] ({f['name']!r}): arguments are not "
                                   f"JSON-serialisable: {e}") from None
        else:
            raise MessageError(index, f"tool_calls[{k}] ({f['name']!r}): arguments must be an object or a "
                               f"JSON string, got {type(args).__name__}")
        out.append((f["name"], args))
    return out


def call_id(message: dict, index: int, k: int) -> str:
    """The id of an answer's ``k``-th tool call (a format that renders call ids needs it)."""
    c = message["tool_calls"][k]
    cid = c.get("id") if isinstance(c, dict) else None
    if not isinstance(cid, str):
        raise MessageError(index, f"tool_calls[{k}] has no id: this format renders each call's id (give "
                           "every call an \"id\" string, and each tool result the same \"tool_call_id\")")
    return cid


def result_id(message: dict, index: int) -> str:
    """A tool result's ``tool_call_id`` (a format that renders it needs it)."""
    rid = message.get("tool_call_id")
    if not isinstance(rid, str):
        raise MessageError(index, "this format renders the id of the call a tool result answers: give the tool "
                           "message a \"tool_call_id\" string (the call's \"id\")")
    return rid


def content_of(message: dict) -> str:
    """A message's content (``""`` for a tool-call-only answer whose content is None)."""
    c = message.get("content")
    return "" if c is None else c


@dataclass(frozen=True)
class Event:
    """One step of the conversation walk: a piece of the rendering, before its text is made.

    Exactly one of ``fragment`` (template text: BOS/EOS/DATE resolved by the consumer), ``text``
    (fixed text: a default system message) or ``rule`` (the content of ``messages[index]``
    through that :class:`~tmplc.ir.ContentRule`) says what the piece renders."""

    role: str | None
    part: Part
    index: int | None
    trainable: bool
    fragment: Fragment | None = None
    text: str | None = None
    rule: "ContentRule | None" = None


def _validate(fmt: "ChatFormat", messages: Sequence[dict], add_generation_prompt: bool,
              continue_final_message: bool, tools=None) -> None:
    _check(messages, fmt, tools)
    if continue_final_message:
        if add_generation_prompt:
            raise MessageError(None, "add_generation_prompt and continue_final_message cannot both be set")
        if not messages or messages[-1]["role"] != "assistant":
            raise MessageError(len(messages) - 1 if messages else None,
                               "continue_final_message needs the last message to be an assistant message")
        if messages[-1].get("tool_calls"):
            raise MessageError(len(messages) - 1, "continue_final_message cannot continue an answer with "
                               "tool_calls (its calls come after its content)")


def decisions(fmt: "ChatFormat", messages: Sequence[dict], add_generation_prompt: bool = False) -> tuple:
    """What the walk decides from message *contents* (everything else it decides from the roles):
    whether a system message counts (``skip_empty``), and which answers are empty (``{EMPTY}``).
    Two conversations with the same roles and decisions walk alike (the formatter's plans are
    keyed by them)."""
    st = fmt.structure
    counts = not (st.system is not None and messages and messages[0]["role"] == "system"
                  and st.system.counts_as_none(messages[0]["content"]))
    a = st.assistant
    finals = st.final_answers(messages, add_generation_prompt)
    decided = (tuple(sorted(finals)),) if st.final_scope == "after_user_reasoning" else ()
    if a.empty is None:
        return (counts, ()) + decided
    empties = tuple(i for i, m in enumerate(messages) if m["role"] == "assistant" and (
        m["content"] if a.empty_raw else a.content(m["content"], final=i in finals)) == "")
    return (counts, empties) + decided


def walk(fmt: "ChatFormat", messages: Sequence[dict], add_generation_prompt: bool = False,
         continue_final_message: bool = False, tools=None) -> Iterator[Event]:
    """The conversation rules (see the module docstring), as a stream of :class:`Event` in
    rendering order.  Raises MessageError for a conversation the format cannot render."""
    st = fmt.structure
    _validate(fmt, messages, add_generation_prompt, continue_final_message, tools)
    counts, empties = decisions(fmt, messages, add_generation_prompt)[:2]
    tf = st.tools if st.tools is not None and st.tools.given(tools) else None
    in_system = tf is not None and tf.placement == "system"  # the tool list goes in the system block
    first_user: int | None = None  # the user message that holds the tool list (placement first_user)
    last_user: int | None = None   # the user message the tool list goes before (placement last_user)
    if tf is not None and tf.placement == "last_user":
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
        if last_user is None:
            raise MessageError(None, f"format {fmt.name!r} puts the tools before the last user message, but the "
                               "conversation has no user message")
        same = next((j for j in range(last_user) if messages[j]["role"] == "user"
                     and content_of(messages[j]) == content_of(messages[last_user])), None)
        if same is not None:  # Mistral's template compares messages by value: the list would go before both
            raise MessageError(same, f"format {fmt.name!r} puts the tools before the last user message, and this "
                               "earlier user message has the same content (its template renders the list before "
                               "each such message): make their contents differ")
    if tf is not None and tf.placement == "first_user":
        first_user = 1 if messages and messages[0]["role"] == "system" else 0
        if first_user >= len(messages):
            raise MessageError(None, f"format {fmt.name!r} puts the tools in the first user message, but the "
                               "conversation has no user message")
        if messages[first_user]["role"] != "user":
            raise MessageError(first_user, f"format {fmt.name!r} puts the tools in the first user message: with "
                               f"tools, the first message after the system message must be a user message, not "
                               f"{messages[first_user]['role']!r}")

    def separated() -> bool:
        """Whether ``system_sep`` renders between the system message and the list."""
        return has_system and in_system and (tf.system_sep_if == "message" or st.system.content(
            sys_text if sys_index is None else messages[sys_index]["content"]) != "")

    def tool_list() -> Iterator[Event]:
        sep = in_system and not tf.list_first and separated()
        yield Event("system", "prefix", None, False, fragment=fragment([tf.system_sep if sep else "", tf.list_prefix]))
        if tf.list_json:
            yield Event("system", "content", None, False, text=tf.json.dumps([tf.listed(t) for t in tools]))
        for k, t in enumerate(() if tf.list_json else tools):
            yield Event("system", "prefix", None, False, fragment=fragment([tf.item_sep if k else "", tf.item_prefix]))
            try:
                text = tf.item_text(t)
            except ValueError as e:  # a schema the layout cannot read (typescript), as its template raises
                raise MessageError(None, f"tools[{k}]: format {fmt.name!r} writes each tool as a TypeScript type, "
                                   f"and {e}") from None
            yield Event("system", "content", None, False, text=text)
            yield Event("system", "prefix", None, False, fragment=fragment([tf.item_suffix]))
        yield Event("system", "prefix", None, False, fragment=fragment([tf.list_suffix]))

    if tf is not None and tf.placement == "start":
        yield from tool_list()
    yield Event(None, "preamble", None, False, fragment=st.preamble)
    start = 0
    sys_text: str | None = None  # a default system message
    sys_index: int | None = None
    has_system = False
    if messages and messages[0]["role"] == "system":
        if st.system is None:
            raise MessageError(0, f"format {fmt.name!r} has no system message slot ({{SYSTEM}} is not in its spec)")
        start = 1
        if counts or (in_system and tf.empty_system_counts):
            sys_index, has_system = 0, True
    if in_system and tf.list_block_suffix is not None and sys_index is None:
        # without a system message, the list in a block of its own; then the format's block (its default)
        # or text without a system message, as without tools (Apriel 1.5)
        yield Event("system", "prefix", None, False, fragment=st.system.prefix)
        yield from tool_list()
        yield Event("system", "prefix", None, False, fragment=tf.list_block_suffix)
        in_system = False
    # an empty system message that renders nothing in place of the block (empty_omitted)
    omitted = start == 1 and not has_system and st.system.empty_omitted
    if st.system is not None and not has_system and not omitted:
        if in_system and tf.default_system is not None:
            sys_text, has_system = tf.default_system, True
        elif st.system.default is not None and not (in_system and not tf.keep_default_system):
            sys_text, has_system = st.system.default, True
        elif (absent := tf.absent if tf is not None and tf.absent is not None else st.system.absent) is not None \
                and not in_system:
            yield Event("system", "prefix", None, False, fragment=absent)

    def system_block() -> Iterator[Event]:
        sb = st.system
        yield Event("system", "prefix", sys_index, False, fragment=sb.prefix if tf is None or tf.system_prefix is None
                    else tf.system_prefix)
        first = in_system and tf.list_first
        if first:
            yield from tool_list()
        if has_system:
            if first and separated():
                yield Event("system", "prefix", None, False, fragment=fragment([tf.system_sep]))
            if sys_index is None:
                yield Event("system", "content", None, False, text=sb.content(sys_text))
            else:
                yield Event("system", "content", sys_index, False, rule=sb.rule)
        if in_system and not first:
            yield from tool_list()
        yield Event("system", "suffix", sys_index, False, fragment=sb.suffix)

    def calls(i: int) -> Iterator[Event]:
        m = messages[i]
        t = st.tools
        # the ids (where the format renders them; not in the last message's calls without last_call_ids)
        ids = t.call_id_prefix is not None and (t.last_call_ids or i != last)
        for k, (name, args) in enumerate(tool_calls(m, i)):
            if k:
                sep = t.call_sep
            elif t.content_sep_if == "content":
                sep = t.content_sep if content_of(m) else ""
            else:
                answer = answer_rule(i, st.assistant.rule).content(content_of(m), st.given(m))
                sep = t.content_sep if answer and not (t.content_sep_if == "unended"
                                                       and answer.endswith(t.content_sep)) else ""
            yield Event("assistant", "call", i, True, fragment=fragment([sep, "" if k else t.calls_open, t.call_prefix]))
            yield Event("assistant", "call_content", i, True, text=name)
            the_id = (Event("assistant", "call", i, True, fragment=fragment([t.call_id_prefix])),
                      Event("assistant", "call_content", i, True, text=call_id(m, i, k))) if ids else ()
            if not t.call_id_after:
                yield from the_id
            if t.call_index_prefix is not None:
                yield Event("assistant", "call", i, True, fragment=fragment([t.call_index_prefix]))
                yield Event("assistant", "call_content", i, True, text=str(k))
            yield Event("assistant", "call", i, True, fragment=fragment([t.call_middle]))
            if t.per_argument:
                if not args:
                    yield Event("assistant", "call", i, True, fragment=fragment([t.no_arguments]))
                for n, (key, middle, value) in enumerate(t.argument_items(args)):
                    yield Event("assistant", "call", i, True, fragment=fragment([t.arg_sep if n else "", t.arg_prefix]))
                    yield Event("assistant", "call_content", i, True, text=key)
                    yield Event("assistant", "call", i, True, fragment=fragment([middle]))
                    yield Event("assistant", "call_content", i, True, text=value)
                    yield Event("assistant", "call", i, True, fragment=fragment([t.arg_suffix]))
            else:
                yield Event("assistant", "call_content", i, True, text=t.arguments(args))
            if ids and t.call_id_after:
                yield from the_id
                yield Event("assistant", "call", i, True, fragment=fragment([t.call_id_suffix]))
            yield Event("assistant", "call", i, True, fragment=fragment(
                [t.call_suffix, t.calls_close if k == len(m["tool_calls"]) - 1 else ""]))

    def check_calls(i: int) -> None:
        t, m = st.tools, messages[i]
        if not t.renders_calls:
            raise MessageError(i, f"format {fmt.name!r} renders no tool_calls (its template never reads them: the "
                               "model writes its calls into the content): give the calls in the content as the "
                               "model emits them")
        n = len(m["tool_calls"])
        if t.per_argument:
            for k, (name, args) in enumerate(tool_calls(m, i)):
                if isinstance(args, str):
                    raise MessageError(i, f"tool_calls[{k}] ({name!r}): format {fmt.name!r} renders a call's "
                                       "arguments key by key and needs them as an object, not a JSON string: "
                                       "give json.loads(arguments)")
        if t.max_calls and n > t.max_calls:
            raise MessageError(i, f"format {fmt.name!r} renders at most {t.max_calls} tool call"
                               f"{'s' if t.max_calls > 1 else ''} per answer (its template refuses more); this "
                               f"answer has {n}: split them into consecutive answers")
        a = st.assistant
        rule = answer_rule(i, a.final if i in finals and a.final is not None else a.rule)
        if t.calls_alone and rule.apply(content_of(m), st.given(m)):
            raise MessageError(i, f"format {fmt.name!r} renders an answer with tool calls without its content "
                               "(its template drops it): give tool-call answers an empty content, or put the "
                               "text in an answer of its own")

    def answer_end(i: int, final: bool) -> Fragment:
        """An answer's suffix: the final answer's own, unless its tool calls end the turn as any
        other answer's (``calls_end_turn``)."""
        a = st.assistant
        own = final and a.final_suffix is not None and not (
            st.tools is not None and st.tools.calls_end_turn and messages[i].get("tool_calls"))
        return a.final_suffix if own else a.suffix

    def answer_rule(i: int, rule: ContentRule) -> ContentRule:
        """The content rule of the answer at ``i`` whose format's rule is ``rule`` (another with
        tool calls, or right after a tool result: ``ToolFormat.answer_rule``)."""
        if st.tools is None:
            return rule
        return st.tools.answer_rule(rule, calls=bool(messages[i].get("tool_calls")),
                                    after_results=i > 0 and messages[i - 1]["role"] == "tool")

    def after_results(i: int, prefix: Fragment, role: str) -> Fragment:
        """A turn's prefix: another where the message before it (``i``: the turn's index) is a tool
        result (or, ``user_after_user``, a user message's after a user message)."""
        other = None if st.tools is None else getattr(st.tools, role + "_prefix_after_results")
        if other is None or i == 0:
            return prefix
        before = ("tool", "user") if role == "user" and st.tools.user_after_user else ("tool",)
        if messages[i - 1]["role"] not in before:
            return prefix
        return fragment([other])

    inline_pending = False
    if has_system or in_system:
        if st.system.placement == "standalone":
            yield from system_block()
        else:
            inline_pending = True
    if tf is not None and tf.placement == "after_system":
        yield from tool_list()

    last = len(messages) - 1
    if add_generation_prompt and messages and messages[-1]["role"] == "assistant" and st.prompt_after_answer == "skip":
        add_generation_prompt = False
    finals = st.final_answers(messages, add_generation_prompt)
    for i in range(start, len(messages)):
        role = messages[i]["role"]
        if role == "user":
            turn = st.user
            if i == last_user:
                yield from tool_list()
            yield Event("user", "prefix", i, False, fragment=after_results(i, turn.prefix, "user"))
            if inline_pending:
                yield from system_block()
                inline_pending = False
            if i == first_user:
                yield from tool_list()
            yield Event("user", "content", i, False, rule=turn.rule)
            yield Event("user", "suffix", i, False, fragment=turn.suffix)
        elif role == "assistant":
            if inline_pending:
                raise MessageError(i, f"format {fmt.name!r} places the system message inside the first "
                                   "user turn, but the first turn after it is an assistant message")
            turn = st.assistant
            final = i in finals
            if i in empties:
                if continue_final_message and i == last:
                    raise MessageError(i, f"format {fmt.name!r} renders an empty answer as a whole turn of its "
                                       "own ({EMPTY}): an empty last answer cannot be continued")
                yield Event("assistant", "prefix", i, False, fragment=turn.empty)  # context: no answer to train
                if messages[i].get("tool_calls"):  # the empty turn's text, then the calls and the turn's end
                    check_calls(i)
                    yield from calls(i)
                    yield Event("assistant", "suffix", i, True, fragment=answer_end(i, final))
                continue
            if messages[i].get("tool_calls"):
                check_calls(i)
            yield Event("assistant", "prefix", i, False, fragment=after_results(i, turn.prefix, "assistant"))
            yield Event("assistant", "lead", i, True, fragment=turn.lead)
            rule = answer_rule(i, turn.final if final and turn.final is not None else turn.rule)
            yield Event("assistant", "content", i, True, rule=rule)
            if messages[i].get("tool_calls"):
                yield from calls(i)
            if not (continue_final_message and i == last):
                yield Event("assistant", "suffix", i, True, fragment=answer_end(i, final))
        elif role == "tool":
            t = st.tools
            first = not t.grouped or i == 0 or messages[i - 1]["role"] != "tool"
            end = not t.grouped or i == last or messages[i + 1]["role"] != "tool"
            yield Event("tool", "prefix", i, False,
                        fragment=fragment([t.results_open if first else t.result_sep, t.result_prefix]))
            if t.result_id_suffix is not None:
                yield Event("tool", "prefix", i, False, text=result_id(messages[i], i))
                yield Event("tool", "prefix", i, False, fragment=fragment([t.result_id_suffix]))
            if t.result_content == "verbatim":
                yield Event("tool", "content", i, False, rule=IDENTITY)
            else:
                yield Event("tool", "content", i, False, text=t.result(content_of(messages[i])))
            yield Event("tool", "suffix", i, False,
                        fragment=fragment([t.result_suffix, t.results_close if end else ""]))
        else:  # system not first: excluded by _check
            raise MessageError(i, "a system message is only allowed as the first message")
    if inline_pending and sys_index is not None:
        raise MessageError(0, f"format {fmt.name!r} places the system message inside the first user "
                           "turn, but the conversation has no user message")
    if add_generation_prompt:
        yield Event("assistant", "generation_prompt", None, False,
                    fragment=after_results(len(messages), st.assistant.prefix, "assistant")
                    + ((Text(st.assistant.prompt_only),) if st.assistant.prompt_only else ()))
    elif st.closing and not continue_final_message:
        if messages and messages[-1]["role"] == "assistant":  # ends the answer: the model writes it
            yield Event("assistant", "suffix", last, True, fragment=st.closing)
        else:
            yield Event(None, "closing", None, False, fragment=st.closing)


def fragment_text(fmt: "ChatFormat", frag: Fragment, bos: str | None, eos: str | None, date=None) -> str:
    """A template fragment's text: ``{BOS}``/``{EOS}`` as the given token strings, ``{DATE=...}`` for
    ``date`` (default: today).  MessageError when a token the fragment uses is not declared."""
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


def render_segments(
    fmt: "ChatFormat",
    messages: Sequence[dict],
    add_generation_prompt: bool = False,
    continue_final_message: bool = False,
    *,
    bos_token: str | None = None,
    eos_token: str | None = None,
    date=None,
    tools=None,
) -> list[Segment]:
    """Render ``messages`` with ``fmt`` into segments: the text of every :func:`walk` event (empty
    pieces left out); ``tools``: the tool definitions (formats with tool support)."""
    bos = bos_token if bos_token is not None else fmt.meta.bos_token
    eos = eos_token if eos_token is not None else fmt.meta.eos_token
    segs: list[Segment] = []
    for e in walk(fmt, messages, add_generation_prompt, continue_final_message, tools):
        if e.fragment is not None:
            if not e.fragment:
                continue
            t = fragment_text(fmt, e.fragment, bos, eos, date)
        elif e.rule is not None:
            m = messages[e.index]
            text, given = (m["content"], None) if len(m) == 2 else (content_of(m), fmt.structure.given(m))
            rule = e.rule
            if rule.think is not None:
                seen = apply_trim(text, rule.trim, rule.trim_side) if rule.trim_first else text
                block = rule.think.render(seen, given)
                if block:
                    segs.append(Segment(block, e.role, e.part, e.index, e.trainable, reasoning=True))
                t = rule.content(text, given)
            else:
                t = rule.apply(text, given)
        else:
            t = e.text
        if t:
            segs.append(Segment(t, e.role, e.part, e.index, e.trainable))
    return segs
