"""``tmplc format DATA --preference ...``: preference pairs -> TRL's separate token columns.

Reads DATA in batches (rows in any shape ``tmplc.formatter.preference.pair_from_row`` reads),
tokenizes each pair exactly or rejects it, and writes ``prompt_input_ids``, ``chosen_input_ids``,
``rejected_input_ids``, ``chosen_labels``, ``rejected_labels`` (int32 lists) and ``tmplc_row``
(int64) to OUT (.parquet: one row group per batch; .jsonl: one compact object per line), through
a temporary file renamed only when the run succeeds.  The guarantees are ``tmplc format``'s:
rows in = rows out + rows rejected, every rejected row named (``--summary-json``), the same exit
codes and ``--max-rejected``.  Runs in this process (``--num-proc`` is not used).
"""

from __future__ import annotations

import sys

from tmplc.errors import UsageError

COLUMNS = ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids", "chosen_labels", "rejected_labels",
           "tmplc_row")


class _PairWriter:
    def __init__(self, kind: str, f) -> None:
        self.kind = kind
        self.f = f
        self.writer = None
        if kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.pa = pa
            self.schema = pa.schema([(c, pa.list_(pa.int32())) for c in COLUMNS[:5]] + [("tmplc_row", pa.int64())])
            self.writer = pq.ParquetWriter(f, self.schema, compression="snappy", use_dictionary=False,
                                           write_statistics=["tmplc_row"])

    def write(self, rows: list) -> None:
        if not rows:
            return
        if self.kind == "parquet":
            data = {c: [cols[c] for _, cols in rows] for c in COLUMNS[:5]}
            data["tmplc_row"] = [n for n, _ in rows]
            self.writer.write_table(self.pa.Table.from_pydict(data, schema=self.schema))
            return
        out = []
        for n, cols in rows:
            body = ",".join(f'"{c}":[{",".join(map(str, cols[c]))}]' for c in COLUMNS[:5])
            out.append(f'{{{body},"tmplc_row":{n}}}\n')
        self.f.write("".join(out).encode("ascii"))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _check(args) -> None:
    if args.preview is not None:
        raise UsageError("--preview is not available with --preference")
    if args.merged_prompt is not None or args.source not in ("auto",):
        raise UsageError("--preference reads prompt/chosen/rejected rows: --merged-prompt and --source do not apply")
    if args.conversation_extension > 1:
        raise UsageError("--conversation-extension does not apply to --preference")
    if args.default_system is not None:
        raise UsageError("--default-system does not apply to --preference (put the system message in the prompt)")
    if args.num_proc and args.num_proc > 1:
        print("tmplc format --preference: runs in this process (--num-proc is not used)", file=sys.stderr)


def _verdict(summary, args, limit) -> tuple[int, str] | None:
    src = args.data
    if summary.rows_in == 0:
        return 2, f"{src}: no data rows (an empty file, blank lines only, or a header without rows)"
    first = summary.rejected[0] if summary.rejected else None
    where = f"row {first[0]}: {first[1]}: {first[2]}" if first else ""
    if sum(summary.invalid.values()) == summary.rows_in:
        return 2, f"{src}: no row reads as a preference pair ({summary.rows_in} rows); first: {where}"
    if summary.rows_out == 0:
        return 1, f"{src}: every row was rejected ({summary.rows_in} rows, 0 out); first: {where}; nothing written"
    kind, value = limit
    n = summary.rows_rejected
    pct = 100.0 * n / summary.rows_in
    if (kind == "count" and n > value) or (kind == "percent" and pct > value):
        return 1, (f"{src}: {n} of {summary.rows_in} rows rejected ({pct:.1f}%), above --max-rejected "
                   f"{args.max_rejected}; first: {where}; nothing written (pass --max-rejected to accept)")
    return None


def run_preference(args, wrote: list) -> int:
    """The ``--preference`` branch of ``tmplc format`` (options already parsed; ``wrote`` collects
    the paths this run wrote, as ``cmd_format.run`` expects)."""
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tmplc.cli.cmd_format import _tokenizer, load_dated, parse_max_rejected
    from tmplc.data.readers import Reader
    from tmplc.errors import TmplcError
    from tmplc.fileio import atomic_output, prepare_output
    from tmplc.formatter import FormatSummary, FormatterWarning, get_policy
    from tmplc.formatter.core import make_options
    from tmplc.formatter.preference import PairError, process_pair_rows

    _check(args)
    limit = parse_max_rejected(args.max_rejected)
    try:
        policy = get_policy(args.policy)
    except TmplcError as e:
        raise UsageError(f"--policy: {e}") from None
    fmt, dated = load_dated(args)
    reader = Reader(args.data)
    prepare_output(args.out)
    if args.summary_json:
        prepare_output(args.summary_json)
    info = _tokenizer(args)
    opts = make_options(policy, args.max_seq_length, args.truncation, args.special_tokens, args.backend)
    summary = FormatSummary(warnings=list(info.hazards(fmt)) + dated)
    failed = None
    n = 0
    try:
        with atomic_output(args.out) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", FormatterWarning)  # printed in the summary instead
            writer = _PairWriter("parquet" if args.out.endswith(".parquet") else "jsonl", f)
            try:
                for batch in reader.batches(args.batch_size):
                    numbers = list(range(n, n + len(batch)))
                    n += len(batch)
                    rows, part = process_pair_rows(fmt, info, opts, numbers, batch,
                                                   tools_column=args.tools_column or None)
                    summary.merge(part)
                    _raise_first(part, args, PairError)
                    writer.write(rows)
            finally:
                writer.close()
            summary.check()
            v = _verdict(summary, args, limit)
            if v is not None:
                raise _Failed(*v)  # leaves the block by an exception: OUT is not renamed into place
            # written before OUT is renamed into place: if it cannot be, the run fails without OUT
            _write_summary(args, summary, True, wrote)
    except _Failed as e:
        failed = e
    if failed is not None:
        print(f"tmplc: error: {failed.line}", file=sys.stderr)
        if summary.rows_in:
            _write_summary(args, summary, False, wrote)
    else:
        wrote.append(args.out)
        print(f"tmplc format --preference: {args.data} -> {args.out} (template {fmt.name}, policy {policy.name})",
              file=sys.stderr)
    print(str(summary), file=sys.stderr)
    return failed.code if failed is not None else 0


class _Failed(Exception):
    def __init__(self, code: int, line: str) -> None:
        self.code = code
        self.line = line


def _raise_first(part, args, error) -> None:
    """--on-error raise: the first invalid or unrenderable row fails the run (exit 2); --truncation
    error: the first pair over --max-seq-length does (exit 1, as ``tmplc format``)."""
    for row, kind, reason in part.rejected:
        if args.truncation == "error" and "> max_seq_length" in reason:
            raise _Failed(1, f"{args.data}: row {row}: {reason} (--truncation error); nothing written")
        if args.on_error == "raise" and kind != "dropped":
            raise error(reason, kind, row=row)


def _write_summary(args, summary, written: bool, wrote: list) -> None:
    import json

    from tmplc.fileio import atomic_write_text, printable

    if not args.summary_json:
        return
    data = summary.as_dict()
    data["written"] = written
    data["output"] = args.out if written else None
    atomic_write_text(args.summary_json, printable(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")
    wrote.append(args.summary_json)
