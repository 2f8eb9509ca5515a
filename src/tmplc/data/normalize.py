"""Normalizers: rows in the common dataset shapes -> ``[{"role", "content"}, ...]``.

Detected per row, in this order (``source="auto"``; or force one with ``source=``):

* **merged** (when ``merged_prompt`` is given): user = the merged prompt, assistant = the
  ``output_column`` value (see ``tmplc.data.merged``).
* **openai**: ``messages``: a list of ``{"role", "content"}``.
* **sharegpt**: ``conversations``: a list of ``{"from", "value"}``.
* **alpaca**: ``instruction`` / ``input`` (optional) / ``output``: user = instruction, plus
  ``"\\n\\n" + input`` when input is non-empty; an optional ``system`` column.
* **prompt/completion**: ``prompt`` / ``completion``, as strings (user / assistant) or as message
  lists (TRL's conversational prompt-completion).

Message keys and role names are matched case-insensitively with aliases: role key ``role`` /
``from`` / ``speaker``, content key ``content`` / ``value`` / ``text``; roles ``system``;
``user`` = human / user / input / prompter / question / instruction; ``assistant`` = gpt /
assistant / output / bot / model / answer / chatgpt / response.  Anything else rejects the row,
naming the message.

Default system message: with ``default_system``, a conversation without a system message gets
one as message 0.

``conversation_extension=N`` (N >= 2) joins each row with N-1 other rows drawn at random
(``random.Random(seed)``, with replacement, from the normalized rows) into one multi-turn
conversation: the row's own messages, then the others' messages without their system message.
The number of rows does not change, so rows in = rows out + rows rejected still holds.

Tool definitions (``row_tools``): a row may carry a ``tools`` column beside its messages, in any
shape: a list of tool definitions (``[{"type": "function", "function": {...}}]``), or a JSON
string that decodes to one (CSV cells, or Parquet files that store it as text).  Keys whose value
is null are dropped from a list given as values (Arrow and Parquet fill a struct's absent fields
with null, so there a null cannot be told from an absent key); a JSON string is kept exactly.
Null, an empty string and an empty list mean no tools.  Anything else rejects the row, naming the
column and what to give.  Messages keep ``tool_calls``, ``reasoning_content``, ``thinking``,
``tool_call_id`` and ``name`` unchanged (``TOOL_KEYS``).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from tmplc.data.merged import MergedPrompt, RowProblem, _empty, cell_text, checked_text
from tmplc.data.readers import BadRow, RawLine, _json_type, materialize, parse_json_value
from tmplc.errors import MessageError, TmplcError

ROLE_ALIASES = {
    "system": "system",
    "user": "user", "human": "user", "input": "user", "prompter": "user", "question": "user",
    "instruction": "user",
    "assistant": "assistant", "gpt": "assistant", "output": "assistant", "bot": "assistant",
    "model": "assistant", "answer": "assistant", "chatgpt": "assistant", "response": "assistant",
    "tool": "tool",
}
#: message keys kept as they are (tool calls, reasoning, tool results: see docs/tools.md)
TOOL_KEYS = ("tool_calls", "reasoning_content", "thinking", "tool_call_id", "name")
_EXACT_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
ROLE_KEYS = ("role", "from", "speaker")
CONTENT_KEYS = ("content", "value", "text")
SOURCES = ("auto", "openai", "sharegpt", "alpaca", "prompt_completion", "merged")


@dataclass
class NormalizeReport:
    rows_in: int = 0
    rows_out: int = 0
    rejected: Counter = field(default_factory=Counter)   # reason -> count
    examples: list = field(default_factory=list)         # (row, reason), first 20
    sources: Counter = field(default_factory=Counter)    # detected shape -> count
    rejected_rows: list = field(default_factory=list)    # (row, reason), every rejected row

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def reject(self, row: int, reason: str) -> None:
        key = reason.split(": ", 1)[1] if reason.startswith("message ") else reason
        self.rejected[key] += 1
        self.rejected_rows.append((row, reason))
        if len(self.examples) < 20:
            self.examples.append((row, reason))


def _ci_get(d: dict, keys: Sequence[str]):
    low = {str(k).lower(): k for k in d}
    for k in keys:
        if k in low:
            return low[k], d[low[k]]
    return None, None


def _messages(items: Any, what: str) -> list[dict]:
    if not isinstance(items, (list, tuple)):
        raise RowProblem(f"{what} must be a list of messages, got {type(items).__name__}")
    out = []
    for i, m in enumerate(items):
        if type(m) is dict and len(m) == 2 and "role" in m and "content" in m:  # the common case, fast
            role, content = m["role"], m["content"]
            if type(content) is str and type(role) is str and role in _EXACT_ROLES:
                if not content.isascii():
                    try:
                        checked_text(content, "content")
                    except RowProblem as e:
                        raise MessageError(i, str(e)) from None
                out.append({"role": _EXACT_ROLES[role], "content": content})
                continue
        if not isinstance(m, dict):
            raise MessageError(i, f"a message must be an object, got {type(m).__name__}")
        rk, role = _ci_get(m, ROLE_KEYS)
        if rk is None:
            raise MessageError(i, f"no role key (one of {', '.join(ROLE_KEYS)}) in {sorted(m)}")
        ck, content = _ci_get(m, CONTENT_KEYS)
        if ck is None:
            raise MessageError(i, f"no content key (one of {', '.join(CONTENT_KEYS)}) in {sorted(m)}")
        norm = ROLE_ALIASES.get(str(role).strip().lower()) if role is not None else None
        if norm is None:
            raise MessageError(i, f"unknown role {role!r} (known: {', '.join(sorted(ROLE_ALIASES))})")
        if content is None:
            content = ""  # one rule (format and render): null content is empty content
        elif isinstance(content, (bytes, bytearray)):
            try:
                content = bytes(content).decode("utf-8")
            except UnicodeDecodeError:
                raise MessageError(i, "content holds bytes that are not UTF-8 text") from None
        if not isinstance(content, str):
            raise MessageError(i, f"content must be text, got {type(content).__name__}")
        try:
            checked_text(content, "content")
        except RowProblem as e:
            raise MessageError(i, str(e)) from None
        msg = {"role": norm, "content": content}
        for key in TOOL_KEYS:
            if m.get(key) is not None:
                msg[key] = m[key]
        out.append(msg)
    if not out:
        raise RowProblem(f"{what} is empty")
    return out


def _without_nulls(v: Any) -> Any:
    """``v`` with every dict key whose value is None removed, recursively (Arrow's null-filled
    struct fields)."""
    if isinstance(v, dict):
        return {k: _without_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_without_nulls(x) for x in v]
    return v


def row_tools(row: Any, column: str | None = "tools") -> list | None:
    """The row's tool definitions from its ``column`` (see the module docstring), or None when it
    has none; raises RowProblem saying what is wrong and what to give."""
    if not column or not isinstance(row, dict):
        return None
    key, value = _ci_get(row, (column,))
    if key is None or value is None or (isinstance(value, float) and value != value):
        return None
    what = f"column {key!r}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = cell_text(value, what)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = parse_json_value(checked_text(value, what), what)
        except ValueError as e:
            raise RowProblem(f"{e}; give the tools as a JSON list of tool definitions") from None
        if value is None:
            return None
        if not isinstance(value, list):
            raise RowProblem(f"{what} is a JSON {_json_type(value)}, not a list of tool definitions "
                             '([{"type": "function", "function": {"name", "description", "parameters"}}])')
    elif isinstance(value, (list, tuple)):
        value = _without_nulls(value)
    else:
        raise RowProblem(f"{what} must be a list of tool definitions or a JSON string holding one, got "
                         f"{_json_type(value)} (a row without tools: null, \"\" or [])")
    return list(value) or None


def _text(v: Any, col: str) -> str:
    if v is None or (isinstance(v, float) and v != v):
        raise RowProblem(f"column {col!r} is missing or null")
    return cell_text(v, f"column {col!r}")


def _column(row: dict, name: str, kind: str):
    key, value = _ci_get(row, (name,))
    if key is None:
        raise RowProblem(f"no {name!r} column (the {kind} shape needs it); columns: {sorted(map(str, row))}")
    return value


def detect(row: dict, merged: MergedPrompt | None = None) -> str:
    if merged is not None:
        return "merged"
    keys = {str(k).lower() for k in row}
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt_completion"
    raise RowProblem(f"no known shape: columns {sorted(row)} (expected messages, conversations, "
                     "instruction/input/output, prompt/completion, or a merged_prompt)")


def normalize_row(row: Any, *, source: str = "auto", merged: MergedPrompt | None = None,
                  output_column: str = "output", default_system: str | None = None) -> tuple[list[dict], str]:
    """(messages, detected source) for one row; raises RowProblem / MessageError with the reason."""
    if isinstance(row, BadRow):
        raise RowProblem(row.reason)
    if isinstance(row, RawLine):
        row = materialize(row)
        if isinstance(row, BadRow):
            raise RowProblem(row.reason)
    if not isinstance(row, dict):
        raise RowProblem(f"a row must be an object with columns, got {_json_type(row)}")
    kind = detect(row, merged) if source == "auto" else source
    if kind == "merged":
        if merged is None:
            raise TmplcError("source='merged' needs a merged_prompt")
        msgs = [{"role": "user", "content": merged.render(row)},
                {"role": "assistant", "content": _text(row.get(output_column), output_column)}]
    elif kind == "openai":
        msgs = _messages(_column(row, "messages", kind), "messages")
    elif kind == "sharegpt":
        msgs = _messages(_column(row, "conversations", kind), "conversations")
    elif kind == "alpaca":
        instr = _text(_column(row, "instruction", kind), "instruction")
        inp = _ci_get(row, ("input",))[1]
        user = instr + ("\n\n" + cell_text(inp, "column 'input'") if not _empty(inp) else "")
        msgs = [{"role": "user", "content": user},
                {"role": "assistant", "content": _text(_column(row, "output", kind), "output")}]
        sys_ = _ci_get(row, ("system",))[1]
        if not _empty(sys_):
            msgs.insert(0, {"role": "system", "content": cell_text(sys_, "column 'system'")})
    elif kind == "prompt_completion":
        p = _column(row, "prompt", kind)
        c = _column(row, "completion", kind)
        pm = _messages(p, "prompt") if isinstance(p, list) else [{"role": "user", "content": _text(p, "prompt")}]
        cm = _messages(c, "completion") if isinstance(c, list) else \
            [{"role": "assistant", "content": _text(c, "completion")}]
        msgs = pm + cm
    else:
        raise TmplcError(f"unknown source {kind!r}; one of {', '.join(SOURCES)}")
    if default_system is not None and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": default_system})
    return msgs, kind


def normalize_rows(rows: Sequence[Any], *, source: str = "auto", merged_prompt: str | None = None,
                   output_column: str = "output", default_system: str | None = None,
                   conversation_extension: int = 1, seed: int = 3407,
                   on_error: str = "skip") -> tuple[list[tuple[int, list[dict]]], NormalizeReport]:
    """Normalize rows -> ([(row number, messages)], report).  ``on_error``: skip (count, report) |
    raise (MessageError naming the 0-based row)."""
    if on_error not in ("skip", "raise"):
        raise TmplcError("on_error must be 'raise' or 'skip'")
    if source not in SOURCES:
        raise TmplcError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    merged = MergedPrompt.parse(merged_prompt) if merged_prompt is not None else None
    if merged is not None:
        cols: dict = {}
        for r in rows:
            if isinstance(r, dict):
                cols.update(dict.fromkeys(r))
        needed = merged.columns + [output_column]
        missing = [c for c in needed if c not in cols]
        if missing and rows:
            raise TmplcError(f"merged_prompt/output column(s) {missing} do not exist in the data; "
                             f"columns: {sorted(cols)}")
    report = NormalizeReport(rows_in=len(rows))
    out: list[tuple[int, list[dict]]] = []
    for n, row in enumerate(rows):
        try:
            msgs, kind = normalize_row(row, source=source, merged=merged, output_column=output_column,
                                       default_system=default_system)
        except (RowProblem, MessageError) as e:
            reason = str(e)
            if on_error == "raise":
                idx = e.index if isinstance(e, MessageError) else None
                raise MessageError(idx, e.message if isinstance(e, MessageError) else reason, row=n) from None
            report.reject(n, reason)
            continue
        report.sources[kind] += 1
        out.append((n, msgs))
    if conversation_extension and conversation_extension > 1 and out:
        rng = random.Random(seed)
        base = [m for _, m in out]
        extended = []
        for n, msgs in out:
            joined = list(msgs)
            for _ in range(conversation_extension - 1):
                other = base[rng.randrange(len(base))]
                joined.extend(m for m in other if m["role"] != "system")
            extended.append((n, joined))
        out = extended
    report.rows_out = len(out)
    assert report.rows_in == report.rows_out + report.rows_rejected
    return out, report
