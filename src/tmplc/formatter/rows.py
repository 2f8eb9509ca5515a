"""Rows of any shape -> token columns for one batch, every row accounted for.

``RowsJob`` holds what turning rows into training columns needs (format, tokenizer facts,
options, how to normalize rows); ``process_rows(job, numbers, rows)`` reads and normalizes each
row (``tmplc.data``), encodes the usable ones in one ``encode_rows`` call and returns a
``BatchResult``: flat numpy ``ids``/``labels`` with per-row ``lengths`` (cheap to pickle from a
worker and to turn into Arrow columns) and a ``FormatSummary`` of the batch in which every
rejected row is named.  A row whose encoding raises something unexpected is isolated and
rejected (the batch is re-encoded row by row), so one hostile row never aborts a run.

This is the single batch function behind ``tmplc format``, ``format_dataset`` and
``tokenize_batch``.

Tools: each dict row's ``job.tools_column`` (``tmplc.data.normalize.row_tools``) is passed to the
formatter with that row's messages.  When the format has tool support, each written row also
counts its trained tool-call tokens (``BatchResult.tool_calls``, the summary's
``tool_call_tokens``), exactly as ``ChatFormat.tokenize`` gives ``n_tool_call_tokens``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Sequence

from tmplc.errors import MessageError
from tmplc.formatter.core import IGNORE, Options, encode_rows
from tmplc.formatter.summary import FormatSummary


@dataclass
class RowsJob:
    fmt: Any
    info: Any                      # TokenizerInfo
    options: Options
    source: str = "auto"
    merged: Any = None             # tmplc.data.MergedPrompt | None
    output_column: str = "output"
    default_system: str | None = None
    messages_column: str | None = None   # a column holding the messages (any alias shape)
    tools_column: str | None = "tools"   # a column holding the row's tool definitions (None: not read)


@dataclass
class BatchResult:
    rows: list[int]                # row numbers written, in order
    ids: Any                       # numpy int32, all rows concatenated
    labels: Any                    # numpy int32
    lengths: Any                   # numpy int64, tokens per row
    summary: FormatSummary
    first_problem: tuple | None = None   # (row, message index, bare message, kind): first rejected row
    first_error: tuple | None = None     # the same for the first invalid/error row (not dropped)
    columns: set = field(default_factory=set)      # columns seen (for --merged-prompt checks)
    sources: Counter = field(default_factory=Counter)
    statuses: list | None = None   # per input row, when asked: "ok" | "truncated" | "kind: reason"
    lists: list | None = None      # per input row, when asked: (ids, labels) or None
    special_rows: list = field(default_factory=list)   # rows with special-token text in content
    payload: Any = None            # what is written, when made where the batch was encoded
    facts: Any = None              # DataFacts: for the doctor's data checks (datacheck.py)
    tool_calls: Any = None         # numpy int64, trained tool-call tokens per written row (tool formats)
    call_counts: list | None = None  # per input row, with ``lists``: that count, or None (not written)


def has_tool_support(fmt: Any) -> bool:
    """Whether rows of ``fmt`` count tool-call tokens (the format renders tools)."""
    return getattr(fmt.structure, "tools", None) is not None


def normalize_one(job: RowsJob, row: Any) -> tuple[list[dict], str]:
    """(messages, shape) for one row of any accepted kind; raises RowProblem / MessageError."""
    from tmplc.data.normalize import _messages, normalize_row

    if isinstance(row, (list, tuple)):          # already a conversation
        msgs = _messages(row, "conversation")
        if job.default_system is not None and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": job.default_system})
        return msgs, "messages"
    if job.messages_column and isinstance(row, dict) and job.messages_column in row \
            and job.merged is None and job.source == "auto":
        msgs = _messages(row[job.messages_column], job.messages_column)
        if job.default_system is not None and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": job.default_system})
        return msgs, "openai" if job.messages_column == "messages" else job.messages_column
    return normalize_row(row, source=job.source, merged=job.merged, output_column=job.output_column,
                         default_system=job.default_system)


_ROLES = frozenset(("system", "user", "assistant"))


def _canonical_ok(job: RowsJob) -> bool:
    """Whether a row ``{"messages": [...]}`` normalizes as the openai shape under this job."""
    return job.merged is None and job.source in ("auto", "openai") and job.messages_column in (None, "messages")


def _canonical(row: Any, default_system: str | None) -> list[dict] | None:
    """The messages of a row already in the canonical shape, ``{"messages": [{"role": "system" |
    "user" | "assistant", "content": str}, ...]}`` and nothing else, as ``normalize_one`` gives
    them; None for any other row (``normalize_one`` reads it).  Only for rows whose text is known
    to be valid Unicode (``parse_line``'s ``take``): the lone-surrogate check is skipped."""
    if type(row) is not dict or len(row) != 1:
        return None
    items = row.get("messages")
    if type(items) is not list or not items:
        return None
    for m in items:
        if type(m) is not dict or len(m) != 2:
            return None
        role = m.get("role")
        if type(m.get("content")) is not str or type(role) is not str or role not in _ROLES:
            return None
    out = list(items)  # the parsed message dicts themselves: they hold exactly role and content
    if default_system is not None and out[0]["role"] != "system":
        out.insert(0, {"role": "system", "content": default_system})
    return out


def _reason(e: Exception) -> tuple[int | None, str, str]:
    """(message index, reason as reported, bare message)."""
    if isinstance(e, MessageError):
        return e.index, (e.message if e.index is None else f"message {e.index}: {e.message}"), e.message
    return None, str(e), str(e)


def _encode_safely(job: RowsJob, convs: list, numbers: list[int], tools: list | None = None) -> list:
    """encode_rows, or (when it raises) row by row, an unexpected exception rejecting its row.
    ``tools``: per conversation, its tool definitions or None (None: no row has any)."""
    from tmplc.formatter.core import RowResult

    try:
        return encode_rows(job.fmt, convs, job.info, job.options, row_numbers=numbers, tools=tools)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception:
        if len(convs) == 1:
            raise
    out = []
    for j, (c, n) in enumerate(zip(convs, numbers)):
        try:
            out.extend(encode_rows(job.fmt, [c], job.info, job.options, row_numbers=[n],
                                   tools=None if tools is None else [tools[j]]))
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:
            out.append(RowResult(status="error", reason=f"cannot be tokenized: {type(e).__name__}: "
                                                        f"{str(e).splitlines()[0][:200] if str(e) else ''}"))
    return out


def process_rows(job: RowsJob, numbers: Sequence[int], rows: Sequence[Any], *, statuses: bool = False,
                 lists: bool = False, track_columns: bool = False) -> BatchResult:
    """Normalize and encode one batch (see the module docstring)."""
    import numpy as np

    from tmplc.data.merged import RowProblem
    from tmplc.data.normalize import row_tools
    from tmplc.formatter.core import DOUBLE_BOS
    from tmplc.formatter.datacheck import DataFacts, starts_with_bos

    with_calls = has_tool_support(job.fmt)
    summary = FormatSummary(rows_in=len(rows), tool_call_tokens=0 if with_calls else None)
    facts = DataFacts()
    bos_text = job.info.bos_token
    maxlen = job.options.max_seq_length
    first = first_err = None
    columns: set = set()
    sources: Counter = Counter()
    convs, conv_rows, conv_pos, conv_tools = [], [], [], []
    status_list: list | None = [None] * len(rows) if statuses else None
    from tmplc.data.readers import RawLine, parse_line

    # rows already in the canonical shape skip normalizing (see _canonical)
    take = partial(_canonical, default_system=job.default_system) if _canonical_ok(job) else None
    for k, (n, row) in enumerate(zip(numbers, rows)):
        msgs = None
        if isinstance(row, RawLine):
            row, msgs = parse_line(row, take)
        if track_columns and isinstance(row, dict):
            columns.update(row)
        try:
            if msgs is not None:  # a canonical row: exactly {"messages": [...]}, so no tools column
                kind, tools = "openai", None
            else:
                msgs, kind = normalize_one(job, row)
                tools = row_tools(row, job.tools_column)
        except (RowProblem, MessageError) as e:
            idx, why, bare = _reason(e)
            summary.reject(n, "invalid", why)
            first = first or (n, idx, bare, "invalid")
            first_err = first_err or first
            if status_list is not None:
                status_list[k] = f"invalid: {why}"
            continue
        sources[kind] += 1
        if bos_text and starts_with_bos(msgs, bos_text):
            facts.double_bos.append(n)
        convs.append(msgs)
        conv_rows.append(n)
        conv_pos.append(k)
        conv_tools.append(tools)
    any_tools = any(t is not None for t in conv_tools)
    results = _encode_safely(job, convs, conv_rows, conv_tools if any_tools else None) if convs else []
    out_rows: list[int] = []
    id_lists: list = []
    label_lists: list = []
    per_row: list | None = [None] * len(rows) if lists else None
    call_list: list[int] = []
    per_row_calls: list | None = [None] * len(rows) if lists and with_calls else None
    specials: list = []
    for n, k, r in zip(conv_rows, conv_pos, results):
        if maxlen is not None and r.full_tokens:
            facts.rows.append(n)
            facts.lengths.append(r.full_tokens)
            facts.trained.append(r.full_trained)
            if r.full_tokens > maxlen:
                facts.cut[n] = r.cut_trained
        if r.reason == DOUBLE_BOS:
            facts.double_bos.append(n)
        if r.special_in_content:
            summary.special_token_rows += 1
            specials.append(n)
        if r.input_ids is not None and r.status in ("ok", "truncated"):
            summary.rows_out += 1
            summary.tokens += r.n_tokens
            summary.trained_tokens += r.n_trained
            if r.status == "truncated":
                summary.truncated += 1
            out_rows.append(n)
            id_lists.append(r.input_ids)
            label_lists.append(r.labels)
            if with_calls:
                calls = r.n_tool_call_trained or 0
                call_list.append(calls)
                summary.tool_call_tokens += calls
                if per_row_calls is not None:
                    per_row_calls[k] = calls
            if status_list is not None:
                status_list[k] = r.status
            if per_row is not None:
                per_row[k] = (r.input_ids, r.labels)
            continue
        kind = "dropped" if r.status == "dropped" else "error"
        idx = getattr(r.error, "index", None)
        bare = r.error.message if isinstance(r.error, MessageError) else r.reason
        summary.reject(n, kind, r.reason)
        first = first or (n, idx, bare, kind)
        if kind == "error":
            first_err = first_err or (n, idx, bare, kind)
        if status_list is not None:
            status_list[k] = f"{kind}: {r.reason}"
    lengths = np.fromiter((len(x) for x in id_lists), dtype=np.int64, count=len(id_lists))
    total = int(lengths.sum())
    ids = _flat(np, id_lists, total)
    labels = _flat(np, label_lists, total)
    summary.rejected.sort(key=lambda e: e[0])
    summary.examples = summary.rejected[:len(summary.examples)]
    summary.check()
    facts.double_bos.sort()
    tool_calls = np.asarray(call_list, dtype=np.int64) if with_calls else None
    return BatchResult(out_rows, ids, labels, lengths, summary, first, first_err, columns, sources, status_list,
                       per_row, specials, facts=facts, tool_calls=tool_calls, call_counts=per_row_calls)


def _flat(np, lists: list, total: int | None = None) -> Any:
    """The lists concatenated into one int32 array (``np.fromiter`` over a chain with the count
    known: no intermediate list)."""
    from itertools import chain

    if total is None:
        total = sum(map(len, lists))
    return np.fromiter(chain.from_iterable(lists), dtype=np.int32, count=total)


def assistant_mask(labels):
    """1 where a label is trained (numpy)."""
    return (labels != IGNORE).astype("int8")
