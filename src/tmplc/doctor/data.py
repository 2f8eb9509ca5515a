"""The training data's side: which token ids the rows use, ``truncation`` and ``double-bos``.

Data is a file (any shape ``tmplc format`` reads: JSONL/JSON/CSV/Parquet rows in OpenAI, ShareGPT,
Alpaca or prompt/completion shape), a text column of pre-rendered strings (``{"text": ...}`` rows),
or a Python list of message lists / strings.  Conversations are rendered and tokenized by the
formatter (``encode_rows``: the ids and labels training will use); text rows are tokenized as a
text-path trainer does (``tokenizer(text)``, with special tokens).

:func:`data_findings` is the entry point ``tmplc format`` can call for its summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from tmplc.doctor.findings import Finding

TEXT_KEYS = ("text",)


@dataclass
class Rows:
    """Normalized data: ``conversations`` [(row, messages)], ``texts`` [(row, str)], ``rejected``."""

    conversations: list = field(default_factory=list)
    texts: list = field(default_factory=list)
    rejected: dict = field(default_factory=dict)   # row -> reason


def read_data(data: Any) -> Rows:
    """Rows from a path or a list (see the module docstring)."""
    from tmplc.data import normalize_rows, read_rows

    raw = data if isinstance(data, list) else read_rows(str(data))
    out = Rows()
    dict_rows: list[tuple[int, dict]] = []
    for n, r in enumerate(raw):
        if isinstance(r, str):
            out.texts.append((n, r))
        elif isinstance(r, list):
            out.conversations.append((n, r))
        elif isinstance(r, dict) and not any(k in r for k in ("messages", "conversations", "instruction", "prompt")) \
                and any(isinstance(r.get(k), str) for k in TEXT_KEYS):
            out.texts.append((n, next(r[k] for k in TEXT_KEYS if isinstance(r.get(k), str))))
        else:
            dict_rows.append((n, r))
    if dict_rows:
        convs, rep = normalize_rows([r for _, r in dict_rows], on_error="skip")
        idx = [n for n, _ in dict_rows]
        out.conversations.extend((idx[k], m) for k, m in convs)
        for k, reason in rep.examples:
            out.rejected[idx[k]] = reason
        kept = {c for c, _ in convs}
        for k in range(len(dict_rows)):
            if k not in kept and idx[k] not in out.rejected:
                out.rejected[idx[k]] = "cannot be normalized"
    out.conversations.sort(key=lambda x: x[0])
    return out


@dataclass
class DataScan:
    """Per-row token facts: ``lengths`` {row: n tokens}, ``cut_trained`` {row: trained tokens past
    the limit}, ``used`` {watched id: [rows]}, ``double_bos`` [rows], ``errors`` {row: reason}."""

    n_rows: int = 0
    lengths: dict = field(default_factory=dict)
    trained: dict = field(default_factory=dict)
    cut_trained: dict = field(default_factory=dict)
    used: dict = field(default_factory=dict)
    double_bos: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)
    text_rows: int = 0


def scan_data(fmt, tokenizer, rows: Rows, max_seq_length: int | None = None,
              watch: Sequence[int] = ()) -> DataScan:
    from tmplc.formatter.core import IGNORE, encode_rows, make_options

    scan = DataScan(n_rows=len(rows.conversations) + len(rows.texts))
    scan.errors.update(rows.rejected)
    watch_set = set(watch)
    bos_id = tokenizer.bos_token_id if tokenizer.bos_token is not None else None

    def note(n: int, ids: list[int], labels: list[int] | None) -> None:
        scan.lengths[n] = len(ids)
        tr = len(ids) if labels is None else sum(1 for x in labels if x != IGNORE)
        scan.trained[n] = tr
        if max_seq_length is not None and len(ids) > max_seq_length:
            tail = ids[max_seq_length:] if labels is None else labels[max_seq_length:]
            scan.cut_trained[n] = len(tail) if labels is None else sum(1 for x in tail if x != IGNORE)
        if watch_set:
            for i in watch_set.intersection(ids):
                scan.used.setdefault(i, []).append(n)

    if rows.conversations:
        if fmt is None:
            for n, _ in rows.conversations:
                scan.errors[n] = "no format to render this conversation with"
        else:
            opts = make_options()
            res = encode_rows(fmt, [m for _, m in rows.conversations], tokenizer, opts)
            for (n, _), r in zip(rows.conversations, res):
                if r.input_ids is None or r.status == "error":
                    scan.errors[n] = r.reason or str(r.error)
                    continue
                note(n, list(r.input_ids), list(r.labels))
    for n, text in rows.texts:
        scan.text_rows += 1
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        if bos_id is not None and len(ids) > 1 and ids[0] == ids[1] == bos_id:
            scan.double_bos.append(n)
        note(n, ids, None)
    return scan


def _rows_text(rows: list[int], limit: int = 10) -> str:
    return ", ".join(map(str, rows[:limit])) + (f" ... ({len(rows)} rows)" if len(rows) > limit else "")


def scan_findings(scan: DataScan, tokenizer, max_seq_length: int | None) -> list[Finding]:
    out: list[Finding] = []
    if scan.double_bos:
        bos = tokenizer.bos_token
        out.append(Finding(
            "double-bos", "error",
            f"{len(scan.double_bos)} pre-rendered text row(s) already start with BOS {bos!r} (id "
            f"{tokenizer.bos_token_id}) and the tokenizer adds another when they are tokenized with special "
            f"tokens (tested by tokenizing): rows {_rows_text(scan.double_bos)} start with two BOS",
            "render without BOS (or strip it from the text column), or tokenize with add_special_tokens=False; "
            "tmplc fix can stop the tokenizer adding BOS (the tokenizer flag), said in its report",
            {"path": "data", "rows": scan.double_bos, "bos_id": tokenizer.bos_token_id}))
    if max_seq_length is not None and scan.lengths:
        long_rows = sorted(n for n, L in scan.lengths.items() if L > max_seq_length)
        if long_rows:
            longest = max(scan.lengths.items(), key=lambda kv: kv[1])
            cut = sum(scan.cut_trained.get(n, 0) for n in long_rows)
            total_trained = sum(scan.trained.values())
            share = len(long_rows) / len(scan.lengths)
            out.append(Finding(
                "truncation", "warning" if cut == 0 else ("error" if share > 0.5 else "warning"),
                f"{len(long_rows)} of {len(scan.lengths)} rows ({share:.1%}) are longer than max_seq_length "
                f"{max_seq_length}; the longest is row {longest[0]} with {longest[1]} tokens; truncation cuts "
                f"{cut} trained token(s) ({(cut / total_trained if total_trained else 0):.1%} of all trained "
                f"tokens), including the end-of-turn of every cut answer: rows {_rows_text(long_rows)}",
                "raise --max-seq-length, drop the long rows (tmplc format --truncation drop), or split them",
                {"rows": long_rows, "count": len(long_rows), "share": share, "longest_row": longest[0],
                 "longest_tokens": longest[1], "trained_tokens_cut": cut, "trained_tokens": total_trained}))
    if scan.errors:
        bad = sorted(scan.errors)
        out.append(Finding(
            "data-rows-rejected", "warning",
            f"{len(bad)} data row(s) could not be normalized or rendered, so they were not checked: rows "
            f"{_rows_text(bad)}; first reason: {scan.errors[bad[0]]}",
            "run tmplc format on the data to see every reason", {"rows": bad,
                                                                  "reasons": {n: scan.errors[n] for n in bad[:20]}}))
    return out


def data_findings(format, tokenizer, rows, max_seq_length: int | None = None) -> list[Finding]:
    """The data checks ``tmplc format`` can run: ``truncation`` (with trained tokens cut) and
    ``double-bos`` (pre-rendered text rows starting with BOS), plus rows that cannot be read.

    ``format``: a ChatFormat (or anything tmplc.load takes, or None for text rows only);
    ``tokenizer``: an HF tokenizer; ``rows``: a data file path or a list of rows / message lists / strings."""
    fmt = None
    if format is not None:
        from tmplc.doctor.template import load_format

        fmt = load_format(format)
    scan = scan_data(fmt, tokenizer, read_data(rows), max_seq_length)
    return scan_findings(scan, tokenizer, max_seq_length)
