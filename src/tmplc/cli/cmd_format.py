"""``tmplc format DATA --template SPEC --tokenizer DIR --out OUT.(parquet|jsonl)``."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "format", help="tokenize a dataset with exact loss masks",
        description="Read DATA (JSONL, JSON, CSV, Parquet), normalize rows into conversations (OpenAI "
                    "messages, ShareGPT conversations, Alpaca, prompt/completion, or --merged-prompt), render "
                    "them with the template, tokenize once per row and write input_ids, labels, "
                    "attention_mask, assistant_masks and tmplc_row (the 0-based data row). Prints a summary: "
                    "rows in = rows out + rows rejected, with every reason.")
    p.add_argument("data", metavar="DATA", help="data file (.jsonl, .json, .csv, .parquet)")
    p.add_argument("--template", "-t", required=True, metavar="SPEC",
                   help="registry name/alias, spec or YAML file, or spec text")
    p.add_argument("--tokenizer", required=True, metavar="DIR", help="HF tokenizer directory (tokenizer.json)")
    p.add_argument("--out", "-o", required=True, metavar="OUT", help="output file: .parquet or .jsonl")
    p.add_argument("--max-seq-length", type=int, default=None, metavar="N")
    p.add_argument("--truncation", choices=["truncate", "drop", "error"], default="truncate",
                   help="rows longer than --max-seq-length: keep the start (default), drop, or fail")
    p.add_argument("--num-proc", type=int, default=None, metavar="N", help="worker processes")
    p.add_argument("--batch-size", type=int, default=1000, metavar="N")
    p.add_argument("--policy", default="assistant",
                   help="masking policy: assistant (default), assistant_no_eot, assistant_header, last_turn, "
                        "all, or roles=user+assistant,eot=yes,header=no,last=no")
    p.add_argument("--source", default="auto",
                   choices=["auto", "openai", "sharegpt", "alpaca", "prompt_completion", "merged"],
                   help="row shape (default: detected per row)")
    p.add_argument("--merged-prompt", metavar="TEMPLATE",
                   help="build the user message from columns: '{instruction}[[\\n\\nInput: {input}]]'")
    p.add_argument("--output-column", default="output", help="with --merged-prompt: the assistant column")
    p.add_argument("--default-system", metavar="TEXT", help="system message for rows that have none")
    p.add_argument("--conversation-extension", type=int, default=1, metavar="N",
                   help="join each row with N-1 random rows into one multi-turn conversation")
    p.add_argument("--seed", type=int, default=3407, help="seed for --conversation-extension")
    p.add_argument("--on-error", choices=["raise", "skip"], default="skip",
                   help="a row that cannot be normalized or rendered: fail, or skip and report (default)")
    p.add_argument("--special-tokens", choices=["text", "control"], default="text",
                   help="special-token text inside message content: plain text (default) or control tokens")
    p.add_argument("--backend", choices=["auto", "hf", "tiktoken"], default="auto",
                   help="tokenizer engine: auto (tiktoken where verified identical, else HF)")
    p.add_argument("--summary-json", metavar="FILE", help="also write the summary as JSON")
    return p


def run(args) -> int:
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tmplc.api import load
    from tmplc.data import normalize_rows, read_rows
    from tmplc.errors import TmplcError
    from tmplc.formatter import FormatterWarning, format_dataset, get_policy

    if not (args.out.endswith(".parquet") or args.out.endswith(".jsonl")):
        raise TmplcError(f"--out {args.out}: must end with .parquet or .jsonl")
    fmt = load(args.template)
    policy = get_policy(args.policy)
    try:
        import datasets
        from transformers import AutoTokenizer
    except ImportError as e:  # pragma: no cover
        raise TmplcError(f"tmplc format needs transformers and datasets: pip install transformers datasets ({e})")
    datasets.disable_caching()
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    rows = read_rows(args.data, on_error=args.on_error)
    convs, nrep = normalize_rows(rows, source=args.source, merged_prompt=args.merged_prompt,
                                 output_column=args.output_column, default_system=args.default_system,
                                 conversation_extension=args.conversation_extension, seed=args.seed,
                                 on_error=args.on_error)
    ds = datasets.Dataset.from_dict({"messages": [m for _, m in convs], "tmplc_row": [n for n, _ in convs]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FormatterWarning)  # printed in the summary instead
        out, summary = format_dataset(fmt, ds, tok, policy=policy, max_seq_length=args.max_seq_length,
                                      truncation=args.truncation, special_tokens=args.special_tokens,
                                      backend=args.backend, num_proc=args.num_proc, batch_size=args.batch_size,
                                      on_error=args.on_error, row_column="tmplc_row")
    summary.rows_in += nrep.rows_rejected
    summary.invalid.update(nrep.rejected)
    summary.examples = sorted([(r, "invalid", why) for r, why in nrep.examples] + summary.examples,
                              key=lambda e: (e[0] is None, e[0] or 0))[:20]
    summary.check()
    if args.out.endswith(".parquet"):
        out.to_parquet(args.out)
    else:
        out.to_json(args.out, lines=True, force_ascii=False)
    print(f"tmplc format: {args.data} -> {args.out} (template {fmt.name}, policy {policy.name})", file=sys.stderr)
    print(str(summary), file=sys.stderr)
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as f:
            json.dump(summary.as_dict(), f, indent=2, ensure_ascii=False)
    return 0
