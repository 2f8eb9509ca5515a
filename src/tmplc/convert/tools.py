"""The tool part of an HF chat template -> ``Structure.tools`` (:class:`~tmplc.ir.ToolFormat`), or a
refusal with the reason (the text-only format is kept either way).

After :func:`tmplc.convert.jinja.from_jinja` has recovered and verified the text format, a template
that *uses tools* (its source reads ``tools`` or ``tool_calls``, or tests for role ``tool``) is
rendered — only in the sandbox — with marker tools (1 and 2), marker tool calls (1 and 2 calls,
arguments as an object and as a JSON string, with and without content) and marker tool results
(1 and 2 consecutive).  Each probe is compared with what the text format renders for the same
conversation without the tool part; the extra text is located by its markers, and the
``ToolFormat`` fields are read off it:

* the tool list: the text added after the system message's content (``system_sep + list_prefix
  + item_prefix + json(tool) + item_suffix + list_suffix``; two tools give ``item_suffix +
  item_prefix``; a conversation without a system message splits ``system_sep`` from
  ``list_prefix``); the JSON style is the :data:`JSON_STYLES` candidate whose ``json.dumps`` of the
  marker tool (or of its ``function`` object alone: ``tool_object``) appears verbatim
  (transformers' ``tojson`` first); or the text added before the
  first user message's content (``placement="first_user"``, Llama 3.x's ``tools_in_user_message``),
  with a system header that changes with tools (``system_prefix``) and ``tools=[]`` still rendering
  the list (``empty_list``);
* a call: the text added between the answer's content and its suffix (``content_sep +
  call_prefix + name + call_middle + arguments + call_suffix``; an empty content gives
  ``content_sep``, two calls ``call_sep``, string arguments ``string_arguments``); arguments in
  another JSON style than the tool list give ``call_json``; a template that drops the content
  beside calls gives ``calls_alone``, one that raises on two calls ``max_calls = 1``;
* a result: the text around a tool message's content (one result: ``results_open +
  result_prefix`` / ``result_suffix + results_close``; two consecutive ones split them and give
  ``grouped``); a content written as a JSON string literal gives ``result_content = "json"``, one
  whose surrounding whitespace is dropped ``"trim"``.

Where the extra text is elsewhere (before the last user message as Mistral's
``[AVAILABLE_TOOLS]``, a turn of its own), or is not the IR's layout (tools written field by field,
as Python's ``str(dict)``, joined by a separator), or a
system header that changes with tools holds a date that cannot be placed as the header's own
``{DATE=...}`` pieces, the tool part is refused with that reason.  Nothing is accepted
unverified: the recovered format (with the answer scope ``final_scope`` among the IR's, tried in
order) must render exactly like the template on every tool verification conversation
(:func:`tool_verification_cases`: fixed agent conversations and seeded random ones: tool lists,
calls with object and string arguments, consecutive results, ``reasoning_content`` when the
format renders reasoning, with and without a system message and the generation prompt; within
``max_calls`` and ``calls_alone``, where the template raises or drops content and the format
refuses), and a changed ``final_scope`` is verified on the text conversations again.

Conventions: calls are given in transformers' shape (``{"type": "function", "function": {"name",
"arguments"}}``); tool messages carry ``content`` only; ``documents=None``.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass, replace
from typing import Any

from tmplc.convert.common import SENT, NASTY, _show, diagnose, _random_text, fragment_cuts, refused_alike
from tmplc.convert.dates import DATE_1, DATE_2
from tmplc.convert.errors import ConversionRefused
from tmplc.convert.sandbox import Limits, render_batch
from tmplc.errors import MessageError
from tmplc.ir import (CONTENT_SEP_IFS, FINAL_SCOPES, SYSTEM_SEP_IFS, ChatFormat, DateToken, Fragment, JsonStyle,
                      Text, ToolFormat, fragment, python_def_tool, split_between_items, split_calls, split_per_argument,
                      typescript_tool, xml_tool)
from tmplc.render import decisions, fragment_text

#: the tool status of a conversion (:attr:`tmplc.convert.jinja.JinjaConversion.tools`)
TOOL_STATUSES = ("exact", "refused", "none")

_USES_TOOLS = re.compile(r"\btools\b|\btool_calls\b|['\"]tool['\"]")


def uses_tools(template: str) -> bool:
    """Whether a template's source reads ``tools`` or ``tool_calls`` or tests for role ``tool``
    (the corpus report's *tool-capable* templates)."""
    return bool(_USES_TOOLS.search(template))


# ---------------------------------------------------------------------------------------------
# marker objects

def _tool(k: int) -> dict:
    # keys out of sorted order, non-ASCII text and nesting: every JsonStyle field shows in its dumps
    return {"type": "function", "function": {
        "name": f"tOol{k}qZmX", "description": f"Dé{k}qZmX 日本",
        "parameters": {"type": "object", "properties": {"zeta": {"type": "string"},
                                                         "alpha": {"type": "integer", "enum": [1, k]}},
                       "required": ["zeta"]}}}


TOOL_1, TOOL_2 = _tool(1), _tool(2)
ARGS_1 = {"zeta": "vAl1qZmX é", "alpha": [1, {"ü": "日本", "b": None}]}
#: scalars a template may write as JSON or as Python (``value | string``) when it renders arguments key by key
ARGS_2 = {"yak": True, "nOne": None}
#: arguments given as a JSON string, in a layout no json.dumps style writes
ARGS_STR = '{"zeta":  "sTr1qZmX",\n"n": 1}'
CALL_NAME_1, CALL_NAME_2 = "cAll1qZmX", "cAll2qZmX"
RESULT_1, RESULT_2 = "rEs1qZmX", "rEs2qZmX"


#: the probe calls' ids: 9 alphanumeric characters (Mistral's templates raise on any other)
CALL_ID_1, CALL_ID_2 = "cId1qZmXa", "cId2qZmXa"


def _call(name: str, args: Any, id_: str = CALL_ID_1) -> dict:
    """A call in transformers' (OpenAI's) shape, with an ``id`` as such conversations carry."""
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}


def _style_candidates() -> list[JsonStyle]:
    out, seen = [], set()
    for indent in (None, 2, 4, 1, 3, 8):
        for seps in ((), (",", ":"), (", ", ": "), (",", ": "), (", ", ":")):
            for sort_keys in (False, True):
                for ascii_ in (False, True):
                    s = JsonStyle(indent=indent, separators=seps, sort_keys=sort_keys, ensure_ascii=ascii_)
                    if s not in seen:
                        seen.add(s)
                        out.append(s)
    return out


#: the JSON styles tried, transformers' ``tojson`` default first
JSON_STYLES = _style_candidates()


# ---------------------------------------------------------------------------------------------
# the result


def _refuse(reason: str) -> ConversionRefused:
    return ConversionRefused(reason, "tools")


# ---------------------------------------------------------------------------------------------
# probing


class _Run:
    """Renders probe conversations in the sandbox with the real variables (tokens, vars)."""

    def __init__(self, template: str, base: dict, limits: Limits) -> None:
        self.template, self.base, self.limits = template, base, limits

    def job(self, msgs: list[dict], tools=None, gen: bool = False, today=DATE_1) -> dict:
        j = dict(self.base)
        j.update(messages=msgs, add_generation_prompt=gen, tools=tools, __today__=today)
        return j

    def run(self, jobs: list[dict]) -> list[tuple[str, str]]:
        return render_batch(self.template, jobs, self.limits)


def _u(k: str) -> dict:
    return {"role": "user", "content": SENT[k]}


def _a(k: str | None, calls: list | None = None) -> dict:
    m = {"role": "assistant", "content": SENT[k] if k else ""}
    if calls is not None:
        m["tool_calls"] = calls
    return m


def _t(content: str, call_id: str = CALL_ID_1) -> dict:
    return {"role": "tool", "content": content, "tool_call_id": call_id}


SYS = {"role": "system", "content": SENT["system"]}
C1, C2 = _call(CALL_NAME_1, ARGS_1, CALL_ID_1), _call(CALL_NAME_2, ARGS_2, CALL_ID_2)
PROBES: dict[str, tuple[list[dict], Any]] = {
    "list1:sys": ([SYS, _u("user1"), _a("assistant1"), _u("user2")], [TOOL_1]),
    "list2:sys": ([SYS, _u("user1"), _a("assistant1"), _u("user2")], [TOOL_1, TOOL_2]),
    "list1:nosys": ([_u("user1"), _a("assistant1"), _u("user2")], [TOOL_1]),
    "list0:sys": ([SYS, _u("user1"), _a("assistant1"), _u("user2")], []),
    "list1:emptysys": ([{"role": "system", "content": ""}, _u("user1"), _a("assistant1"), _u("user2")], [TOOL_1]),
    "call1": ([_u("user1"), _a("assistant1", [C1]), _u("user2")], None),
    "call1:empty": ([_u("user1"), _a(None, [C1]), _u("user2")], None),
    "call2": ([_u("user1"), _a("assistant1", [C1, C2]), _u("user2")], None),
    "call2:alone": ([_u("user1"), _a(None, [C1, C2]), _u("user2")], None),
    "call1:str": ([_u("user1"), _a("assistant1", [_call(CALL_NAME_1, ARGS_STR)]), _u("user2")], None),
    "call1:str:alone": ([_u("user1"), _a(None, [_call(CALL_NAME_1, ARGS_STR)]), _u("user2")], None),
    # a call without arguments: where a template renders them key by key, the text around them
    "call1:noargs": ([_u("user1"), _a("assistant1", [_call(CALL_NAME_1, {})]), _u("user2")], None),
    "call1:noargs:alone": ([_u("user1"), _a(None, [_call(CALL_NAME_1, {})]), _u("user2")], None),
    "result1": ([_u("user1"), _a("assistant1", [C1]), _t(RESULT_1), _a("assistant2"), _u("user3")], None),
    "result2": ([_u("user1"), _a("assistant1", [C1, C2]), _t(RESULT_1), _t(RESULT_2, CALL_ID_2), _a("assistant2"),
                 _u("user3")], None),
    # for templates that drop an answer's content beside its calls, or take one call per answer
    "result1:alone": ([_u("user1"), _a(None, [C1]), _t(RESULT_1), _a("assistant2"), _u("user3")], None),
    "result2:alone": ([_u("user1"), _a(None, [C1]), _t(RESULT_1), _t(RESULT_2, CALL_ID_2), _a("assistant2"),
                       _u("user3")], None),
    # a user message right after a result: templates that want user/assistant turns to alternate
    # (tool messages and answers with calls aside) raise on it (Mistral)
    # a result with whitespace around it: rendered as given, or trimmed (Qwen3.5)
    "result1:ws": ([_u("user1"), _a("assistant1", [C1]), _t(" \n" + RESULT_1 + "\n "), _a("assistant2"), _u("user3")],
                   None),
    "result1:ws:alone": ([_u("user1"), _a(None, [C1]), _t(" \n" + RESULT_1 + "\n "), _a("assistant2"), _u("user3")],
                         None),
    "result1:user": ([_u("user1"), _a("assistant1", [C1]), _t(RESULT_1), _u("user3")], None),
    "result1:user:alone": ([_u("user1"), _a(None, [C1]), _t(RESULT_1), _u("user3")], None),
    "result2:user": ([_u("user1"), _a("assistant1", [C1, C2]), _t(RESULT_1), _t(RESULT_2, CALL_ID_2), _u("user3")],
                     None),
    "result2:user:alone": ([_u("user1"), _a(None, [C1]), _t(RESULT_1), _t(RESULT_2, CALL_ID_2), _u("user3")], None),
    # one result for two calls: rendered as any run, or not closed (results_answer_calls: DeepSeek V3.2)
    "result:short": ([_u("user1"), _a("assistant1", [C1, C2]), _t(RESULT_1), _a("assistant2"), _u("user3")], None),
    "result:short:alone": ([_u("user1"), _a(None, [C1, C2]), _t(RESULT_1), _a("assistant2"), _u("user3")], None),
}
#: the call probes without the user message after the answer (":end"): for templates that raise on
#: a user message right after an answer with calls (Mistral: user and assistant turns alternate)
CALL_PROBES = ("call1", "call1:empty", "call2", "call2:alone", "call1:str", "call1:str:alone", "call1:noargs",
               "call1:noargs:alone")
PROBES.update({n + ":end": (PROBES[n][0][:-1], PROBES[n][1]) for n in CALL_PROBES})


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _where(text: str, msgs: list[dict], marker: str) -> str:
    """Where ``marker`` shows in a render of ``msgs``: before the content of which message."""
    p = text.find(marker)
    if p < 0:
        return "nowhere"
    for i, m in enumerate(msgs):
        c = m.get("content") or ""
        if c and text.find(c) > p:
            n = sum(1 for x in msgs[:i + 1] if x["role"] == m["role"])
            return f"before the content of message {i} (the {_ordinal(n)} {m['role']} message)"
    return "after the last message's content"


def _segment_end(fmt: ChatFormat, msgs: list[dict], index: int, parts: tuple[str, ...], tools=None) -> int:
    """The offset in ``fmt``'s render of ``msgs`` where the last of ``messages[index]``'s pieces
    in ``parts`` ends (the walk's segments: the one definition of where a piece renders)."""
    off, end = 0, None
    for s in fmt.segments(msgs, tools=tools, date=DATE_1):
        off += len(s.text)
        if s.message_index == index and s.part in parts:
            end = off
    if end is None:
        raise _refuse(f"the text format renders nothing for message {index} ({'/'.join(parts)})")
    return end


def _inserted(probe: str, base: str, at: int, what: str, msgs: list[dict], marker: str) -> str:
    """``probe`` must be ``base`` with one piece of text inserted at ``at``: that piece."""
    if probe[:at] == base[:at] and probe.endswith(base[at:]) and len(probe) >= len(base):
        return probe[at:len(probe) - len(base) + at]
    k = 0
    while k < min(len(probe), len(base)) and probe[k] == base[k]:
        k += 1
    raise _refuse(f"{what}: the template renders it {_where(probe, msgs, marker)}, and the text around it "
                  f"differs from the text format's (first difference at character {k}: "
                  f"{_show(probe[max(0, k - 20):k + 40])} where the text-only conversation has "
                  f"{_show(base[max(0, k - 20):k + 40])}); the IR places the tool list after the system "
                  "message in its block, before the first user message's content or right before the last user "
                  "message's turn, calls after the answer's content and results in turns of their own")


def _split(mid: str, left: str, right: str, longest: bool = False) -> tuple[str, str] | None:
    """``mid == a + b``: the first (a, b) — the one with the longest ``a`` when ``longest`` — such
    that ``right`` starts with ``a`` and ``left`` ends with ``b``."""
    ks = range(len(mid), -1, -1) if longest else range(len(mid) + 1)
    for k in ks:
        a, b = mid[:k], mid[k:]
        if right.startswith(a) and left.endswith(b):
            return a, b
    return None


def _json_style(x: str, obj: Any, what: str) -> JsonStyle:
    found = [s for s in JSON_STYLES if s.dumps(obj) in x]
    if found:
        return found[0]
    if str(obj) in x or repr(obj) in x:
        raise _refuse(f"{what}: renders them as Python's str(dict) (single quotes, True/None), not JSON; the "
                      "IR writes JSON (json.dumps)")
    raise _refuse(f"{what}: not written as json.dumps of the object in any of the {len(JSON_STYLES)} JSON styles "
                  "tried (indent, separators, sort_keys, ensure_ascii) — e.g. field by field or as pseudo-JSON: "
                  f"{_show(x, 160)}")


def _tool_object(x: str) -> str:
    """Whether the tool list ``x`` (one tool: ``TOOL_1``) serialises the whole tool or only its
    ``function`` object (:data:`tmplc.ir.TOOL_OBJECTS`); the whole tool is tried first, since
    its JSON holds the function object's."""
    for obj, value in (("tool", TOOL_1), ("function", TOOL_1["function"])):
        if any(s.dumps(value) in x for s in JSON_STYLES):
            return obj
    return "tool"  # neither: _json_style refuses with the reason


class _Results(dict):
    """The probe renders by name; reading a probe the template failed on refuses with its error."""

    def __getitem__(self, name: str) -> str:
        kind, text = dict.__getitem__(self, name)
        if kind != "ok":
            raise _refuse(f"the template fails on a tool probe ({name}: {_describe_probe(name)}): {text}")
        return text

    def ok(self, name: str) -> bool:
        return dict.__getitem__(self, name)[0] == "ok"


def _list_items(x1: str, x2: str) -> tuple[str, dict]:
    """The tool list's text with one tool (``x1``) and two (``x2``) -> (the text before the first
    item, the :class:`ToolFormat` fields of the items: ``json``, ``tool_object``, ``item_prefix``,
    ``item_suffix``, ``item_sep``, ``list_suffix``); the text between two items is read by
    :func:`tmplc.ir.split_between_items`.  A list written as one indented JSON array
    (``tools | tojson(indent=4)``) gives ``list_json``."""
    for obj, pick in (("tool", lambda t: t), ("function", lambda t: t["function"])):
        for s in JSON_STYLES:
            one = s.dumps([pick(TOOL_1)])
            if s.indent is not None and x1.count(one) == 1:
                pre, post = x1.split(one)
                if x2 == pre + s.dumps([pick(TOOL_1), pick(TOOL_2)]) + post:
                    return pre, dict(json=s, tool_object=obj, list_json=True, list_suffix=post)
    item = _item_fields(x1)
    j1, j2 = ToolFormat(**item).item_text(TOOL_1), ToolFormat(**item).item_text(TOOL_2)
    if x1.count(j1) != 1:
        raise _refuse(f"the tool list: each tool's JSON shows {x1.count(j1)} times")
    pre, post = x1.split(j1)
    if not (x2.startswith(pre + j1) and x2.endswith(j2 + post)) or len(x2) < len(pre + j1 + j2 + post):
        raise _refuse(f"the tool list: two tools do not render as one tool's layout repeated: one renders "
                      f"{_show(x1, 160)}, two {_show(x2, 160)}")
    mid = x2[len(pre + j1):len(x2) - len(j2 + post)]
    item_suffix, sep, item_prefix = split_between_items(pre, mid, post)
    return pre[:len(pre) - len(item_prefix)], dict(item, item_prefix=item_prefix, item_suffix=item_suffix,
                                                   item_sep=sep, list_suffix=post[len(item_suffix):])


def _item_fields(x: str) -> dict[str, Any]:
    """How the tool list ``x`` (one tool: ``TOOL_1``) writes a tool: the :class:`ToolFormat` fields
    ``json``, ``tool_object`` and ``tool_layout`` (JSON first, then the ``xml``, ``python_def``, ``typescript`` and ``python_str`` layouts)."""
    for s in JSON_STYLES:
        if s.dumps(TOOL_1) in x or s.dumps(TOOL_1["function"]) in x:
            break
    else:
        xml = next((s for s in JSON_STYLES if xml_tool(TOOL_1["function"], s) in x), None)
        if xml is not None:
            return dict(json=xml, tool_layout="xml", tool_object="function")
        if python_def_tool(TOOL_1["function"]) in x:
            return dict(tool_layout="python_def")
        if typescript_tool(TOOL_1["function"]) in x:
            return dict(tool_layout="typescript")
        for obj in ("tool", "function"):
            if str(TOOL_1 if obj == "tool" else TOOL_1["function"]) in x:
                return dict(tool_layout="python_str", tool_object=obj)
    obj = _tool_object(x)
    return dict(json=_json_style(x, TOOL_1["function"] if obj == "function" else TOOL_1, "the tool list"),
                tool_object=obj)


def _read_list(fmt: ChatFormat, res: dict) -> ToolFormat:
    """The tool list's fields (its JSON style included): after the system message in its block, or
    in the first user message (:func:`_read_first_user`)."""
    st = fmt.structure
    msgs, _ = PROBES["list1:sys"]
    base = fmt.render(msgs, date=DATE_1)
    if res["list1:sys"] == res["list2:sys"] == base:
        # the template ignores `tools` (DeepSeek: the tools go into the system message by hand): the
        # format refuses them rather than dropping them
        return ToolFormat(renders_list=False)
    in_user = (_read_first_user(fmt, res, base) or _read_last_user(fmt, res, base) or _read_start(fmt, res, base)
               or _read_after_system(fmt, res, base))
    if in_user is not None:
        return in_user
    if st.system is None or st.system.placement != "standalone":
        raise _refuse("the tool list: the text format has no standalone system block (the template raises on a "
                      "system message, or places it in the first user turn); the IR puts the tool list in a "
                      "standalone system block or in the first user message")
    at = _segment_end(fmt, msgs, 0, ("content",))
    first = _read_list_first(fmt, res, base)
    if first is not None:
        return first
    x1 = _inserted(res["list1:sys"], base, at, "the tool list", msgs, TOOL_1["function"]["name"])
    if not x1:  # the template ignores `tools` (DeepSeek: the tools go into the system message by hand)
        raise _refuse("the tool list: the template does not render it (tools=[...] renders nothing; e.g. DeepSeek "
                      "expects the tools written into the system message); the IR writes the tool list into the "
                      "system block whenever tools are given")
    x2 = _inserted(res["list2:sys"], base, at, "the tool list (two tools)", msgs, TOOL_1["function"]["name"])
    head, items = _list_items(x1, x2)
    tf = ToolFormat(**items)
    return _list_split(fmt, res, tf, head)


def _prefix_cuts(fmt: ChatFormat, prefix: Fragment) -> dict[int, Fragment]:
    """The fragments ``prefix`` can be cut to, by the length of their rendered text: inside or
    between its literal texts, never inside a token or a date."""
    from tmplc.render import fragment_text

    return {len(fragment_text(fmt, head, fmt.meta.bos_token, fmt.meta.eos_token, DATE_1)): head
            for head, _ in fragment_cuts(prefix)}


def _read_list_first(fmt: ChatFormat, res: dict, base: str) -> ToolFormat | None:
    """The tool list before the system message's content in its block (``list_first``: Qwen3.5,
    Spark): the block with tools is ``system_prefix + list + system_sep + content + suffix``, where
    the system block's prefix (as the text format renders it) may lose a tail with tools (Spark's
    ``\n\n``: then ``system_prefix``); the conversation without a system message ends the list.
    None when the list is not there."""
    st = fmt.structure
    msgs, _ = PROBES["list1:sys"]
    spans, off = {}, 0
    for seg in fmt.segments(msgs, date=DATE_1):
        if seg.message_index == 0 and seg.part in ("prefix", "content"):
            spans.setdefault(seg.part, [off, off])[1] = off + len(seg.text)
        off += len(seg.text)
    if "content" not in spans:
        return None
    c0 = spans["content"][0]
    p0 = spans["prefix"][0] if "prefix" in spans else c0
    probe, probe2 = res["list1:sys"], res["list2:sys"]
    if probe[:p0] != base[:p0] or not probe.endswith(base[c0:]) or len(probe) <= len(base):
        return None
    t1 = probe[p0:len(probe) - len(base) + c0]
    t2 = probe2[p0:len(probe2) - len(base) + c0] if probe2[:p0] == base[:p0] and probe2.endswith(base[c0:]) else None
    if TOOL_1["function"]["name"] not in t1 or t2 is None:
        return None
    item = _item_fields(t1)
    j1 = ToolFormat(**item).item_text(TOOL_1)
    if t1.count(j1) != 1:
        return None
    pre, post = t1.split(j1)
    prefix_text = base[p0:c0]
    nmsgs, _ = PROBES["list1:nosys"]
    want_n = res["list1:nosys"]
    k = want_n.find(j1)
    post_n = want_n[k + len(j1):] if k >= 0 else ""
    common = 0
    while common < min(len(post), len(post_n)) and post[common] == post_n[common]:
        common += 1
    cuts = _prefix_cuts(fmt, st.system.prefix)
    keeps = (True, False) if st.system.default is not None else (True,)
    for m in sorted((m for m in cuts if m <= len(pre) and pre[:m] == prefix_text[:m]), reverse=True):
        sp = None if m == len(prefix_text) else cuts[m]
        for tail in range(common, -1, -1):
            sep = post[tail:]
            x1 = pre[m:] + j1 + post[:tail]
            if not t2.startswith(pre[:m]) or not t2.endswith(sep):
                continue
            x2 = t2[m:len(t2) - len(sep)]
            try:
                head, items = _list_items(x1, x2)
            except ConversionRefused:
                continue
            for keep in keeps:
                try:
                    tf = ToolFormat(list_first=True, system_prefix=sp, system_sep=sep, list_prefix=head,
                                    keep_default_system=keep, **items)
                    cand = ChatFormat(replace(st, tools=tf), fmt.meta)
                    ok = (cand.render(msgs, tools=[TOOL_1], date=DATE_1) == probe
                          and cand.render(msgs, tools=[TOOL_1, TOOL_2], date=DATE_1) == probe2
                          and cand.render(nmsgs, tools=[TOOL_1], date=DATE_1) == want_n)
                except (ValueError, MessageError):
                    continue
                if ok:
                    return _empty_system(fmt, res, tf)
    return None


def _first_user_parts(fmt: ChatFormat, base: str, probe: str) -> tuple[str | None, str] | None:
    """``probe`` as ``base`` (the same conversation without tools) with text inserted before the
    first user message's content and, possibly, the system block's prefix changed: (the changed
    prefix or None, the inserted text); None when the probe is not that."""
    msgs, _ = PROBES["list1:sys"]
    spans, off = {}, 0
    for seg in fmt.segments(msgs, date=DATE_1):
        key = (seg.message_index, seg.part)
        spans[key] = (spans.get(key, (off, off))[0], off + len(seg.text))
        off += len(seg.text)
    if (1, "content") not in spans:
        return None
    c0 = spans[(1, "content")][0]
    tail = base[c0:]
    if not probe.endswith(tail) or len(probe) < len(base):
        return None
    head = probe[:len(probe) - len(tail)]
    marker = TOOL_1["function"]["name"]
    if head.startswith(base[:c0]) and marker in head[c0:]:
        return None, head[c0:]
    sys_prefix = spans.get((0, "prefix"))
    if sys_prefix is None or fmt.structure.system is None or fmt.structure.system.placement != "standalone":
        return None
    a0, a1 = sys_prefix
    if not head.startswith(base[:a0]):
        return None
    mid = base[a1:c0]  # the system message's content and suffix, the user prefix
    p = head.find(mid, a0)
    while p >= 0:
        changed, inserted = head[a0:p], head[p + len(mid):]
        if marker in inserted and marker not in changed:
            return (None if changed == base[a0:a1] else changed), inserted
        p = head.find(mid, p + 1)
    return None


def _dated(changed: str, prefix) -> "Fragment":
    """The system header with tools (``changed``, rendered on DATE_1) as a fragment: where the header
    without tools (``prefix``) has ``{DATE=...}`` pieces, their DATE_1 text in ``changed`` becomes the
    same pieces (one each, in order; a refusal when they cannot be placed so)."""
    dates = [p for p in prefix if isinstance(p, DateToken)]
    if not dates:
        return fragment([changed])
    pieces: list = []
    rest = changed
    for d in dates:
        text = d.render(DATE_1)
        k = rest.find(text)
        if k < 0 or rest.count(text) != 1:
            raise _refuse(f"the tool list in the first user message: the system header with tools "
                          f"{_show(changed, 160)} holds today's date {text!r} {rest.count(text)} times where the "
                          "header without tools has it once; the IR cannot tell which is the date")
        pieces += [rest[:k], d]
        rest = rest[k + len(text):]
    return fragment(pieces + [rest])


def _read_first_user(fmt: ChatFormat, res: dict, base: str) -> ToolFormat | None:
    """The tool list in the first user message (Llama 3.x's ``tools_in_user_message``): the text
    inserted before the first user message's content is ``list_prefix + items + list_suffix``; a
    system block whose prefix changes with tools gives ``system_prefix``; ``tools=[]`` rendering
    the list without items gives ``empty_list``.  None when the list is not there."""
    got = _first_user_parts(fmt, base, res["list1:sys"])
    if got is None:
        return None
    changed, x1 = got
    got2 = _first_user_parts(fmt, base, res["list2:sys"])
    if got2 is None or got2[0] != changed:
        raise _refuse(f"the tool list in the first user message: two tools do not render as one tool's layout "
                      f"repeated there: {_show(res['list2:sys'], 200)}")
    x2 = got2[1]
    sb = fmt.structure.system
    header = None if changed is None else _dated(changed, sb.prefix)
    list_prefix, items = _list_items(x1, x2)
    tf = ToolFormat(placement="first_user", system_prefix=header, list_prefix=list_prefix, **items)
    if header is not None and any(isinstance(p, DateToken) for p in header) and res.ok("list1:sys@date2"):
        msgs, _ = PROBES["list1:sys"]
        got = ChatFormat(replace(fmt.structure, tools=tf), fmt.meta).render(msgs, tools=[TOOL_1], date=DATE_2)
        if got != res["list1:sys@date2"]:
            raise _refuse(f"the tool list in the first user message: the system header with tools "
                          f"{_show(changed, 160)} does not follow the date as the header without tools does "
                          f"(on {DATE_2}: {_show(res['list1:sys@date2'], 200)})")
    return _user_turn_checks(fmt, res, tf, base, "in the first user message")


def _user_turn_checks(fmt: ChatFormat, res: dict, tf: ToolFormat, base: str, where: str) -> ToolFormat:
    """A list in a user turn: ``empty_list`` when ``tools=[]`` renders the list without items, and
    the conversation without a system message rendered as the template does."""
    msgs, _ = PROBES["list0:sys"]
    if res.ok("list0:sys") and res["list0:sys"] != base:  # tools=[] still renders the list's text
        tf = replace(tf, empty_list=True)
        got0 = ChatFormat(replace(fmt.structure, tools=tf), fmt.meta).render(msgs, tools=[], date=DATE_1)
        if got0 != res["list0:sys"]:
            raise _refuse(f"the tool list {where}: tools=[] renders "
                          f"{_show(res['list0:sys'], 200)}, which is neither the conversation without tools nor "
                          f"the list without items {_show(got0, 200)}")
    nmsgs, _ = PROBES["list1:nosys"]
    got = ChatFormat(replace(fmt.structure, tools=tf), fmt.meta).render(nmsgs, tools=[TOOL_1], date=DATE_1)
    if got != res["list1:nosys"]:
        tf = _tools_absent(fmt, tf, got, res["list1:nosys"]) or tf
        got = ChatFormat(replace(fmt.structure, tools=tf), fmt.meta).render(nmsgs, tools=[TOOL_1], date=DATE_1)
    if got != res["list1:nosys"]:
        want, k = res["list1:nosys"], 0
        while k < min(len(got), len(want)) and got[k] == want[k]:
            k += 1
        raise _refuse(f"the tool list {where}, without a system message: the template renders "
                      f"{_show(want[max(0, k - 30):k + 50])} where the format gives "
                      f"{_show(got[max(0, k - 30):k + 50])}")
    return tf


def _tools_absent(fmt: ChatFormat, tf: ToolFormat, got: str, want: str) -> ToolFormat | None:
    """``absent`` with tools: where the format renders its no-system text (``SystemBlock.absent``)
    and the template, given tools, another one (Granite 3.3's default system message names the
    tools), the template's text there, its dates as the no-system text's ``{DATE=...}`` pieces."""
    from tmplc.render import fragment_text

    sb = fmt.structure.system
    if sb is None or sb.absent is None or sb.default is not None or tf.placement == "system":
        return None
    bos, eos = fmt.meta.bos_token, fmt.meta.eos_token
    pre = fragment_text(fmt, fmt.structure.preamble, bos, eos, DATE_1)
    at = len(pre) + len(fragment_text(fmt, sb.absent, bos, eos, DATE_1))
    rest = got[at:]
    if not (got.startswith(pre) and want.startswith(pre) and want.endswith(rest) and len(want) >= len(pre) + len(rest)):
        return None
    return replace(tf, absent=_dated(want[len(pre):len(want) - len(rest)], sb.absent))


def _read_last_user(fmt: ChatFormat, res: dict, base: str) -> ToolFormat | None:
    """The tool list right before the last user message's turn (Mistral's ``[AVAILABLE_TOOLS]``):
    the text inserted before that turn's first piece.  None when the list is not there."""
    msgs, _ = PROBES["list1:sys"]
    last = max(i for i, m in enumerate(msgs) if m["role"] == "user")
    at, off = None, 0
    for seg in fmt.segments(msgs, date=DATE_1):
        if seg.message_index == last:
            at = off
            break
        off += len(seg.text)
    if at is None:
        return None

    def inserted(probe: str) -> str | None:
        return _list_inserted(probe, base, at)

    x1 = inserted(res["list1:sys"])
    if x1 is None:
        return None
    x2 = inserted(res["list2:sys"])
    if x2 is None:
        raise _refuse(f"the tool list before the last user message: two tools do not render there as one tool's "
                      f"layout repeated: {_show(res['list2:sys'], 200)}")
    list_prefix, items = _list_items(x1, x2)
    tf = ToolFormat(placement="last_user", list_prefix=list_prefix, **items)
    return _user_turn_checks(fmt, res, tf, base, "before the last user message")


def _list_inserted(probe: str, base: str, at: int) -> str | None:
    """The text ``probe`` inserts into ``base`` at ``at`` when it holds the marker tool's name, else None."""
    if probe[:at] == base[:at] and probe.endswith(base[at:]) and len(probe) > len(base):
        x = probe[at:len(probe) - len(base) + at]
        return x if TOOL_1["function"]["name"] in x else None
    return None


def _list_block_at(fmt: ChatFormat, res: dict, base: str, at: int, placement: str, where: str) -> ToolFormat | None:
    """The tool list as text of its own inserted into ``base`` at ``at`` (``placement``), checked
    like a list in a user turn; None when the list is not there or that reading fails the checks."""
    x1, x2 = _list_inserted(res["list1:sys"], base, at), _list_inserted(res["list2:sys"], base, at)
    if x1 is None or x2 is None:
        return None
    try:
        list_prefix, items = _list_items(x1, x2)
        tf = ToolFormat(placement=placement, list_prefix=list_prefix, **items)
        return _user_turn_checks(fmt, res, tf, base, where)
    except ConversionRefused:
        return None


def _read_start(fmt: ChatFormat, res: dict, base: str) -> ToolFormat | None:
    """The tool list as a block of its own at the very start of the text, before the preamble and
    the system block (Kimi K2's ``tool_declare`` turn).  None when the list is not there."""
    return _list_block_at(fmt, res, base, 0, "start", "at the start")


def _read_after_system(fmt: ChatFormat, res: dict, base: str) -> ToolFormat | None:
    """The tool list right after the system block, before the first message's turn (Devstral):
    the text inserted where the block ends.  None when the list is not there (where the block has
    no suffix, a list at its end may be the system placement's instead: a failed check falls
    through to it)."""
    st = fmt.structure
    if st.system is None or st.system.placement != "standalone":
        return None
    msgs, _ = PROBES["list1:sys"]
    try:
        at = _segment_end(fmt, msgs, 0, ("suffix", "content"))
    except ConversionRefused:
        return None
    return _list_block_at(fmt, res, base, at, "after_system", "after the system block")


def _list_split(fmt: ChatFormat, res: dict, tf0: ToolFormat, head: str) -> ToolFormat:
    """``head`` (the text between the system message and the first tool) split into ``system_sep`` and
    ``list_prefix`` by the conversation without a system message."""
    st = fmt.structure
    nmsgs, _ = PROBES["list1:nosys"]
    want = res["list1:nosys"]
    ws = len(head) - len(head.lstrip())  # where several splits render alike: the separator is whitespace
    keeps = (True, False) if st.system.default is not None else (True,)
    first = None
    for keep in keeps:  # False: with tools, the default system message gives way to the list (Granite 4.0)
        for k in [ws] + [k for k in range(len(head) + 1) if k != ws]:
            tf = replace(tf0, system_sep=head[:k], list_prefix=head[k:], keep_default_system=keep)
            try:
                got = ChatFormat(replace(st, tools=tf), fmt.meta).render(nmsgs, tools=[TOOL_1], date=DATE_1)
            except MessageError:
                continue
            if got == want:
                tf = _empty_system(fmt, res, tf)
                # where a default system text stands in for the missing message (Laguna-XS.2), the
                # empty system message's render tells where the separator ends and the list begins
                if not _renders_empty_system(fmt, res, tf):
                    first = first or tf
                    continue
                return tf
    if first is not None:
        return first
    for k in [ws] + [k for k in range(len(head) + 1) if k != ws]:
        tf = _tools_default(fmt, replace(tf0, system_sep=head[:k], list_prefix=head[k:]), nmsgs, want)
        if tf is not None:
            return _empty_system(fmt, res, tf)
    for k in [ws] + [k for k in range(len(head) + 1) if k != ws]:
        tf = _list_block(fmt, replace(tf0, system_sep=head[:k], list_prefix=head[k:]), nmsgs, want)
        if tf is not None:
            return tf
    tf = replace(tf0, list_prefix=head)
    got = ChatFormat(replace(st, tools=tf), fmt.meta).render(nmsgs, tools=[TOOL_1], date=DATE_1)
    k = 0
    while k < min(len(got), len(want)) and got[k] == want[k]:
        k += 1
    raise _refuse(f"the tool list without a system message: the template renders {_show(want[max(0, k - 30):k + 50])} "
                  f"where the system block with the list (as it renders after a system message) gives "
                  f"{_show(got[max(0, k - 30):k + 50])} (a different block, or a default system text, with tools; "
                  "the IR renders the system block with the list whenever tools are given)")


def _list_block(fmt: ChatFormat, tf: ToolFormat, msgs: list[dict], want: str) -> ToolFormat | None:
    """``tf`` with the ``list_block_suffix`` that makes it render ``want`` (``msgs``, without a system
    message, with one tool): the list in a block of its own, then the format's text without a system
    message (Apriel 1.5); else None."""
    return _text_field(fmt, tf, "list_block_suffix", msgs, want, nonempty=False)


def _tools_default(fmt: ChatFormat, tf: ToolFormat, msgs: list[dict], want: str) -> ToolFormat | None:
    """``tf`` with the ``default_system`` text that makes it render ``want`` (``msgs``, without a
    system message, with one tool), where the block holds a text of its own then; else None."""
    return _text_field(fmt, tf, "default_system", msgs, want, nonempty=True)


def _text_field(fmt: ChatFormat, tf: ToolFormat, field: str, msgs: list[dict], want: str,
                nonempty: bool) -> ToolFormat | None:
    """``tf`` with the text of ``field`` that makes it render ``want`` (``msgs`` with one tool): read
    where a marker in that field renders, and checked; None where no text (``nonempty``: no
    non-empty text) does."""
    mark = "\x00tmplc-" + field + "\x00"
    try:
        got = ChatFormat(replace(fmt.structure, tools=replace(tf, **{field: mark})), fmt.meta).render(
            msgs, tools=[TOOL_1], date=DATE_1)
    except (MessageError, ValueError):
        return None
    if got.count(mark) != 1:
        return None
    a, _, b = got.partition(mark)
    if not (want.startswith(a) and want.endswith(b)) or len(want) < len(a) + len(b) + nonempty:
        return None
    cand = replace(tf, **{field: want[len(a):len(want) - len(b)]})
    if ChatFormat(replace(fmt.structure, tools=cand), fmt.meta).render(msgs, tools=[TOOL_1], date=DATE_1) != want:
        return None
    return cand


def _renders_empty_system(fmt: ChatFormat, res: dict, tf: ToolFormat) -> bool:
    """Whether ``tf`` renders the probe with an empty system message and tools as the template
    does (True where the template raises on it or the format has no default system text)."""
    if fmt.structure.system.default is None or not res.ok("list1:emptysys"):
        return True
    msgs, _ = PROBES["list1:emptysys"]
    try:
        got = ChatFormat(replace(fmt.structure, tools=tf), fmt.meta).render(msgs, tools=[TOOL_1], date=DATE_1)
    except MessageError:
        return False
    return got == res["list1:emptysys"]


def _empty_system(fmt: ChatFormat, res: dict, tf: ToolFormat) -> ToolFormat:
    """``empty_system_counts``: a format that skips an empty system message (``{SYSTEM|nonempty}``)
    whose template, given tools, still renders that message's (empty) content and separator."""
    if not fmt.structure.system.skip_empty or not res.ok("list1:emptysys"):
        return tf
    msgs, _ = PROBES["list1:emptysys"]
    for cand in (tf, replace(tf, empty_system_counts=True)):
        got = ChatFormat(replace(fmt.structure, tools=cand), fmt.meta).render(msgs, tools=[TOOL_1], date=DATE_1)
        if got == res["list1:emptysys"]:
            return cand
    return tf  # verification (random conversations with empty system messages) says where it differs


def _last_call_ids(res: "_Results", end: str, rest: str, args: str, calls_alone: bool) -> dict[str, Any]:
    """For a call whose id follows its arguments: ``{}`` where the calls of a conversation's last
    message render their ids too, else ``last_call_ids: False`` and the ``call_id_suffix`` (the head
    of ``rest``, the text after the id, that the call without its id does not render)."""
    probe = ("call1:empty" if calls_alone else "call1") + ":end"
    if end or not res.ok(probe) or CALL_ID_1 in res[probe]:
        return {}
    text = res[probe]
    j = text.find(args, max(text.find(CALL_NAME_1), 0))
    after = text[j + len(args):] if j >= 0 else ""
    s = next((s for s in range(len(rest) + 1) if j >= 0 and after.startswith(rest[s:])), None)
    if s is None:
        raise _refuse(f"a tool call in the conversation's last message renders without its id, and not as the call "
                      f"with its id less that id's text: {_show(text, 200)}")
    return dict(last_call_ids=False, call_id_suffix=rest[:s])


def _per_argument(y: str, after: int, styles: list[JsonStyle], inserted, calls_alone: bool, ids: bool
                  ) -> tuple[JsonStyle, str, dict[str, Any], str] | None:
    """A call whose arguments render key by key (``y``: the call probe's text, its name and id
    ending at ``after``): (the JSON style of the non-string value, ``call_middle``, the ``arg_*``
    fields, ``call_suffix``), the split read off the call without arguments
    (:func:`tmplc.ir.split_per_argument`; ``arg_values: str`` where the list value is written as
    Python's ``str`` writes it); None when ``y`` is not that."""
    (k1, v1), (k2, v2) = ARGS_1.items()
    p1 = y.find(k1, after)
    q1 = y.find(v1, p1 + len(k1)) if p1 >= 0 else -1
    p2 = y.find(k2, q1 + len(v1)) if q1 >= 0 else -1
    if p2 < 0:
        return None
    found = next(((s, j) for s in styles if (j := y.find(s.dumps(v2), p2 + len(k2))) >= 0), None)
    values: dict[str, Any] = {}
    if found is not None:
        style, q2 = found
        v2_text = style.dumps(v2)
    elif (q2 := y.find(str(v2), p2 + len(k2))) >= 0:  # every value as Python's str writes it (Seed-OSS)
        style, v2_text, values = styles[0], str(v2), dict(arg_values="str")
    else:
        return None
    lead, middle1, between = y[after:p1], y[p1 + len(k1):q1], y[q1 + len(v1):p2]
    if values and middle1.endswith("'") and between.startswith("'"):  # f(k='v', ...): LFM2.5's Python call
        middle1, between, values = middle1[:-1], between[1:], dict(arg_values="python_call")
    middle2, tail = y[p2 + len(k2):q2], y[q2 + len(v2_text):]
    empty = None
    try:
        z = inserted("call1:noargs:alone" if calls_alone else "call1:noargs")
        i = z.find(CALL_NAME_1)
        zk = z.find(CALL_ID_1) if ids else -1
        empty = z[max(i + len(CALL_NAME_1), zk + len(CALL_ID_1) if zk >= 0 else 0):] if i >= 0 else None
    except ConversionRefused:  # the template raises on a call without arguments: verification decides
        pass
    split = split_per_argument(lead, between, tail, empty)
    if split is None:
        raise _refuse(f"a tool call renders its arguments key by key ({_show(y, 200)}), but the call without "
                      f"arguments ({_show(empty or '', 120)}) is not the text around them")
    cm, ap, asuf, cs, none, sep = split
    # the text before a string value and before any other (DeepSeek's string="true"/"false"): the
    # second argument's value is no string
    return style, cm, dict(arg_prefix=ap, arg_middle=middle1, arg_suffix=asuf, arg_middle_other=middle2,
                           no_arguments=none, arg_sep=sep, **values), cs


def _read_calls(fmt: ChatFormat, tf: ToolFormat, res: dict) -> tuple[ToolFormat, bool]:
    """The call fields, and whether the template takes arguments given as a JSON string (False: it
    raises on them; the format renders them as given, and verification leaves them out).  A
    template that drops the answer's content beside its calls gives ``calls_alone``; one that
    raises on two calls, ``max_calls = 1``; arguments in another JSON style than the tool list,
    ``call_json``."""

    def inserted(name: str) -> str:
        msgs, _ = PROBES[name + end]
        plain = [{k: v for k, v in m.items() if k != "tool_calls"} for m in msgs]
        base = fmt.render(plain, date=DATE_1)
        try:
            at = _segment_end(fmt, plain, 1, ("prefix", "lead", "content"))
        except ConversionRefused:  # an empty answer with no prefix or lead: right after the user turn
            at = _segment_end(fmt, plain, 0, ("prefix", "content", "suffix"))
        x = _inserted(res[name], base, at, f"a tool call ({name})", msgs, CALL_NAME_1)
        a = fmt.structure.assistant
        if a.empty is not None and 1 in decisions(fmt, plain)[1]:
            # an empty answer renders its {EMPTY} text alone, and with calls that text, the calls and
            # the turn's end: the calls are what comes before that end
            final = 1 in fmt.structure.final_answers(plain, False) and a.final_suffix is not None
            ending = fragment_text(fmt, a.final_suffix if final else a.suffix, fmt.meta.bos_token,
                                   fmt.meta.eos_token, DATE_1)
            if ending and x.endswith(ending):
                x = x[:len(x) - len(ending)]
        return x

    if not res.ok("call1:empty") and res.ok("call1:empty:end"):  # no user message right after calls
        res = _Results({n: dict.__getitem__(res, n + ":end") for n in CALL_PROBES})
        end = ":end"
    else:
        end = ""
    # content beside calls dropped (Llama 3.1's template), or refused (tmplc's own targets raise): the
    # format refuses such answers either way
    calls_alone = not res.ok("call1") or (SENT["assistant1"] not in res["call1"] and res["call1"] == res["call1:empty"])
    y = inserted("call1:empty" if calls_alone else "call1")
    i = y.find(CALL_NAME_1)
    if not y:  # the model writes its calls into the content (LFM2): the format refuses tool_calls
        return replace(tf, renders_calls=False), True
    if i < 0:
        raise _refuse(f"a tool call: the call's name does not show in {_show(y, 160)}")
    k = y.find(CALL_ID_1)
    styles = [tf.json] + [s for s in JSON_STYLES if s != tf.json]  # the list's style first
    # the id after the arguments (Apriel's {"name": ..., "arguments": ..., "id": ...}): JSON arguments
    # between the name and the id
    id_after = k >= 0 and any(0 <= y.find(s.dumps(ARGS_1), i + len(CALL_NAME_1)) < k for s in styles)
    after = i + len(CALL_NAME_1) if id_after else max(i + len(CALL_NAME_1), k + len(CALL_ID_1) if k >= 0 else 0)
    found = next(((s, j) for s in styles if (j := y.find(s.dumps(ARGS_1), after)) >= 0), None)
    per_arg: dict[str, Any] = {}
    if found is not None:
        style, j = found
        a1 = style.dumps(ARGS_1)
        middle, tail = y[after:j], y[j + len(a1):]
    else:
        per = _per_argument(y, after, styles, inserted, calls_alone, k >= 0)
        if per is None:
            if str(ARGS_1) in y:
                raise _refuse(f"a tool call: its arguments are written as Python's str(dict): {_show(y, 160)}; the "
                              "IR writes JSON")
            if k >= 0 and any(s.dumps(ARGS_1) in y for s in styles):
                raise _refuse(f"a tool call: the template renders the call's id after its arguments "
                              f"({_show(y, 160)}); the IR renders it between the name and the arguments")
            raise _refuse(f"a tool call: the arguments are neither written as json.dumps of the object after the "
                          f"name nor key by key (each key, then its value): {_show(y, 160)}")
        style, middle, per_arg, tail = per
        j = after + len(middle)
        a1 = y[j:len(y) - len(tail)]
    id_fields: dict[str, Any] = {}
    if id_after:
        id_prefix, tail = tail[:k - j - len(a1)], tail[k - j - len(a1) + len(CALL_ID_1):]
        id_fields = dict(call_id_after=True, **_last_call_ids(res, end, tail, a1, calls_alone))
        tail = tail[len(id_fields.get("call_id_suffix", "")):]
    elif k >= 0 and not (i + len(CALL_NAME_1) <= k and k + len(CALL_ID_1) <= j):
        raise _refuse(f"a tool call: the template renders the call's id ({_show(y, 160)}) elsewhere than between "
                      "its name and its arguments or after its arguments, where the IR renders it")
    else:
        id_prefix = y[i + len(CALL_NAME_1):k] if k >= 0 else None
    head = y[:i]
    if k >= 0 and not id_after:
        middle = y[k + len(CALL_ID_1):j]

    def ids(cid: str) -> tuple[str, str]:  # a call's id text before and after its arguments
        text = "" if k < 0 else id_prefix + cid + id_fields.get("call_id_suffix", "")
        return ("", text) if id_after else (text, "")

    cid1, post1 = ids(CALL_ID_1)
    ye = y if calls_alone else inserted("call1:empty")
    one = CALL_NAME_1 + cid1 + middle + a1 + post1 + tail
    if not ye.endswith(one) or not head.endswith(ye[:len(ye) - len(one)]):
        raise _refuse(f"a tool call in an answer without content renders {_show(ye, 160)}, not the call as after "
                      f"content {_show(y, 160)} less a separator")
    call_prefix = ye[:len(ye) - len(one)]
    content_sep = head[:len(head) - len(call_prefix)]
    fields = dict(call_json=style, content_sep=content_sep, call_prefix=call_prefix, call_id_prefix=id_prefix,
                  call_middle=middle, call_suffix=tail, calls_alone=calls_alone, **per_arg, **id_fields)
    two_probe = "call2:alone" if calls_alone else "call2"
    one_probe = "call1:empty" if calls_alone else "call1"
    if not res.ok(two_probe) or res[two_probe] == res[one_probe]:
        # the template raises on a second call, or drops it (GigaChat renders tool_calls[0] only): the
        # format refuses a second call (a MessageError), never dropping it silently
        fields["max_calls"] = 1
    else:
        y2 = inserted(two_probe)
        first = y[:len(y) - len(tail)]
        cid2, post2 = ids(CALL_ID_2)
        # the text after the name (and id) as is, or split around the call's position in its answer
        # (Kimi K2's `functions.NAME:0`): the first call shows 0 there, the second 1
        splits = [(None, middle)] + [(middle[:p], middle[p + 1:]) for p, ch in enumerate(middle) if ch == "0"]
        modes = ((per_arg["arg_values"],) if per_arg.get("arg_values") in ("str", "python_call") else
                 ("json", "python")) if per_arg else ("json",)
        for (index_prefix, mid), values in itertools.product(splits, modes):
            if per_arg:
                fields["arg_values"] = values
            a2 = replace(tf, **fields).arguments(ARGS_2)
            two = (CALL_NAME_2 + cid2 + ("" if index_prefix is None else index_prefix + "1") + mid + a2 + post2 + tail)
            if y2.startswith(first) and y2.endswith(two) and len(y2) >= len(first) + len(two):
                break
        else:
            raise _refuse(f"two tool calls do not render as one call's layout repeated: {_show(y2, 200)}")
        if index_prefix is not None:
            fields["call_index_prefix"], fields["call_middle"] = index_prefix, mid
            cid1, middle = cid1 + index_prefix + "0", mid
        between = y2[len(first):len(y2) - len(two)]
        opening = call_prefix
        if not calls_alone and not content_sep and head != call_prefix:  # pragma: no cover - head ends with it
            raise _refuse(f"two tool calls: {_show(y2, 200)}")
        (fields["calls_open"], fields["call_prefix"], fields["call_sep"], fields["call_suffix"],
         fields["calls_close"]) = split_calls(opening, between, tail)
    if per_arg:  # the format needs arguments as an object (MessageError otherwise): verified without strings
        return replace(tf, **fields), False
    str_probe = "call1:str:alone" if calls_alone else "call1:str"
    if not res.ok(str_probe):  # the template refuses arguments given as a string
        return replace(tf, **fields), False
    ys = inserted(str_probe)
    around = ((call_prefix if calls_alone else head) + CALL_NAME_1 + cid1 + middle, post1 + tail)
    if ys == around[0] + ARGS_STR + around[1]:
        string_arguments = "verbatim"
    elif ys == around[0] + style.dumps(ARGS_STR) + around[1]:
        string_arguments = "json"
    else:
        raise _refuse(f"a tool call whose arguments are a JSON string: renders {_show(ys, 160)}, neither the "
                      "string as given nor as a JSON string literal")
    return replace(tf, **fields, string_arguments=string_arguments), True


def _read_results(fmt: ChatFormat, tf: ToolFormat, res: dict) -> ToolFormat:
    """The result fields, read off results followed by an answer, else (where the answer after
    results opens otherwise: DeepSeek V3.2) by a user message; then the other turn's prefix after
    results where it differs (:func:`_prefix_after_results`)."""
    alone = ":alone" if tf.calls_alone or tf.max_calls == 1 else ""
    try:
        tf, after = _read_run(fmt, tf, res, "result1" + alone, "result2" + alone), "user"
    except ConversionRefused as e:
        if not (res.ok("result1:user" + alone) and res.ok("result2:user" + alone)):
            raise
        try:
            tf, after = _read_run(fmt, tf, res, "result1:user" + alone, "result2:user" + alone), "assistant"
        except ConversionRefused:
            raise e from None
    tf = _prefix_after_results(fmt, tf, res, after, "result1" + (":user" if after == "user" else "") + alone)
    short = "result:short" + (":alone" if tf.calls_alone else "")
    if tf.renders_calls and tf.max_calls != 1 and res.ok(short):
        msgs, _ = PROBES[short]
        if ChatFormat(replace(fmt.structure, tools=tf), fmt.meta).render(msgs, date=DATE_1) != res[short]:
            tf = replace(tf, results_answer_calls=True)  # the template renders a short run otherwise
    if tf.result_content == "verbatim" and res.ok("result1:ws" + alone):  # trimmed (Qwen3.5's |trim)?
        msgs, _ = PROBES["result1:ws" + alone]
        if not tf.renders_calls:
            msgs = fit_messages(msgs, tf)
        fmt_t = ChatFormat(replace(fmt.structure, tools=replace(tf, result_content="trim")), fmt.meta)
        if fmt_t.render(msgs, date=DATE_1) == res["result1:ws" + alone]:
            tf = replace(tf, result_content="trim")
    return tf


def _prefix_after_results(fmt: ChatFormat, tf: ToolFormat, res: dict, role: str, name: str) -> ToolFormat:
    """``tf`` with ``<role>_prefix_after_results`` where probe ``name`` (a result, then a ``role``
    message) renders the text in place of that turn's prefix otherwise (DeepSeek V4's user message
    continues the user turn its results opened)."""
    if not res.ok(name):
        return tf
    msgs, _ = PROBES[name]
    if not tf.renders_calls:
        msgs = fit_messages(msgs, tf)
    probe = res[name]
    mark = replace(tf, **{role + "_prefix_after_results": _ID_MARK})
    text = ChatFormat(replace(fmt.structure, tools=mark), fmt.meta).render(msgs, date=DATE_1)
    pre, post = text.split(_ID_MARK)
    if ChatFormat(replace(fmt.structure, tools=tf), fmt.meta).render(msgs, date=DATE_1) == probe \
            or not (probe.startswith(pre) and probe.endswith(post) and len(probe) >= len(pre) + len(post)):
        return tf  # as the format renders it, or otherwise: verification says where it differs
    return replace(tf, **{role + "_prefix_after_results": probe[len(pre):len(probe) - len(post)]})


def _read_run(fmt: ChatFormat, tf: ToolFormat, res: dict, one: str, two: str) -> ToolFormat:
    """The result fields read off probes ``one`` and ``two`` (one and two results, then a message)."""
    bare = ChatFormat(replace(fmt.structure, tools=tf), fmt.meta)  # results rendered as their content alone

    def around(name: str, content: str) -> tuple[str, str]:
        msgs, _ = PROBES[name]
        if not tf.renders_calls:  # the template rendered the probe's calls as nothing
            msgs = fit_messages(msgs, tf)
        base = bare.render(msgs, date=DATE_1)
        at = _segment_end(bare, msgs, msgs.index(next(m for m in msgs if m["role"] == "tool")), ("content",))
        at -= len(RESULT_1)
        probe = res[name]
        n_tail = len(base) - at - len(content)
        if probe[:at] != base[:at] or not probe.endswith(base[len(base) - n_tail:]) \
                or len(probe) < len(base):
            k = 0
            while k < min(len(probe), len(base)) and probe[k] == base[k]:
                k += 1
            raise _refuse(f"a tool result ({name}): the text around it differs from an answer-with-calls "
                          f"followed by the next answer: at character {k} the template renders "
                          f"{_show(probe[max(0, k - 20):k + 40])}, the format {_show(base[max(0, k - 20):k + 40])}")
        z = probe[at:len(probe) - n_tail]
        return z, content

    z1, _ = around(one, RESULT_1)
    z2, _ = around(two, RESULT_1 + RESULT_2)
    ids = CALL_ID_1 in z1
    if ids:  # the id of the call a result answers: read the layout with a mark in its place
        z1 = z1.replace(CALL_ID_1, _ID_MARK)
        z2 = z2.replace(CALL_ID_1, _ID_MARK).replace(CALL_ID_2, _ID_MARK)
        if z1.count(_ID_MARK) != 1 or z2.count(_ID_MARK) != 2:
            raise _refuse(f"a tool result: the id of the call it answers shows {z1.count(_ID_MARK)} times in "
                          f"{_show(z1, 160)}")
    if z1.count(RESULT_1) != 1:
        raise _refuse(f"a tool result: its content shows {z1.count(RESULT_1)} times in {_show(z1, 160)}")
    zo, zc = z1.split(RESULT_1)
    r1, r2 = RESULT_1, RESULT_2
    quoted = tf.call_style.dumps(RESULT_1)
    if quoted != RESULT_1 and quoted in z1:  # the content through tojson (Llama 3.1: a string is iterable)
        tf = replace(tf, result_content="json")
        zo, zc = zo[:len(zo) - quoted.index(RESULT_1)], zc[len(quoted) - quoted.index(RESULT_1) - len(RESULT_1):]
        r1, r2 = quoted, tf.call_style.dumps(RESULT_2)
    if not (z2.startswith(zo + r1) and z2.endswith(r2 + zc)) or len(z2) < len(zo + r1 + r2 + zc):
        raise _refuse(f"two consecutive tool results do not render as one result's layout: {_show(z2, 200)}")
    mid = z2[len(zo + r1):len(z2) - len(r2 + zc)]
    if mid == zc + zo:
        fields = dict(result_prefix=zo, result_suffix=zc, grouped=False)
    else:
        parts = _split(mid, zo, zc, longest=True)  # Granite's '|>' ends both: the result's own end is the longest
        # else the text between results as between list items (DeepSeek V4's "\n\n" between them)
        rs, sep, rp = (parts[0], "", parts[1]) if parts is not None else split_between_items(zo, mid, zc)
        fields = dict(results_open=zo[:len(zo) - len(rp)], result_prefix=rp, result_suffix=rs, result_sep=sep,
                      results_close=zc[len(rs):], grouped=True)
    if ids:
        if fields["result_prefix"].count(_ID_MARK) != 1 or any(_ID_MARK in v for k, v in fields.items()
                                                               if k != "result_prefix" and isinstance(v, str)):
            raise _refuse(f"a tool result: the template renders the id of the call it answers ({_show(z1, 160)}) "
                          "elsewhere than in each result's opening, before its content, where the IR renders it")
        fields["result_prefix"], fields["result_id_suffix"] = fields["result_prefix"].split(_ID_MARK)
    return replace(tf, **fields)


#: stands for a call's id while a result's layout is read (no template renders it)
_ID_MARK = "\x00iD\x00"


# ---------------------------------------------------------------------------------------------
# verification


@dataclass(frozen=True)
class ToolCase:
    """One tool verification conversation."""

    label: str
    messages: tuple
    tools: tuple | None
    add_generation_prompt: bool = False

    @property
    def msgs(self) -> list[dict]:
        return json.loads(json.dumps(list(self.messages)))

    @property
    def tool_list(self) -> list | None:
        return None if self.tools is None else json.loads(json.dumps(list(self.tools)))


_NAMES = ["get_weather", "search", "f", "lookup_2", "x"]
_KEYS = ["city", "q", "n", "é", "a b", "", "unit"]


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    k = rng.random()
    if depth > 1 or k < 0.5:
        return rng.choice([None, True, False, 0, -7, 42, 1.5, "", "text", "é 日本", "a\nb", "\"q\"", "\\",
                           "</tool_call>"])
    if k < 0.75:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(_KEYS): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _random_tool(rng: random.Random) -> dict:
    props = {}
    for _ in range(rng.randint(0, 3)):
        spec = {"type": rng.choice(["string", "integer", "number"])}
        if rng.random() < 0.5:
            spec["description"] = _random_text(rng)
        if rng.random() < 0.3:  # more of JSON Schema: what a layout of its own writes key by key
            spec[rng.choice(["enum", "minimum", "default", "items"])] = _json_value(rng)
        props[rng.choice(_KEYS)] = spec
    fn = {"name": rng.choice(_NAMES), "description": _random_text(rng),
          "parameters": {"type": "object", "properties": props, "required": list(props)[:1]}}
    if rng.random() < 0.2:
        fn["strict"] = rng.random() < 0.5
    return {"type": "function", "function": fn}


def _object_arguments(m: dict) -> dict:
    """``m`` with arguments given as a JSON string given as the object instead."""
    if not m.get("tool_calls"):
        return m
    calls = [{**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
             if isinstance(c["function"]["arguments"], str) else c for c in m["tool_calls"]]
    return {**m, "tool_calls": calls}


def _random_args(rng: random.Random) -> Any:
    obj = {rng.choice(_KEYS): _json_value(rng) for _ in range(rng.randint(0, 3))}
    k = rng.random()
    if k < 0.2:
        return json.dumps(obj)
    if k < 0.3:
        return json.dumps(obj, indent=2, ensure_ascii=False)
    return obj


def _random_answer(rng: random.Random, calls: bool, reasoning: bool) -> dict:
    m: dict = {"role": "assistant", "content": _random_text(rng)}
    if calls:
        m["tool_calls"] = [_call(rng.choice(_NAMES), _random_args(rng), f"c{rng.randint(0, 10**8 - 1):08d}")
                           for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            m["content"] = ""
    if reasoning and rng.random() < 0.35:
        m["reasoning_content"] = rng.choice(["", "r", "\nthink\n", _random_text(rng)])
    elif reasoning and rng.random() < 0.2:
        m["content"] = "<think>\nr " + _random_text(rng) + "\n</think>\n\n" + m["content"]
    return m


def _fixed_agent(reasoning: bool) -> list[dict]:
    a1 = {"role": "assistant", "content": "Let me check.",
          "tool_calls": [_call("get_weather", {"city": "Paris"}, "call00001")]}
    if reasoning:
        a1["reasoning_content"] = "I should call the tool."
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather in Paris?"}, a1,
            {"role": "tool", "content": "{\"temp\": 21}", "tool_call_id": "call00001"},
            {"role": "assistant", "content": "",
             "tool_calls": [_call("get_weather", '{"city": "Lyon"}', "call00002"),
                            _call("search", {"q": "é"}, "call00003")]},
            {"role": "tool", "content": "18", "tool_call_id": "call00002"},
            {"role": "tool", "content": "nothing found", "tool_call_id": "call00003"},
            {"role": "assistant", "content": "21 °C in Paris, 18 in Lyon."},
            {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "You're welcome."}]


def tool_verification_cases(*, system: bool, reasoning: bool, string_arguments: bool = True, n_random: int = 80,
                            seed: int = 0) -> list[ToolCase]:
    """The fixed agent conversation (every prefix of it, with and without the system message, with
    tools None, [] and two tools, generation prompt on and off; whole, with an empty and a blank
    system message) plus ``n_random`` seeded random
    agent conversations (tools, calls with object and JSON-string arguments, 0-3 consecutive
    results, ``reasoning_content`` when ``reasoning``).  Calls in transformers' shape, with an id;
    arguments given as a JSON string only when ``string_arguments``."""
    rng = random.Random(seed)
    agent = _fixed_agent(reasoning)
    tool_sets = [None, [], [_random_tool(rng), _random_tool(rng)]]
    cases: list[ToolCase] = []

    def add(label, msgs, tools, gen):
        if not system and msgs and msgs[0]["role"] == "system":
            msgs = msgs[1:]
        if not string_arguments:
            msgs = [_object_arguments(m) for m in msgs]
        if msgs:
            cases.append(ToolCase(label, tuple(msgs), None if tools is None else tuple(tools), gen))

    for cut in range(2, len(agent) + 1):
        for start in (0, 1):
            for t, tools in enumerate(tool_sets):
                for gen in (False, True):
                    add(f"agent conversation, messages {start}..{cut - 1}, tools #{t}", agent[start:cut], tools, gen)
    if agent[0]["role"] == "system":  # an empty or blank system message beside the tools (system_sep_if)
        for blank in ("", " \n"):
            for gen in (False, True):
                add(f"agent conversation, system {blank!r}", [{**agent[0], "content": blank}] + agent[1:],
                    tool_sets[2], gen)
    for k in range(n_random):
        tools = rng.choice([None, [], [_random_tool(rng)], [_random_tool(rng) for _ in range(rng.randint(2, 3))]])
        msgs: list[dict] = []
        if rng.random() < 0.5:
            msgs.append({"role": "system", "content": _random_text(rng)})
        for _ in range(rng.randint(1, 3)):
            msgs.append({"role": "user", "content": _random_text(rng) or rng.choice(NASTY)})
            for _ in range(rng.randint(0, 2)):
                a = _random_answer(rng, True, reasoning)
                msgs.append(a)
                ids = [c["id"] for c in a["tool_calls"]]
                for r in range(rng.choice([len(ids), len(ids), 1, 2])):
                    msgs.append({"role": "tool", "content": rng.choice([_random_text(rng), json.dumps(_json_value(rng))]),
                                 "tool_call_id": ids[r % len(ids)]})
            if rng.random() < 0.75:
                msgs.append(_random_answer(rng, False, reasoning))
        gen = rng.random() < (0.3 if msgs[-1]["role"] == "assistant" else 0.7)
        add(f"random tool conversation #{k}", msgs, tools, gen)
    return cases


#: the answer put before a user message for templates that want user and assistant turns to alternate
ANSWER_BETWEEN = {"role": "assistant", "content": "Done: the results are in."}
#: the conversion note of a template that wants user messages and answers to alternate
ALTERNATE_NOTE = ("the template raises unless user messages and answers alternate (answers with calls and tool "
                  "results aside); the format renders such conversations too (verified with an answer between them)")


def alternate_turns(msgs: list[dict]) -> list[dict]:
    """``msgs`` with an answer (:data:`ANSWER_BETWEEN`) before each user message that follows
    another user message, answers with calls and tool messages aside (what Mistral's templates
    take: they raise otherwise)."""
    out: list[dict] = []
    last_plain = None  # the role of the last user message or answer without calls
    for m in msgs:
        if m["role"] == "user" and last_plain == "user":
            out.append(dict(ANSWER_BETWEEN))
        if m["role"] == "user" or (m["role"] == "assistant" and not m.get("tool_calls")):
            last_plain = m["role"]
        out.append(m)
    return out


def distinct_last_user(msgs: list[dict]) -> list[dict]:
    """``msgs`` with each earlier user message whose content equals the last user message's made
    different (a ``last_user`` format refuses them: Mistral's template renders the list before each)."""
    users = [i for i, m in enumerate(msgs) if m["role"] == "user"]
    if not users:
        return msgs
    last = msgs[users[-1]].get("content")
    return [{**m, "content": f"{m['content']} (earlier)"} if i in users[:-1] and m.get("content") == last else m
            for i, m in enumerate(msgs)]


def fit_messages(msgs: list[dict], tf: ToolFormat, alternate: bool = False, *, split_calls: bool = False
                 ) -> list[dict]:
    """``msgs`` within what a template with the tool format ``tf`` renders (it raises, and the
    format refuses, beyond): at most ``max_calls`` calls per answer (the rest dropped, or with
    ``split_calls`` given as consecutive answers: :func:`one_call_per_answer`), no calls where the
    template renders none (``renders_calls`` False: its answers as without them), no content beside
    calls when ``calls_alone``, user messages and answers alternating when ``alternate``
    (:func:`alternate_turns`), and no earlier user message like the last for a ``last_user`` list
    (:func:`distinct_last_user`)."""
    if tf.max_calls and split_calls:
        msgs = one_call_per_answer(msgs)
    out = []
    for m in msgs:
        if not tf.renders_calls and "tool_calls" in m:  # the template renders answers as without them
            m = {k: v for k, v in m.items() if k != "tool_calls"}
            m["content"] = m.get("content") or ""
        if m.get("tool_calls") and (tf.max_calls or tf.calls_alone):
            m = dict(m)
            if tf.max_calls:
                m["tool_calls"] = m["tool_calls"][:tf.max_calls]
            if tf.calls_alone:
                m["content"] = ""
                m.pop("reasoning_content", None)
        out.append(m)
    if tf.results_answer_calls:
        out = results_per_call(out)
    if alternate:
        out = alternate_turns(out)
    if tf.placement == "last_user":
        out = distinct_last_user(out)
    return out


def results_per_call(msgs: list[dict]) -> list[dict]:
    """``msgs`` with each run of tool results made one result per call of the answer right before
    it (extra results dropped, missing ones added; a run after anything else dropped): what a
    ``results_answer_calls`` format renders."""
    out: list[dict] = []
    i = 0
    while i < len(msgs):
        if msgs[i]["role"] != "tool":
            out.append(msgs[i])
            i += 1
            continue
        j = i
        while j < len(msgs) and msgs[j]["role"] == "tool":
            j += 1
        before = msgs[i - 1] if i else {}
        calls = before.get("tool_calls") or [] if before.get("role") == "assistant" else []
        run = msgs[i:j][:len(calls)]
        run += [{"role": "tool", "content": f"result {k}", "tool_call_id": c.get("id", "")}
                for k, c in enumerate(calls[len(run):], len(run))]
        out.extend(run)
        i = j
    return out


def _fit_cases(cases: list[ToolCase], tf: ToolFormat, alternate: bool = False) -> list[ToolCase]:
    """The verification cases within what the template renders (:func:`fit_messages`)."""
    return [replace(c, messages=tuple(fit_messages(c.msgs, tf, alternate)),
                    tools=c.tools if tf.renders_list else None) for c in cases]


def one_call_per_answer(msgs: list[dict]) -> list[dict]:
    """``msgs`` as a format that takes one call per answer and no content beside calls renders
    them (its template raises on more, or drops the content: ``max_calls``, ``calls_alone``): an
    answer's text (when it is not blank), then each of its calls, as consecutive answers."""
    out: list[dict] = []
    for m in msgs:
        if m["role"] != "assistant" or not m.get("tool_calls"):
            out.append(m)
            continue
        if (m.get("content") or "").strip():
            out.append({"role": "assistant", "content": m["content"]})
        out.extend({"role": "assistant", "content": "", "tool_calls": [c]} for c in m["tool_calls"])
    return out


def _renders_reasoning(fmt: ChatFormat) -> bool:
    try:
        fmt.render([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": "r"}])
        return True
    except MessageError:
        return False


def verify_tools(fmt: ChatFormat, cases: list[ToolCase], results: list[tuple[str, str]], *,
                 inputs: list[tuple[list, list | None]] | None = None, explain: bool = True) -> None:
    """Require byte equality between the template's renders and ``fmt.render`` (with the tools) on
    every tool case; a precise refusal (where, what) otherwise (``explain=False``: a short one,
    for a candidate whose refusal is not reported).  ``inputs``: each case's messages and tools,
    made once for many candidates."""
    from tmplc.convert.common import Case

    inputs = inputs or [(c.msgs, c.tool_list) for c in cases]
    for case, (kind, text), (msgs, tools) in zip(cases, results, inputs):
        if refused_alike(fmt, kind, msgs):
            continue  # the format refuses it too (a MessageError)
        if kind != "ok":
            raise _refuse(f"the template fails on a tool conversation ({case.label}): {text}")
        try:
            mine = fmt.render(msgs, case.add_generation_prompt, tools=tools, date=DATE_1)
        except MessageError as e:
            raise _refuse(f"the recovered tool format cannot render a tool conversation the template renders "
                          f"({case.label}): {e}") from None
        if mine != text:
            if not explain:
                raise _refuse(f"verification on tool conversations: differs on {case.label}")
            c = Case(case.label, case.messages, case.add_generation_prompt)
            e = diagnose(fmt, c, text, mine, what="the template", tools=case.tool_list, date=DATE_1)
            raise _refuse(f"verification on tool conversations: {e.reason}")


def recover_tools(template: str, fmt: ChatFormat, base: dict, limits: Limits, *, n_random: int = 80,
                  seed: int = 0, reverify=None) -> tuple[ChatFormat, list[str]]:
    """``fmt`` (the verified text format of ``template``) with ``structure.tools`` recovered and
    verified (see the module docstring), with notes on what was left unverified, or ConversionRefused
    (category ``tools``) with the reason.
    ``base``: the template variables of the real renders (tokens, vars); ``reverify(fmt)``: the text
    verification, run again when the answer scope (``final_scope``) had to change."""
    run = _Run(template, base, limits)
    names = list(PROBES)
    jobs = [run.job(PROBES[n][0], PROBES[n][1]) for n in names]
    names.append("list1:sys@date2")  # the same probe on another day: a date in the tool header follows it
    jobs.append(run.job(PROBES["list1:sys"][0], PROBES["list1:sys"][1], today=DATE_2))
    out = run.run(jobs)
    res = _Results(zip(names, out))
    notes = []
    # the layout is read off probes whose answers without their calls may be empty: rendered here
    layout = ChatFormat(replace(fmt.structure, refuses_empty_answers=False), fmt.meta)
    try:
        tf = _read_list(layout, res)
        tf, string_args = _read_calls(layout, tf, res)
        if not string_args:
            notes.append("the template raises on tool-call arguments given as a JSON string; " + (
                "so does the format (it writes them key by key: a MessageError)" if tf.per_argument else
                "the format renders them as given (not verified)"))
        tf = _read_results(layout, tf, res)
    except MessageError as e:  # pragma: no cover - the probes are conversations the text format renders
        raise _refuse(f"the text format cannot render a tool probe: {e}") from None
    cand = ChatFormat(replace(fmt.structure, tools=tf), fmt.meta)
    alone = ":alone" if tf.calls_alone or tf.max_calls == 1 else ""
    alternate = res.ok("result1" + alone) and not res.ok("result1:user" + alone)
    if alternate:
        notes.append(ALTERNATE_NOTE)
    cases = _fit_cases(tool_verification_cases(system=fmt.structure.system is not None,
                                               reasoning=_renders_reasoning(fmt), string_arguments=string_args,
                                               n_random=n_random, seed=seed), tf, alternate)
    results = run.run([run.job(c.msgs, c.tool_list, c.add_generation_prompt) for c in cases])
    first: ConversionRefused | None = None
    inputs = [(c.msgs, c.tool_list) for c in cases]  # made once for every candidate below
    scopes = [cand.structure.final_scope] + [s for s in FINAL_SCOPES if s != cand.structure.final_scope]
    seps = [tf.content_sep_if] + [c for c in CONTENT_SEP_IFS if c != tf.content_sep_if and tf.content_sep]
    sys_seps = [tf.system_sep_if] + [c for c in SYSTEM_SEP_IFS if c != tf.system_sep_if and tf.system_sep]
    ends = [False, True] if fmt.structure.assistant.final_suffix is not None and tf.renders_calls else [False]
    # a user message after another opens like one after results (DeepSeek V4), or as the text format's
    merges = [False, True] if tf.user_prefix_after_results is not None else [False]
    # an answer beside its calls trimmed (Qwen3-Coder) or as given (DeepSeek V3.1) where the others
    # render by the rule; likewise an answer right after a result, as given (DeepSeek V3.1)
    plain = not any(r.think is not None for r in (cand.structure.assistant.rule, cand.structure.assistant.final) if r)
    call_answers = ["rule"] + (["trim"] + ["verbatim"] * plain if tf.renders_calls and not tf.calls_alone else [])
    after_results = ["rule"] + ["verbatim"] * plain
    # string arguments holding '<', '&' or a newline in a CDATA section (MiniCPM5)
    cdatas = [False, True] if tf.per_argument else [False]
    tried: set = set()
    for scope, sep_if, sys_if, end_turn, merge, calls, after, wrap in itertools.product(
            scopes, seps, sys_seps, ends, merges, call_answers, after_results, cdatas):
        try:
            f = ChatFormat(replace(cand.structure, final_scope=scope, tools=replace(
                tf, content_sep_if=sep_if, system_sep_if=sys_if, calls_end_turn=end_turn, user_after_user=merge,
                call_answers=calls, answers_after_results=after, arg_cdata=wrap)), fmt.meta)
        except ValueError:
            continue
        if f.structure in tried:  # a choice that means nothing here (normalised away): verified already
            continue
        tried.add(f.structure)
        try:
            verify_tools(f, cases, results, inputs=inputs, explain=first is None)
            if scope != fmt.structure.final_scope and reverify is not None:
                reverify(f)
            return f, notes
        except ConversionRefused as e:
            first = first or e
    assert first is not None
    raise first


#: a tool refusal's reason -> its kind (the corpus report's tally), first match wins
_REFUSAL_KINDS = (
    ("the text part is refused", "the text part is refused"),
    ("the template fails on a tool probe", "the template raises on a tool probe"),
    ("today's date", "a date in the tool header that cannot be placed"),
    ("renders it before the content", "tool list elsewhere (before the system text, in a turn of its own, in "
                                      "another user turn)"),
    ("does not render it", "tool list not rendered"),
    ("str(dict)", "Python str(dict), not JSON"),
    ("not written as json.dumps of the object", "tool list in its own layout (not JSON)"),
    ("joins tools with", "tools joined by a separator (a JSON array)"),
    ("without a system message", "another block without a system message"),
    ("no standalone system block", "no standalone system block"),
    ("a tool call", "call layout the IR cannot carry"),
    ("two tool calls", "call layout the IR cannot carry"),
    ("tool result", "result layout the IR cannot carry"),
    ("verification on tool conversations", "differs on random tool conversations (verification)"),
    ("sandbox", "sandbox limit"),
)


def refusal_kind(reason: str) -> str:
    """A short kind for a tool refusal's reason (grouping for reports)."""
    for key, kind in _REFUSAL_KINDS:
        if key in reason:
            return kind
    return "other"


def _describe_probe(name: str) -> str:
    msgs, tools = PROBES[name]
    roles = " ".join(m["role"] + ("+calls" if m.get("tool_calls") else "") for m in msgs)
    return f"{roles}; tools: {len(tools) if tools else 'none'}"


__all__ = ["ALTERNATE_NOTE", "alternate_turns", "distinct_last_user", "fit_messages", "JSON_STYLES", "one_call_per_answer", "refusal_kind", "TOOL_STATUSES", "ToolCase", "recover_tools",
           "tool_verification_cases", "uses_tools", "verify_tools"]
