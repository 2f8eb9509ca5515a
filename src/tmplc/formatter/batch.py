"""The batched form: a picklable callable for ``datasets.Dataset.map(batched=True, num_proc=N)``.

::

    fn = tmplc.formatter.tokenize_batch(fmt, tokenizer, policy="assistant", max_seq_length=4096)
    ds = ds.map(fn, batched=True, num_proc=8, remove_columns=ds.column_names, with_indices=True)

Rows are read as ``tmplc format`` reads them: a ``messages_column`` holding messages (OpenAI
``role``/``content`` or ShareGPT ``from``/``value``, any alias), or whole rows in any shape
(ShareGPT ``conversations``, Alpaca, prompt/completion, or ``merged_prompt``; see
``tmplc.data``).  Numbers in merged prompts follow ``tmplc.data.merged.cell_text``.

The output has ``input_ids``, ``labels``, ``attention_mask`` and ``assistant_masks`` (columns HF
Trainer and TRL's SFTTrainer accept: TRL skips its own tokenization when ``input_ids`` is
present and uses ``labels``).  No row is ever dropped without a count the caller sees:

* ``on_error="raise"`` (the default): a row that cannot be read, rendered or trained (no
  trainable token, too long with ``truncation="drop"``) raises ``MessageError`` / ``RowDropped``
  naming the row (the dataset index with ``with_indices=True``, else the position in the batch).
* ``on_error="skip"``: every row is kept, with ``tmplc_status`` ("ok", "truncated", or
  "invalid: why" / "error: why" / "dropped: why" with empty token lists), ``tmplc_special``,
  ``tmplc_tokens`` and ``tmplc_trained``; drop the rejected rows with
  ``ds.filter(lambda s: s in ("ok", "truncated"), input_columns="tmplc_status")``, or use
  ``format_dataset``, which counts and filters (a ``FormatSummary``).

``keep_status=True`` adds the status columns in raise mode too.

Tools: a ``tools_column`` (default ``"tools"``) beside the messages gives each row's tool
definitions (a list of tool dicts, or a JSON string of one; see ``tmplc.data.normalize.row_tools``).
With a format that has tool support, the output also has ``n_tool_call_tokens`` (per row, as
``ChatFormat.tokenize`` gives it; 0 for a row without tool calls) and ``FormatSummary`` totals it
(``tool_call_tokens``).  A row with tools for a format without tool support is rejected like any
row the format cannot render.
"""

from __future__ import annotations

from typing import Any

from tmplc.errors import MessageError, TmplcError
from tmplc.formatter.core import IGNORE, Options, RowDropped, make_options
from tmplc.formatter.rows import RowsJob, process_rows
from tmplc.formatter.summary import FormatSummary

OUT_COLUMNS = ("input_ids", "labels", "attention_mask", "assistant_masks")
TOOL_CALLS = "n_tool_call_tokens"
ON_ERROR = ("raise", "skip")


class BatchTokenizer:
    """``fn(batch, indices=None) -> columns``: pure function of a batch (picklable; caches rebuilt
    per process)."""

    def __init__(self, fmt, tokenizer, options: Options, *, messages_column: str | None = "messages",
                 keep_status: bool = False, row_column: str | None = None, on_error: str = "raise",
                 source: str = "auto", merged_prompt: str | None = None, output_column: str = "output",
                 default_system: str | None = None, tools_column: str | None = "tools") -> None:
        if on_error not in ON_ERROR:
            raise TmplcError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        from tmplc.data.merged import MergedPrompt
        from tmplc.data.normalize import SOURCES

        if source not in SOURCES:
            raise TmplcError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
        self.fmt = fmt
        self.tokenizer = tokenizer
        self.options = options
        self.messages_column = messages_column
        self.keep_status = keep_status
        self.row_column = row_column
        self.on_error = on_error
        self.source = source
        self.merged = MergedPrompt.parse(merged_prompt) if merged_prompt is not None else None
        self.output_column = output_column
        self.default_system = default_system
        self.tools_column = tools_column

    def __getstate__(self) -> dict:
        # carry the tokenizer as its JSON + special tokens, not the HF object: pickling and
        # datasets' fingerprint hashing of an HF tokenizer object take seconds
        from tmplc.formatter.tokenizer_info import tokenizer_info

        state = dict(self.__dict__)
        state["tokenizer"] = None
        state["tokenizer_parts"] = tokenizer_info(self.tokenizer).parts()
        return state

    def __setstate__(self, state: dict) -> None:
        from tmplc.formatter.tokenizer_info import TokenizerInfo

        parts = state.pop("tokenizer_parts", None)
        self.__dict__.update(state)
        if parts is not None:
            self.tokenizer = TokenizerInfo.from_parts(*parts)

    def _job(self) -> RowsJob:
        from tmplc.formatter.tokenizer_info import tokenizer_info

        return RowsJob(self.fmt, tokenizer_info(self.tokenizer), self.options, source=self.source,
                       merged=self.merged, output_column=self.output_column, default_system=self.default_system,
                       messages_column=self.messages_column, tools_column=self.tools_column)

    def _rows(self, batch: dict[str, list]) -> list:
        mc = self.messages_column
        if mc and mc in batch and self.merged is None and self.source == "auto":
            tc = self.tools_column
            if tc and tc in batch and tc != mc:  # each row's messages with its tools
                return [{mc: m, tc: t} for m, t in zip(batch[mc], batch[tc])]
            return list(batch[mc])
        keys = list(batch)
        n = len(batch[keys[0]]) if keys else 0
        return [{k: batch[k][i] for k in keys} for i in range(n)]

    def __call__(self, batch: dict[str, list], indices: list[int] | None = None) -> dict[str, list]:
        rows = self._rows(batch)
        if indices is not None:
            numbers = list(indices)
        elif self.row_column and self.row_column in batch:
            numbers = list(batch[self.row_column])
        else:
            numbers = list(range(len(rows)))
        res = process_rows(self._job(), numbers, rows, statuses=True, lists=True)
        if self.on_error == "raise" and res.first_problem is not None:
            row, idx, msg, kind = res.first_problem
            where = "" if indices is not None or self.row_column else " (position in the batch; pass " \
                "with_indices=True to Dataset.map for dataset row numbers)"
            hint = "; on_error='skip' keeps every row with a tmplc_status column instead"
            if kind == "dropped":
                raise RowDropped(msg + where + hint, row=row)
            raise MessageError(idx, msg + where + hint, row=row)
        status_cols = self.keep_status or self.on_error == "skip"
        out: dict[str, list] = {c: [] for c in OUT_COLUMNS}
        calls = res.call_counts
        if calls is not None:
            out[TOOL_CALLS] = []
        if status_cols:
            out.update(tmplc_status=[], tmplc_special=[], tmplc_tokens=[], tmplc_trained=[])
            if self.row_column:
                out[self.row_column] = []
        specials = set(res.special_rows)
        for k, (status, pair) in enumerate(zip(res.statuses, res.lists)):
            if pair is None and not status_cols:
                continue
            ids, labels = pair if pair is not None else ([], [])
            out["input_ids"].append(ids)
            out["labels"].append(labels)
            out["attention_mask"].append([1] * len(ids))
            out["assistant_masks"].append([0 if x == IGNORE else 1 for x in labels])
            if calls is not None:
                out[TOOL_CALLS].append(calls[k] or 0)
            if status_cols:
                out["tmplc_status"].append(status)
                out["tmplc_special"].append(numbers[k] in specials)
                out["tmplc_tokens"].append(len(ids))
                out["tmplc_trained"].append(len(labels) - labels.count(IGNORE))
                if self.row_column:
                    out[self.row_column].append(numbers[k])
        return out


def tokenize_batch(fmt, tokenizer, *, policy=None, max_seq_length: int | None = None,
                   truncation: str = "truncate", special_tokens: str = "text", backend: str = "auto",
                   messages_column: str | None = "messages", keep_status: bool = False, on_error: str = "raise",
                   source: str = "auto", merged_prompt: str | None = None, output_column: str = "output",
                   default_system: str | None = None, tools_column: str | None = "tools") -> BatchTokenizer:
    """A picklable ``batch -> columns`` callable for ``Dataset.map(batched=True, num_proc=N)``.

    Options as in ``tokenize_messages``; rows and ``on_error`` as in the module docstring."""
    return BatchTokenizer(fmt, tokenizer, make_options(policy, max_seq_length, truncation, special_tokens,
                                                       backend),
                          messages_column=messages_column, keep_status=keep_status, on_error=on_error,
                          source=source, merged_prompt=merged_prompt, output_column=output_column,
                          default_system=default_system, tools_column=tools_column)


def summarize_status(summary: FormatSummary, status: list[str], special: list[bool], tokens: list[int],
                     trained: list[int], rows: list[int] | None, tool_calls: list[int] | None = None) -> None:
    """Fold status columns (whole columns, never row by row from a Dataset) into a summary.
    ``tool_calls``: the ``n_tool_call_tokens`` column (a format with tool support)."""
    if tool_calls is not None:
        summary.tool_call_tokens = (summary.tool_call_tokens or 0) + sum(
            c for c, s in zip(tool_calls, status) if s in ("ok", "truncated"))
    for k, s in enumerate(status):
        row = rows[k] if rows is not None else k
        if special[k]:
            summary.special_token_rows += 1
        if s in ("ok", "truncated"):
            summary.rows_out += 1
            summary.tokens += tokens[k]
            summary.trained_tokens += trained[k]
            if s == "truncated":
                summary.truncated += 1
            continue
        kind, _, reason = s.partition(": ")
        summary.reject(row, kind if kind in ("invalid", "dropped") else "error", reason)


def format_dataset(fmt, data: Any, tokenizer, *, policy=None, max_seq_length: int | None = None,
                   truncation: str = "truncate", special_tokens: str = "text", backend: str = "auto",
                   messages_column: str | None = "messages", num_proc: int | None = None, batch_size: int = 1000,
                   on_error: str = "skip", row_column: str | None = None, desc: str = "tmplc format",
                   source: str = "auto", merged_prompt: str | None = None, output_column: str = "output",
                   default_system: str | None = None, tools_column: str | None = "tools"):
    """Tokenize a ``datasets.Dataset`` or a list -> (dataset or list of row dicts, FormatSummary).

    A list may hold conversations (lists of messages) or rows in any shape ``tmplc format`` reads;
    rows are numbered by position.  ``row_column``: a Dataset column holding each row's number,
    kept in the output and used in errors.

    Rows that cannot be read or rendered are skipped and counted (``on_error="skip"``, every one
    named in ``summary.rejected``), or raise (``on_error="raise"``: the error names the row).
    Dropped rows are counted by reason.  ``tools_column``: each row's tool definitions (see the
    module docstring); a format with tool support adds ``n_tool_call_tokens``."""
    from tmplc.formatter.tokenizer_info import tokenizer_info

    if on_error not in ON_ERROR:
        raise TmplcError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    opts = make_options(policy, max_seq_length, truncation, special_tokens, backend)
    info = tokenizer_info(tokenizer)
    summary = FormatSummary(warnings=list(info.hazards(fmt)))
    fn = BatchTokenizer(fmt, tokenizer, opts, messages_column=messages_column, keep_status=True,
                        row_column=row_column, on_error="skip", source=source, merged_prompt=merged_prompt,
                        output_column=output_column, default_system=default_system, tools_column=tools_column)
    if isinstance(data, (list, tuple)):
        res = process_rows(fn._job(), list(range(len(data))), list(data), lists=True)
        if on_error == "raise" and res.first_error is not None:
            row, idx, msg, _ = res.first_error
            raise MessageError(idx, msg, row=row)
        summary.merge(res.summary)
        out = [{"input_ids": ids, "labels": labels, "attention_mask": [1] * len(ids),
                "assistant_masks": [0 if x == IGNORE else 1 for x in labels],
                **({TOOL_CALLS: res.call_counts[k]} if res.call_counts is not None else {}),
                **({row_column: k} if row_column else {})}
               for k, pair in enumerate(res.lists) if pair is not None for ids, labels in [pair]]
        summary.check()
        return out, summary
    ds = data
    summary.rows_in += len(ds)
    mapped = ds.map(fn, batched=True, batch_size=batch_size, num_proc=num_proc, with_indices=row_column is None,
                    remove_columns=ds.column_names, desc=desc)
    rows = mapped[row_column] if row_column else None
    status = mapped["tmplc_status"]
    summarize_status(summary, status, mapped["tmplc_special"], mapped["tmplc_tokens"], mapped["tmplc_trained"],
                     rows, mapped[TOOL_CALLS] if TOOL_CALLS in mapped.column_names else None)
    if on_error == "raise":
        for k, s in enumerate(status):
            if s.startswith(("invalid: ", "error: ")):
                raise MessageError(None, s.partition(": ")[2], row=rows[k] if rows is not None else k)
    keep = [k for k, s in enumerate(status) if s in ("ok", "truncated")]
    if len(keep) != len(mapped):
        mapped = mapped.select(keep)
    extra = [c for c in mapped.column_names if c not in OUT_COLUMNS and c not in (row_column, TOOL_CALLS)]
    mapped = mapped.remove_columns(extra)
    summary.check()
    return mapped, summary
