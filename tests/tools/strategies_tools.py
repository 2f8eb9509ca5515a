"""Hypothesis strategies for tool conversations: tool definitions with nested JSON-schema
parameters, assistant answers with 0-3 tool calls (arguments as objects or JSON strings), tool
results (JSON and plain text), reasoning given as ``reasoning_content`` or inside the content."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from strategies import NASTY, reasoning_text, unreasoned_text

_names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
_words = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
                   st.sampled_from(["", "é", "日本語", "🙂", "a\nb", "\"q\"", "\\", "</tool_call>", "<tools>"]))

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                       st.floats(allow_nan=False, allow_infinity=False, width=32), _words)
json_values = st.recursive(_json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_words, inner, max_size=3)), max_leaves=8)


def _schemas():
    leaf = st.builds(lambda t, d: {"type": t, **({"description": d} if d else {})},
                     st.sampled_from(["string", "integer", "number", "boolean"]), _words)
    enum = st.builds(lambda vals: {"type": "string", "enum": vals}, st.lists(_words, min_size=1, max_size=3))

    def extend(inner):
        obj = st.builds(lambda props, req: {"type": "object", "properties": props,
                                            "required": [k for k in props][:req]},
                        st.dictionaries(_names, inner, max_size=3), st.integers(0, 3))
        arr = st.builds(lambda items: {"type": "array", "items": items}, inner)
        return st.one_of(obj, arr)

    return st.recursive(st.one_of(leaf, enum), extend, max_leaves=6)


@st.composite
def tool_defs(draw):
    """A transformers-style tool definition with nested JSON-schema parameters."""
    params = {"type": "object", "properties": draw(st.dictionaries(_names, _schemas(), max_size=3))}
    fn = {"name": draw(_names), "description": draw(_words), "parameters": params}
    return {"type": "function", "function": fn}


@st.composite
def arguments(draw):
    """A call's arguments: an object, or that object as a JSON string (various layouts)."""
    args = draw(st.dictionaries(_words, json_values, max_size=3))
    form = draw(st.integers(0, 3))
    if form == 0:
        return json.dumps(args, ensure_ascii=draw(st.booleans()))
    if form == 1:
        return json.dumps(args, indent=2)
    return args


@st.composite
def tool_call(draw, names):
    name = draw(st.sampled_from(names)) if names and draw(st.booleans()) else draw(_names)
    call = {"name": name, "arguments": draw(arguments())}
    return {"type": "function", "function": call} if draw(st.integers(0, 4)) else call


plain_content = st.one_of(unreasoned_text, st.sampled_from(NASTY))
answer_content = st.one_of(unreasoned_text, reasoning_text())
result_text = st.one_of(unreasoned_text, json_values.map(json.dumps))


@st.composite
def answer(draw, names, calls: bool, reasoning: bool = True):
    m = {"role": "assistant", "content": draw(answer_content)}
    k = draw(st.integers(0, 3)) if calls else 0
    if k:
        m["tool_calls"] = [draw(tool_call(names)) for _ in range(k)]
        if draw(st.integers(0, 3)) == 0:
            m["content"] = ""
    if reasoning and draw(st.integers(0, 2)) == 0:
        m["reasoning_content"] = draw(st.one_of(st.just(""), unreasoned_text, st.sampled_from(["\n", "\nr\n", "r"])))
        if draw(st.booleans()):
            m["content"] = draw(plain_content)
    return m


@st.composite
def tool_conversations(draw, max_exchanges: int = 3, reasoning: bool = True):
    """(messages, tools): an optional system message, then exchanges of a user message and an
    agent loop (answers with tool calls, each followed by its results), ending anywhere.
    ``reasoning=False``: no ``reasoning_content`` (for formats that render none)."""
    tools = draw(st.lists(tool_defs(), max_size=3))
    names = [t["function"]["name"] for t in tools]
    with_ids = draw(st.booleans())  # OpenAI-style ids: each call's "id", each result's "tool_call_id"
    msgs: list[dict] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(plain_content)})
    for _ in range(draw(st.integers(1, max_exchanges))):
        msgs.append({"role": "user", "content": draw(plain_content)})
        for _ in range(draw(st.integers(0, 2))):
            a = draw(answer(names, calls=True, reasoning=reasoning))
            ids = [f"call_{len(msgs)}_{k}" for k in range(len(a.get("tool_calls", [])))]
            if with_ids and ids:
                a["tool_calls"] = [{**c, "id": i} for c, i in zip(a["tool_calls"], ids)]
            msgs.append(a)
            for k in range(len(a.get("tool_calls", [])) or draw(st.integers(0, 1))):
                r = {"role": "tool", "content": draw(result_text)}
                if with_ids and ids:
                    r["tool_call_id"] = ids[k]
                msgs.append(r)
        if draw(st.integers(0, 3)):
            msgs.append(draw(answer(names, calls=False, reasoning=reasoning)))
    if msgs[-1]["role"] == "system":
        msgs.append({"role": "user", "content": "hi"})
    return msgs, (tools if tools or draw(st.booleans()) else None)


def one_call_answers(msgs: list[dict]) -> list[dict]:
    """``msgs`` as a template that renders one tool call per answer and no content beside it
    (Llama 3.1: it raises on more calls, drops the content, and reads each call's ``function``)
    takes them: tmplc's ``one_call_per_answer`` over calls given in transformers' shape."""
    from tmplc.convert.tools import one_call_per_answer

    shaped = [{**m, "tool_calls": [c if "function" in c else {"type": "function", "function": c}
                                   for c in m["tool_calls"]]} if m.get("tool_calls") else m for m in msgs]
    return one_call_per_answer(shaped)


def mistral_shaped(msgs: list[dict]) -> list[dict]:
    """``msgs`` as Mistral Small 3.2's template takes them: calls in transformers' shape with
    9-character ids, each tool result answering one of them (``tool_call_id``), no content beside
    calls (the template drops it), roles alternating user/assistant after the system message
    (tool messages and answers with calls aside: the template raises otherwise; messages that
    would break it are left out), and no earlier user message equal to the last one (the
    template compares messages by value)."""
    out: list[dict] = []
    expected, ids, n = "user", [], 0
    for m in msgs:
        if m["role"] == "system":
            out.append(m)
        elif m["role"] == "tool":
            out.append({**m, "tool_call_id": ids[len(out) % len(ids)] if ids else "000000000"})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                n += 1
                f = c["function"] if "function" in c else c
                calls.append({"id": f"c{n:08d}", "type": "function", "function": f})
            ids = [c["id"] for c in calls]
            out.append({**m, "content": "", "tool_calls": calls})
        elif m["role"] == expected:
            out.append(m)
            expected = "assistant" if expected == "user" else "user"
    users = [i for i, m in enumerate(out) if m["role"] == "user"]
    for i in users[:-1]:
        if out[i] == out[users[-1]]:
            out[i] = {**out[i], "content": out[i]["content"] + " (earlier)"}
    return out
