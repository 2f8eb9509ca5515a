"""Formatting on Ray Data, for corpora that outgrow one machine's ``datasets.map``.

``format_with_ray`` builds a Ray dataset of (messages as JSON text, row number), runs tmplc's
picklable ``BatchTokenizer`` in ``map_batches`` (each worker rebuilds the tokenizer from its JSON
once), keeps the order, and folds the per-row statuses into the same ``FormatSummary`` as the
other paths: every row is output or counted as rejected with its reason.  Messages travel as JSON
text so rows with different message keys do not fight over one Arrow schema.

It connects to a running Ray cluster when ``ray.init`` finds one (``RAY_ADDRESS``), else starts a
local instance (``num_proc`` CPUs) and shuts it down afterwards.  Install: ``pip install 'ray[data]'``.
"""

from __future__ import annotations

import json

from tmplc.train.config import TrainConfig, TrainError


class JsonBatch:
    """``map_batches`` function: decode the JSON messages, tokenize with tmplc, return columns."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self, batch: dict) -> dict:
        convs = [json.loads(x) for x in batch["messages"]]
        rows = [int(x) for x in batch["tmplc_row"]]
        cols = {"messages": convs, "tmplc_row": rows}
        if "tools" in batch:  # JSON text ("" for none), read by the formatter's tools rule
            cols["tools"] = [str(x) for x in batch["tools"]]
        return self.fn(cols)


def format_with_ray(fmt, convs: list, rows: list, tokenizer, cfg: TrainConfig, batch_size: int = 256,
                    tools: list | None = None):
    """(list of {"input_ids", "labels"} in data order, FormatSummary) computed with Ray Data.
    ``tools``: per conversation, its tool definitions or None."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise TrainError("--ray needs Ray Data: pip install 'ray[data]'") from None
    from tmplc.formatter.batch import BatchTokenizer, summarize_status
    from tmplc.formatter.core import make_options
    from tmplc.formatter.summary import FormatSummary
    from tmplc.formatter.tokenizer_info import tokenizer_info

    opts = make_options(cfg.policy, cfg.max_seq_length, cfg.truncation, cfg.special_tokens, cfg.backend)
    fn = JsonBatch(BatchTokenizer(fmt, tokenizer, opts, keep_status=True, row_column="tmplc_row", on_error="skip"))
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=cfg.num_proc or None, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        items = [{"messages": json.dumps(m, ensure_ascii=False), "tmplc_row": int(r)} for m, r in zip(convs, rows)]
        if tools is not None:
            for item, t in zip(items, tools):
                item["tools"] = json.dumps(t, ensure_ascii=False) if t is not None else ""
        ds = ray.data.from_items(items).map_batches(fn, batch_size=batch_size, batch_format="numpy")
        out = ds.take_all()
    finally:
        if started:
            ray.shutdown()
    summary = FormatSummary(warnings=list(tokenizer_info(tokenizer).hazards(fmt)))
    summary.rows_in += len(convs)
    col = lambda k: [r[k] for r in out]  # noqa: E731
    summarize_status(summary, [str(s) for s in col("tmplc_status")], [bool(s) for s in col("tmplc_special")],
                     [int(x) for x in col("tmplc_tokens")], [int(x) for x in col("tmplc_trained")],
                     [int(x) for x in col("tmplc_row")],
                     [int(x) for x in col("n_tool_call_tokens")] if out and "n_tool_call_tokens" in out[0] else None)
    kept = [{"input_ids": [int(t) for t in r["input_ids"]], "labels": [int(t) for t in r["labels"]]}
            for r in out if str(r["tmplc_status"]) in ("ok", "truncated")]
    summary.check()
    return kept, summary
