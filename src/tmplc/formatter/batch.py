"""The batched form: a picklable callable for ``datasets.Dataset.map(batched=True, num_proc=N)``.

::

    fn = tmplc.formatter.tokenize_batch(fmt, tokenizer, policy="assistant", max_seq_length=4096)
    ds = ds.map(fn, batched=True, num_proc=8, remove_columns=ds.column_names)

The output has ``input_ids``, ``labels``, ``attention_mask`` and ``assistant_masks`` (columns HF
Trainer and TRL's SFTTrainer accept: TRL skips its own tokenization when ``input_ids`` is
present and uses ``labels``).  Rows that are dropped or cannot be rendered are left out of the
output, so pass ``remove_columns`` (datasets requires it when a batch changes size); to count
them instead, use ``format_dataset`` (which returns a FormatSummary), or ``keep_status=True``:
every row is kept, with ``tmplc_status`` ("ok", "truncated", "dropped: why", "error: why") and
``tmplc_special`` columns and empty lists for rows that are not usable.
"""

from __future__ import annotations

from typing import Any

from tmplc.formatter.core import IGNORE, Options, encode_rows, make_options
from tmplc.formatter.summary import FormatSummary

OUT_COLUMNS = ("input_ids", "labels", "attention_mask", "assistant_masks")


class BatchTokenizer:
    """``fn(batch) -> columns``: pure function of a batch (picklable; caches rebuilt per process)."""

    def __init__(self, fmt, tokenizer, options: Options, *, messages_column: str = "messages",
                 keep_status: bool = False, row_column: str | None = None, on_error: str = "skip") -> None:
        self.fmt = fmt
        self.tokenizer = tokenizer
        self.options = options
        self.messages_column = messages_column
        self.keep_status = keep_status
        self.row_column = row_column
        self.on_error = on_error

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

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        convs = batch[self.messages_column]
        rows = batch.get(self.row_column) if self.row_column else None
        results = encode_rows(self.fmt, convs, self.tokenizer, self.options, row_numbers=rows)
        out: dict[str, list] = {c: [] for c in OUT_COLUMNS}
        if self.keep_status:
            out.update(tmplc_status=[], tmplc_special=[], tmplc_tokens=[], tmplc_trained=[])
            if rows is not None:
                out[self.row_column] = []
        for k, r in enumerate(results):
            if r.status == "error" and self.on_error == "raise":
                raise r.error
            usable = r.input_ids is not None
            if not usable and not self.keep_status:
                continue
            ids = r.input_ids or []
            labels = r.labels or []
            out["input_ids"].append(ids)
            out["labels"].append(labels)
            out["attention_mask"].append([1] * len(ids))
            out["assistant_masks"].append([0 if x == IGNORE else 1 for x in labels])
            if self.keep_status:
                status = r.status if r.status in ("ok", "truncated") else f"{r.status}: {r.reason}"
                out["tmplc_status"].append(status)
                out["tmplc_special"].append(r.special_in_content)
                out["tmplc_tokens"].append(r.n_tokens)
                out["tmplc_trained"].append(r.n_trained)
                if rows is not None:
                    out[self.row_column].append(rows[k])
        return out


def tokenize_batch(fmt, tokenizer, *, policy=None, max_seq_length: int | None = None,
                   truncation: str = "truncate", special_tokens: str = "text", backend: str = "auto",
                   messages_column: str = "messages", keep_status: bool = False) -> BatchTokenizer:
    """A picklable ``batch -> columns`` callable for ``Dataset.map(batched=True, num_proc=N)``.

    Options as in ``tokenize_messages``; see the module docstring for the output."""
    return BatchTokenizer(fmt, tokenizer, make_options(policy, max_seq_length, truncation, special_tokens,
                                                       backend),
                          messages_column=messages_column, keep_status=keep_status)


def summarize_status(summary: FormatSummary, status: list[str], special: list[bool], tokens: list[int],
                     trained: list[int], rows: list[int] | None) -> None:
    """Fold ``keep_status`` columns into a summary."""
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
        if kind == "dropped":
            summary.dropped[reason] += 1
        else:
            summary.errors[reason.split(": ", 1)[-1] if reason.startswith("message ") else reason] += 1
        summary.note(row, kind, reason)


def format_dataset(fmt, data: Any, tokenizer, *, policy=None, max_seq_length: int | None = None,
                   truncation: str = "truncate", special_tokens: str = "text", backend: str = "auto",
                   messages_column: str = "messages", num_proc: int | None = None, batch_size: int = 1000,
                   on_error: str = "skip", row_column: str | None = None, desc: str = "tmplc format"):
    """Tokenize a ``datasets.Dataset`` (or a list of conversations) -> (dataset or list, FormatSummary).

    ``row_column``: a column holding each row's number, kept in the output and used in errors.

    Rows that cannot be rendered are skipped and counted (``on_error="skip"``), or raise
    (``on_error="raise"``: the error names the row).  Dropped rows are counted by reason."""
    from tmplc.formatter.tokenizer_info import tokenizer_info

    opts = make_options(policy, max_seq_length, truncation, special_tokens, backend)
    info = tokenizer_info(tokenizer)
    summary = FormatSummary(warnings=list(info.hazards(fmt)))
    fn = BatchTokenizer(fmt, tokenizer, opts, messages_column=messages_column, keep_status=True,
                        row_column=row_column, on_error=on_error)
    if isinstance(data, list):
        batch = {messages_column: data}
        if row_column:
            batch[row_column] = list(range(len(data)))
            fn.row_column = row_column
        else:
            fn.row_column = None
        cols = fn(batch)
        summary.rows_in += len(data)
        summarize_status(summary, cols["tmplc_status"], cols["tmplc_special"], cols["tmplc_tokens"],
                         cols["tmplc_trained"], cols.get(row_column) if row_column else None)
        keep = [k for k, s in enumerate(cols["tmplc_status"]) if s in ("ok", "truncated")]
        names = list(OUT_COLUMNS) + ([row_column] if row_column else [])
        out = [{c: cols[c][k] for c in names} for k in keep]
        summary.check()
        return out, summary
    ds = data
    summary.rows_in += len(ds)
    mapped = ds.map(fn, batched=True, batch_size=batch_size, num_proc=num_proc,
                    remove_columns=ds.column_names, desc=desc)
    rows = mapped[row_column] if row_column else None
    summarize_status(summary, mapped["tmplc_status"], mapped["tmplc_special"], mapped["tmplc_tokens"],
                     mapped["tmplc_trained"], rows)
    status = mapped["tmplc_status"]
    keep = [k for k, s in enumerate(status) if s in ("ok", "truncated")]
    if len(keep) != len(mapped):
        mapped = mapped.select(keep)
    extra = [c for c in mapped.column_names if c not in OUT_COLUMNS and c != row_column]
    mapped = mapped.remove_columns(extra)
    summary.check()
    return mapped, summary
