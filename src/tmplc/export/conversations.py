"""The conversations every export is checked on: a fixed set (system or not, generation prompt or
not, empty and multi-line contents, unicode) plus seeded random ones (deterministic per export);
for a format with tools, fixed tool conversations too (a tool list, calls, results)."""

from __future__ import annotations

import random

FIXED: tuple[tuple[dict, ...], ...] = tuple(tuple(c) for c in [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"}],
    [{"role": "user", "content": "line one\nline two"}, {"role": "assistant", "content": "ok\n\nsecond paragraph"},
     {"role": "user", "content": "Grüße, 日本語, emoji 🦙"}, {"role": "assistant", "content": "Привет"}],
    [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Q1"},
     {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}],
])

_WORDS = ["hello", "world", "the", "model", "λx", "日本", "🦙", "{{ x }}", "{% if %}", "<b>", "3.14", "don't",
          "naïve", "tab\there", "a,b", "(1)", "#", "..."]


def _content(rng: random.Random) -> str:
    n = rng.randint(1, 8)
    words = [rng.choice(_WORDS) for _ in range(n)]
    text = ""
    for w in words:
        text += (rng.choice([" ", " ", "\n", ", "]) if text else "") + w
    return text


def random_conversations(n: int, seed: int = 0) -> list[list[dict]]:
    """``n`` random conversations (seeded): optional system, 1-3 exchanges, ending with either role."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        msgs: list[dict] = []
        if rng.random() < 0.4:
            msgs.append({"role": "system", "content": _content(rng)})
        for _ in range(rng.randint(1, 3)):
            msgs.append({"role": "user", "content": _content(rng)})
            msgs.append({"role": "assistant", "content": _content(rng)})
        if rng.random() < 0.5:
            msgs.pop()
        out.append(msgs)
    return out


def check_conversations(n_random: int = 12, seed: int = 0) -> list[list[dict]]:
    return [list(c) for c in FIXED] + random_conversations(n_random, seed)


_TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city, today or ahead.",
        "parameters": {"type": "object", "required": ["city"], "properties": {
            "city": {"type": "string", "description": "the city, e.g. Zürich"},
            "days": {"type": "integer", "minimum": 1},
            "unit": {"type": "string", "enum": ["c", "f"]}}}}},
    {"type": "function", "function": {"name": "now", "description": "The time.",
                                      "parameters": {"type": "object", "properties": {}}}},
]


def _call(id_: str, name: str, args: dict) -> dict:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}


_AGENT = [
    {"role": "user", "content": "Weather in Zürich and the time?"},
    {"role": "assistant", "content": "Let me look.", "tool_calls": [
        _call("abcdefghi", "get_weather", {"city": "Zürich", "days": 2, "unit": "c"}),
        _call("jklmnopqr", "now", {})]},
    {"role": "tool", "tool_call_id": "abcdefghi", "content": "{\"c\": 21}"},
    {"role": "tool", "tool_call_id": "jklmnopqr", "content": "12:00"},
    {"role": "assistant", "content": "21 °C at noon."},
    {"role": "user", "content": "And tomorrow?"},
    {"role": "assistant", "content": "", "tool_calls": [_call("stuvwxyz0", "get_weather", {"city": "Zürich"})]},
    {"role": "tool", "tool_call_id": "stuvwxyz0", "content": "rain"},
]

#: (messages, tools): with and without a system message, ending after a result or an answer, no tools
TOOL_CONVERSATIONS: tuple[tuple[tuple[dict, ...], tuple[dict, ...] | None], ...] = (
    (tuple(_AGENT), tuple(_TOOLS)),
    (tuple([{"role": "system", "content": "Be brief."}] + _AGENT[:5]), tuple(_TOOLS[:1])),
    (tuple(_AGENT[:1]), tuple(_TOOLS)),
    (tuple(_AGENT[:4]), None),
)


def check_tool_conversations() -> list[tuple[list[dict], list[dict] | None]]:
    """Fresh copies of :data:`TOOL_CONVERSATIONS` (call arguments as objects, no floats: llama.cpp's
    ``tojson`` writes floats its own way, see docs/tools.md)."""
    import copy

    return [(copy.deepcopy(list(m)), copy.deepcopy(list(t)) if t is not None else None)
            for m, t in TOOL_CONVERSATIONS]
