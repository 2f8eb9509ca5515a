"""``tmplc format DATA --template SPEC --tokenizer DIR --out OUT.(parquet|jsonl)``.

Streams: reads DATA in batches, encodes them (in ``--num-proc`` worker processes, results in
input order) and writes each batch to a temporary file beside OUT, renamed onto OUT only when
the run succeeds.  Exit codes: 0 written; 1 a check failed (no row out, more rows rejected than
``--max-rejected``, a row over ``--max-seq-length`` with ``--truncation error``) and nothing is
written; 2 bad input or usage (unreadable or empty data, no row that reads as a conversation, a
missing column, a bad tokenizer folder, an output that cannot be written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from tmplc.errors import MessageError, TmplcError

DEFAULT_MAX_REJECTED = "10%"


class UsageError(TmplcError):
    """A bad option value (exit 2)."""

    exit_code = 2


class _Failed(Exception):
    """A finished run whose check failed (carries the exit code and the first line)."""

    def __init__(self, code: int, line: str) -> None:
        self.code = code
        self.line = line


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "format", help="tokenize a dataset with exact loss masks",
        description="Read DATA (JSONL, JSON, CSV, TSV, Parquet), normalize rows into conversations (OpenAI "
                    "messages, ShareGPT conversations, Alpaca, prompt/completion, or --merged-prompt), render "
                    "them with the template, tokenize once per row and write input_ids, labels, "
                    "attention_mask, assistant_masks and tmplc_row (the 0-based data row). Prints a summary: "
                    "rows in = rows out + rows rejected, with every reason. Exit 0 written; 1 a check failed "
                    "(no row out, too many rejected; nothing written); 2 bad input.")
    p.add_argument("data", metavar="DATA", help="data file (.jsonl, .json, .csv, .tsv, .parquet)")
    p.add_argument("--template", "-t", metavar="SPEC",
                   help="registry name/alias, spec or YAML file, or spec text (default: the --tokenizer "
                        "folder's own chat_template, where tmplc imports it exactly)")
    p.add_argument("--tokenizer", required=True, metavar="DIR",
                   help="a local folder holding an HF fast tokenizer (tokenizer.json); nothing is downloaded")
    p.add_argument("--out", "-o", metavar="OUT",
                   help="output file: .parquet or .jsonl (required unless --preview); written to a temporary "
                        "name beside it and renamed when complete; missing folders are created")
    p.add_argument("--preview", type=int, metavar="N",
                   help="print the first N rows as tokens, trained ones highlighted (colour on a terminal, "
                        "[[...]] otherwise); writes nothing")
    p.add_argument("--plain", action="store_true", help="with --preview: no colour, trained tokens in [[ ]]")
    p.add_argument("--max-seq-length", type=int, default=None, metavar="N")
    p.add_argument("--truncation", choices=["truncate", "drop", "error"], default="truncate",
                   help="rows longer than --max-seq-length: keep the start (default), drop, or fail the run")
    p.add_argument("--num-proc", type=int, default=None, metavar="N",
                   help="worker processes (default 1); pays off from a few thousand rows, up to the CPU count")
    p.add_argument("--batch-size", type=int, default=1000, metavar="N",
                   help="rows per batch (and per Parquet row group)")
    p.add_argument("--max-rejected", default=DEFAULT_MAX_REJECTED, metavar="N|P%",
                   help="fail (exit 1, nothing written) when more rows than this are rejected: a count (0 = "
                        "none may be) or a percentage of rows in, e.g. 5%% (default "
                        f"{DEFAULT_MAX_REJECTED.replace('%', '%%')})")
    p.add_argument("--policy", default="assistant",
                   help="masking policy: assistant (default), assistant_no_eot, assistant_header, last_turn, "
                        "all, or roles=user+assistant,eot=yes,header=no,last=no")
    p.add_argument("--source", default="auto",
                   choices=["auto", "openai", "sharegpt", "alpaca", "prompt_completion", "merged"],
                   help="row shape (default: detected per row)")
    p.add_argument("--merged-prompt", metavar="TEMPLATE",
                   help="build the user message from columns: '{instruction}[[\\n\\nInput: {input}]]'; \\n and "
                        "\\t are a newline and a tab (\\\\ is one backslash)")
    p.add_argument("--output-column", default="output", help="with --merged-prompt: the assistant column")
    p.add_argument("--default-system", metavar="TEXT", help="system message for rows that have none")
    p.add_argument("--tools-column", default="tools", metavar="NAME",
                   help="the column holding each row's tool definitions (default: tools): a list of "
                        "{\"type\": \"function\", \"function\": {...}} or a JSON string of one; needs a "
                        "format with tool support, e.g. qwen3-tools (see docs/tools.md)")
    p.add_argument("--conversation-extension", type=int, default=1, metavar="N",
                   help="join each row with N-1 random rows into one multi-turn conversation (reads all rows "
                        "into memory first)")
    p.add_argument("--seed", type=int, default=3407, help="seed for --conversation-extension")
    p.add_argument("--date", metavar="YYYY-MM-DD",
                   help="the day that a format rendering a date ({DATE=...}: Llama 3.2, Mistral Small 3.2) writes "
                        "into every row (default: today, and the summary says so)")
    p.add_argument("--on-error", choices=["raise", "skip"], default="skip",
                   help="a row that cannot be normalized or rendered: fail (exit 2), or skip and report "
                        "(default)")
    p.add_argument("--special-tokens", choices=["text", "control"], default="text",
                   help="special-token text inside message content: plain text (default) or control tokens")
    p.add_argument("--backend", choices=["auto", "hf", "tiktoken"], default="auto",
                   help="tokenizer engine: auto (tiktoken where verified identical, else HF)")
    p.add_argument("--bos-token", metavar="TOKEN", help="the token {BOS} renders (default: the tokenizer's)")
    p.add_argument("--eos-token", metavar="TOKEN", help="the token {EOS} renders (default: the tokenizer's)")
    p.add_argument("--preference", action="store_true",
                   help="preference pairs (prompt/chosen/rejected rows, or chosen/rejected conversations sharing "
                        "a prompt): write prompt_input_ids, chosen_input_ids, rejected_input_ids, chosen_labels, "
                        "rejected_labels and tmplc_row (see docs/preference.md)")
    p.add_argument("--summary-json", metavar="FILE",
                   help="also write the summary as JSON, listing every rejected row (written on exit 0 and 1)")
    return p


# ------------------------------------------------------------------------------------------------
# option checks

def parse_max_rejected(text: str) -> tuple[str, float]:
    """("count", N) or ("percent", P) from ``N`` or ``P%``."""
    t = str(text).strip()
    try:
        if t.endswith("%"):
            v = float(t[:-1])
            if not 0 <= v <= 100:
                raise ValueError
            return "percent", v
        v = int(t)
        if v < 0:
            raise ValueError
        return "count", v
    except ValueError:
        raise UsageError(f"--max-rejected {text!r}: give a count (e.g. 0, 25) or a percentage (e.g. 10%)") from None


def _check_usage(args) -> None:
    if args.preview is None and not args.out:
        raise UsageError("--out is required (or --preview N to look at rows without writing)")
    if args.preview is not None and args.preview < 1:
        raise UsageError("--preview N: N must be at least 1")
    if args.out and not (args.out.endswith(".parquet") or args.out.endswith(".jsonl")):
        raise UsageError(f"--out {args.out}: must end with .parquet or .jsonl")
    for name in ("num_proc", "batch_size", "max_seq_length", "conversation_extension"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name.replace('_', '-')} {v}: must be at least 1")
    import os

    if args.out:
        outs = [("--summary-json", args.summary_json)] if args.summary_json else []
        for name, other in [("DATA", args.data)] + outs:
            if os.path.exists(other) and os.path.exists(args.out) and os.path.samefile(other, args.out) or \
                    os.path.abspath(other) == os.path.abspath(args.out):
                raise UsageError(f"--out {args.out} and {name} {other} are the same file")


def _merged(args):
    from tmplc.data.merged import MergedPrompt, unescape_cli

    if args.merged_prompt is None:
        if args.source == "merged":
            raise UsageError("--source merged needs --merged-prompt")
        return None
    try:
        return MergedPrompt.parse(unescape_cli(args.merged_prompt))
    except TmplcError as e:
        raise UsageError(f"--merged-prompt: {e}") from None


def _check_columns(reader, merged, args) -> None:
    """With a header (CSV) or schema (Parquet): fail before reading rows when columns are missing."""
    from tmplc.data.normalize import detect
    from tmplc.data.merged import RowProblem
    from tmplc.fileio import InputError

    cols = reader.columns
    if cols is None:
        return
    if merged is not None:
        missing = [c for c in merged.columns + [args.output_column] if c not in cols]
        if missing:
            raise InputError(reader.path, f"--merged-prompt/--output-column name column(s) {missing} that this "
                                          f"file does not have; its columns: {cols}")
    elif args.source == "auto":
        try:
            detect({c: "" for c in cols})
        except RowProblem as e:
            raise InputError(reader.path, f"{e}; for other columns pass --merged-prompt "
                                          "'{instruction}...' and --output-column") from None


def load_dated(args):
    """The format of ``--template``, its ``{DATE=...}`` pieces fixed to ``--date``; and the summary's
    warning when the format renders a date and none was given (rows then carry today's)."""
    import datetime

    from tmplc.api import load

    if args.template:
        fmt = load(args.template)
    else:
        from tmplc.doctor.template import folder_format

        fmt, why = folder_format(args.tokenizer)
        if fmt is None:
            raise UsageError(f"no --template given, and the --tokenizer folder's own format cannot be used: {why}; "
                             "pass the format you train with (--template NAME|SPEC|FILE)")
    if args.date is not None:
        try:
            day = datetime.date.fromisoformat(args.date)
        except ValueError:
            raise UsageError(f"--date: {args.date!r} is not a date (YYYY-MM-DD)") from None
        return fmt.with_date(day), []
    if fmt.structure.dated:
        return fmt, [f"format {fmt.name!r} renders a date ({{DATE=...}}): every row carries today's, "
                     f"{datetime.date.today().isoformat()}; give --date YYYY-MM-DD to fix it"]
    return fmt, []


def _tokenizer(args):
    from tmplc.formatter.tokenizer_load import load_tokenizer_info, with_special_tokens

    info = load_tokenizer_info(args.tokenizer)
    if args.bos_token is not None or args.eos_token is not None:
        info = with_special_tokens(info, bos=args.bos_token, eos=args.eos_token)
    return info


# ------------------------------------------------------------------------------------------------

def _numbered(batches):
    n = 0
    for b in batches:
        yield list(range(n, n + len(b))), b
        n += len(b)


def _verdict(summary, args, limit, reader, merged, seen_columns, too_long) -> tuple[int, str] | None:
    """(exit code, first line) when the finished run fails a check, else None."""
    src = args.data
    if summary.rows_in == 0:
        return 2, (f"{src}: no data rows (an empty file, blank lines only, or a header without rows); "
                   "expected one conversation per row")
    if merged is not None and reader.columns is None:
        missing = [c for c in merged.columns + [args.output_column] if c not in seen_columns]
        if missing:
            return 2, (f"{src}: --merged-prompt/--output-column name column(s) {missing} that no row has; "
                       f"columns seen: {sorted(map(str, seen_columns))}")
    first = summary.rejected[0] if summary.rejected else None
    where = f"row {first[0]}: {first[1]}: {first[2]}" if first else ""
    if sum(summary.invalid.values()) == summary.rows_in:
        return 2, (f"{src}: no row reads as a conversation ({summary.rows_in} rows); first: {where}")
    if too_long:
        row, reason = too_long
        return 1, f"{src}: row {row}: {reason} (--truncation error); nothing written"
    if summary.rows_out == 0:
        return 1, f"{src}: every row was rejected ({summary.rows_in} rows, 0 out); first: {where}; nothing written"
    kind, value = limit
    n = summary.rows_rejected
    pct = 100.0 * n / summary.rows_in
    if (kind == "count" and n > value) or (kind == "percent" and pct > value):
        return 1, (f"{src}: {n} of {summary.rows_in} rows rejected ({pct:.1f}%), above --max-rejected "
                   f"{args.max_rejected}; first: {where}; nothing written (pass --max-rejected to accept)")
    return None


def _progress(total_bytes: int):
    if not sys.stderr or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total_bytes, unit="B", unit_scale=True, desc="tmplc format", leave=False, file=sys.stderr)


def _batches(args, reader, job, summary):
    """(row numbers, rows) batches: streamed, or (with --conversation-extension) all rows first."""
    if args.conversation_extension <= 1:
        return _numbered(reader.batches(args.batch_size))
    from tmplc.data.normalize import normalize_rows
    from tmplc.data.readers import materialize

    rows = [_no_tools(materialize(r), job.tools_column) for b in reader.batches(args.batch_size) for r in b]
    convs, rep = normalize_rows(rows, source=job.source, merged_prompt=None, output_column=job.output_column,
                                default_system=job.default_system, conversation_extension=args.conversation_extension,
                                seed=args.seed, on_error=args.on_error) if job.merged is None else \
        _normalize_merged(rows, job, args)
    summary.rows_in += rep.rows_rejected
    for n, why in rep.rejected_rows:
        summary.reject(n, "invalid", why)
    bs = args.batch_size
    return (([n for n, _ in convs[i:i + bs]], [m for _, m in convs[i:i + bs]]) for i in range(0, len(convs), bs))


def _no_tools(row, column):
    """``row``, or a BadRow when it has tool definitions: --conversation-extension joins rows that
    would need one tool list (their tools are not dropped silently)."""
    from tmplc.data.merged import RowProblem
    from tmplc.data.normalize import row_tools
    from tmplc.data.readers import BadRow

    try:
        tools = row_tools(row, column)
    except RowProblem as e:
        return BadRow(str(e))
    if tools is None:
        return row
    return BadRow(f"the row has tool definitions (column {column!r}): --conversation-extension cannot join "
                  "rows that carry tools; format them without --conversation-extension")


def _normalize_merged(rows, job, args):
    from tmplc.data.normalize import normalize_rows

    return normalize_rows(rows, source=job.source, merged_prompt=job.merged.text, output_column=job.output_column,
                          default_system=job.default_system, conversation_extension=args.conversation_extension,
                          seed=args.seed, on_error=args.on_error)


def _preview(args, job, reader) -> int:
    from tmplc.formatter.rows import process_rows
    from tmplc.formatter.view import label_view
    from tmplc.fileio import write_stdout

    rows: list = []
    for b in reader.batches(min(args.batch_size, args.preview)):
        rows.extend(b)
        if len(rows) >= args.preview:
            break
    rows = rows[:args.preview]
    res = process_rows(job, list(range(len(rows))), rows, statuses=True, lists=True)
    color = not args.plain and sys.stdout is not None and sys.stdout.isatty()
    out = []
    for n, (status, pair) in enumerate(zip(res.statuses, res.lists)):
        if pair is None:
            out.append(f"row {n}: {status}\n")
            continue
        ids, labels = pair
        trained = sum(1 for x in labels if x != -100)
        extra = ", truncated" if status == "truncated" else ""
        out.append(f"row {n}: {len(ids)} tokens, {trained} trained{extra}\n")
        out.append(label_view(job.info, ids, labels, color=color) + "\n")
    write_stdout("".join(out))
    print(f"tmplc format --preview: {len(rows)} rows shown ({res.summary.rows_out} formatted, "
          f"{res.summary.rows_rejected} rejected); nothing written", file=sys.stderr)
    return 0


def run(args) -> int:
    """Run, and on any failure after the options are checked remove an earlier output left under
    --out / --summary-json, so that it cannot pass for this run's output."""
    _check_usage(args)
    wrote: list = []
    try:
        code = _run(args, wrote)
    except BaseException:
        _remove_stale(args, wrote)
        raise
    if code != 0:
        _remove_stale(args, wrote)
    return code


def _remove_stale(args, wrote: list) -> None:
    import os

    for path in (args.out, args.summary_json):
        if path and path not in wrote and os.path.isfile(path):
            try:
                os.unlink(path)
                print(f"tmplc: removed the earlier {path} (this run did not write it)", file=sys.stderr)
            except OSError:
                pass


def _run(args, wrote: list) -> int:
    if args.preference:
        from tmplc.cli.format_preference import run_preference

        return run_preference(args, wrote)
    import os
    import warnings
    from functools import partial

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tmplc.data.readers import Reader
    from tmplc.data.writers import BackgroundWriter, prepare_batch, rows_writer
    from tmplc.fileio import atomic_output, prepare_output
    from tmplc.formatter import FormatterWarning, FormatSummary, get_policy
    from tmplc.formatter.core import make_options
    from tmplc.formatter.datacheck import DataFacts
    from tmplc.formatter.datacheck import findings as data_findings
    from tmplc.formatter.parallel import run_batches
    from tmplc.formatter.rows import RowsJob, has_tool_support

    limit = parse_max_rejected(args.max_rejected)
    merged = _merged(args)
    try:
        policy = get_policy(args.policy)
    except TmplcError as e:
        raise UsageError(f"--policy: {e}") from None
    fmt, dated = load_dated(args)
    reader = Reader(args.data)
    _check_columns(reader, merged, args)
    if args.out:
        prepare_output(args.out)
    if args.summary_json:
        prepare_output(args.summary_json)
    info = _tokenizer(args)
    opts = make_options(policy, args.max_seq_length, args.truncation, args.special_tokens, args.backend)
    job = RowsJob(fmt, info, opts, source=args.source, merged=merged, output_column=args.output_column,
                  default_system=args.default_system, tools_column=args.tools_column or None)
    if args.preview is not None:
        return _preview(args, job, reader)

    summary = FormatSummary(warnings=list(info.hazards(fmt)) + dated)
    facts = DataFacts()
    seen: set = set()
    too_long: list = []
    bar = _progress(reader.size)
    kind = "parquet" if args.out.endswith(".parquet") else "jsonl"
    failed = None
    try:
        with atomic_output(args.out) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", FormatterWarning)  # printed in the summary instead
            writer = BackgroundWriter(rows_writer(kind, f, has_tool_support(fmt)))
            batches = _batches(args, reader, job, summary)

            def consume(res) -> None:
                if args.on_error == "raise" and res.first_error is not None:
                    row, idx, msg, _ = res.first_error
                    raise MessageError(idx, msg, row=row)
                if args.truncation == "error" and not too_long:
                    for row, k, why in res.summary.rejected:
                        if k == "error" and "> max_seq_length" in why:
                            too_long.append((row, why))
                            break
                writer.put(res.payload)
                summary.merge(res.summary)
                facts.merge(res.facts)
                seen.update(res.columns)
                if bar is not None:
                    bar.update(max(0, reader.bytes_read - bar.n))

            try:
                run_batches(job, batches, consume, args.num_proc, prepare=partial(prepare_batch, kind),
                            track_columns=merged is not None)
            except BaseException:
                writer.abort()
                raise
            writer.close()
            summary.check()
            summary.findings = data_findings(facts, info, args.max_seq_length)
            v = _verdict(summary, args, limit, reader, merged, seen, too_long[0] if too_long else None)
            if v is not None:
                raise _Failed(*v)
            # the summary is written before the output is renamed into place: if it cannot be
            # written, the run fails and OUT does not appear
            _write_summary(args, summary, None, wrote)
    except _Failed as e:
        failed = e
    finally:
        if bar is not None:
            bar.close()
    if failed is not None:
        print(f"tmplc: error: {failed.line}", file=sys.stderr)
        if summary.rows_in:
            _write_summary(args, summary, failed, wrote)
    else:
        wrote.append(args.out)
        print(f"tmplc format: {args.data} -> {args.out} (template {fmt.name}, policy {policy.name})",
              file=sys.stderr)
    print(str(summary), file=sys.stderr)
    return failed.code if failed is not None else 0


def _write_summary(args, summary, failed, wrote: list) -> None:
    import json

    from tmplc.fileio import atomic_write_text, printable

    if not args.summary_json:
        return
    data = summary.as_dict()
    data["written"] = failed is None
    data["output"] = args.out if failed is None else None
    atomic_write_text(args.summary_json, printable(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")
    wrote.append(args.summary_json)
