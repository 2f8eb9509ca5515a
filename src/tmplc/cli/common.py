"""Helpers shared by subcommands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tmplc.errors import MessageError


def write_output(text: str, out: str | None) -> None:
    """Write exactly ``text`` to ``out`` (atomically: a temporary name renamed when complete) or
    stdout (nothing added); problems are ``OutputError`` (exit 2) naming the path."""
    from tmplc.fileio import atomic_write_text, write_stdout

    if out and out != "-":
        atomic_write_text(out, text)
    else:
        write_stdout(text)


def check_output(out: str | None, folder: bool = False) -> None:
    """Before any work: ``--out`` can be written (a file: not a folder, parents creatable; a
    folder: not a file).  ``OutputError`` (exit 2) naming it."""
    if not out or out == "-":
        return
    from tmplc.fileio import OutputError, prepare_output

    p = Path(out)
    if folder:
        if p.exists() and not p.is_dir():
            raise OutputError(out, "is a file; --to all writes a folder: give a folder name")
        return
    if p.exists() and not p.is_file() and not p.is_dir():
        return  # a device or a pipe, written in place
    prepare_output(out)


def print_bundle(manifest: dict, out: str) -> None:
    """The listing of ``--to all``: one line per file, refusal and caveat, then the manifest."""
    base = str(out).rstrip("/")
    for target, files in manifest["targets"].items():
        for rel in files:
            print(f"{target:<9} {base}/{rel}")
    for target, reason in manifest["refused"].items():
        hint = ""
        if "bos_token" in reason or "eos_token" in reason:
            hint = " (give --bos-token/--eos-token TEXT, or --tokenizer DIR to read them)"
        print(f"{target:<9} refused: {reason}{hint}")
        print(f"tmplc: {target} not written: {reason}{hint}", file=sys.stderr)
    for target, note in manifest["caveats"].items():
        print(f"{target:<9} caveat: {note}")
    print(f"manifest  {base}/manifest.json")


def add_token_options(p, tokenizer: bool = True) -> None:
    """``--bos-token``/``--eos-token`` (and ``--tokenizer DIR`` to read them from) for commands that
    load a spec: a plain-text spec using ``{BOS}``/``{EOS}`` has no token strings of its own."""
    p.add_argument("--bos-token", metavar="TEXT", help="the BOS token string {BOS} renders (default: the spec "
                   "file's bos_token, else --tokenizer's)")
    p.add_argument("--eos-token", metavar="TEXT", help="the EOS token string {EOS} renders (default: the spec "
                   "file's eos_token, else --tokenizer's)")
    if tokenizer:
        p.add_argument("--tokenizer", metavar="DIR",
                       help="a local tokenizer folder (tokenizer_config.json): BOS/EOS strings the spec lacks")


def tokenizer_tokens(folder: str) -> dict[str, str]:
    """``bos_token``/``eos_token`` strings of a local tokenizer folder's tokenizer_config.json (no
    transformers needed); ``InputError`` when the folder or the file is not there."""
    from tmplc.convert.sources import _json, _token
    from tmplc.fileio import InputError

    try:
        from tmplc.formatter.tokenizer_load import check_tokenizer_dir

        d = check_tokenizer_dir(folder)  # InputError saying what is wrong with the folder
    except ImportError:  # pragma: no cover
        d = Path(folder)
    if not d.is_dir():
        raise InputError(folder, "no such tokenizer folder (--tokenizer is a local folder with tokenizer.json and "
                                 "tokenizer_config.json; tmplc never downloads from a model hub)")
    cfg = d / "tokenizer_config.json"
    if not cfg.is_file():
        return {}  # no token strings to read (loading the tokenizer, if needed, says more)
    data = _json(cfg)
    out = {}
    for key in ("bos_token", "eos_token"):
        tok = _token(data.get(key)) if isinstance(data, dict) else None
        if tok is not None:
            out[key] = tok
    return out


def load_format(spec: str, args):
    """``tmplc.load(spec)`` with the token options applied: ``--bos-token``/``--eos-token`` win,
    then the spec's own, then ``--tokenizer``'s."""
    from tmplc.api import load

    fmt = load(spec)
    change = {}
    tok_dir = getattr(args, "tokenizer", None)
    from_tok = tokenizer_tokens(tok_dir) if tok_dir and (fmt.meta.bos_token is None or
                                                         fmt.meta.eos_token is None) else {}
    for key in ("bos_token", "eos_token"):
        given = getattr(args, key, None)
        if given is not None:
            change[key] = given
        elif getattr(fmt.meta, key) is None and key in from_tok:
            change[key] = from_tok[key]
    fmt = fmt.with_meta(**change) if change else fmt
    if getattr(args, "_needs_tokens", False):
        from tmplc.errors import UsageError

        missing = [k for k, n in (("bos_token", "BOS"), ("eos_token", "EOS"))
                   if fmt.structure.uses(n) and getattr(fmt.meta, k) is None]
        if missing:
            raise UsageError(f"{spec}: the spec uses {' and '.join('{' + k[:3].upper() + '}' for k in missing)} "
                             f"but declares no token string: give {' '.join('--' + k.replace('_', '-') + ' TEXT' for k in missing)}, "
                             "or --tokenizer DIR to read them from a tokenizer folder")
    return fmt


def _whole_json(text: str, shown: str, line_no: int | None = None):
    """JSON text (a file, or one JSONL line) with tmplc's bounds; ``InputError`` at line:column."""
    import json as _json

    from tmplc.data.readers import MAX_DEPTH, json_depth_exceeds
    from tmplc.fileio import InputError

    if json_depth_exceeds(text, MAX_DEPTH + 2):
        raise InputError(shown, f"JSON nested deeper than {MAX_DEPTH} levels (tmplc's limit)", line=line_no)
    try:
        return _json.loads(text)
    except _json.JSONDecodeError as e:
        raise InputError(shown, f"invalid JSON: {e.msg}", line=(line_no or e.lineno), column=e.colno) from None
    except RecursionError:
        raise InputError(shown, "JSON nested too deeply", line=line_no) from None
    except ValueError as e:  # an integer longer than Python's limit
        msg = str(e)
        if "digits" in msg:
            msg = f"a JSON number with more than {sys.get_int_max_str_digits()} digits (Python's limit)"
        raise InputError(shown, msg, line=line_no) from None


#: the file types ``tmplc format`` reads (rows of any shape it normalises)
DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq")


def read_conversations(path: str, *, source: str = "auto", merged_prompt: str | None = None,
                       output_column: str = "output", default_system: str | None = None,
                       limit: int | None = None,
                       tools_column: str | None = "tools") -> list[tuple[list[dict], list | None]]:
    """Conversations to render from FILE, each with its row's tool definitions (the
    ``tools_column``, read as ``tmplc format`` reads it; None where the row has none): a JSON list
    of messages (one conversation), a JSONL file of
    conversations (a list, or an object with ``messages``, per line), or any data file ``tmplc
    format`` reads (JSONL/JSON/CSV/TSV/Parquet rows: OpenAI messages, ShareGPT, Alpaca,
    prompt/completion, ``merged_prompt``), normalised by :mod:`tmplc.data.normalize`.  ``-``:
    JSON/JSONL on stdin.  A row that cannot be read or normalised is a ``MessageError`` naming the
    file and the 0-based row; a file that cannot be read, an ``InputError`` (exit 2)."""
    from tmplc.data.merged import MergedPrompt, RowProblem
    from tmplc.data.normalize import normalize_row, row_tools
    from tmplc.data.readers import read_rows
    from tmplc.fileio import InputError, read_text

    suffix = Path(path).suffix.lower() if path != "-" else ""
    if suffix in DATA_SUFFIXES and suffix != ".json":
        rows = read_rows(path, on_error="raise")
    else:  # JSON (one conversation, a list of them, or rows) or JSONL text
        raw = read_text(path, what="messages file")
        shown = "<stdin>" if path == "-" else path
        rows = None
        if suffix == ".json" and raw.lstrip().startswith("{"):  # an object holding the rows, as format reads
            rows = read_rows(path, on_error="raise")
        elif raw.lstrip().startswith("["):
            try:
                data = _whole_json(raw, shown)
            except InputError as e:
                if len([ln for ln in raw.split("\n") if ln.strip()]) <= 1 or "invalid JSON" not in e.message:
                    raise
            else:
                if data and all(isinstance(m, dict) and "role" in m for m in data):
                    rows = [data]  # one conversation
                else:
                    rows = data
        if rows is None:
            rows = []
            for n, line in enumerate(raw.split("\n")):
                if not line.strip():
                    continue
                rows.append(_whole_json(line, shown, line_no=n + 1))
    merged = None
    if merged_prompt is not None:  # as typed in a shell, like tmplc format: \n is a newline, \\n a backslash-n
        try:
            from tmplc.data.merged import unescape_cli
        except ImportError:  # pragma: no cover - an older tmplc.data
            def unescape_cli(text: str) -> str:
                return text
        merged = MergedPrompt.parse(unescape_cli(merged_prompt))
    convs = []
    for n, row in enumerate(rows[:limit] if limit else rows):
        if isinstance(row, list):  # a bare list of messages
            row = {"messages": row}
        try:
            msgs, _ = normalize_row(row, source=source, merged=merged, output_column=output_column,
                                    default_system=default_system)
            tools = row_tools(row, tools_column)
        except RowProblem as e:
            raise MessageError(None, f"{e} (in {path})", row=n if len(rows) > 1 else None) from None
        except MessageError as e:
            raise MessageError(e.index, f"{e.message} (in {path})", row=n if len(rows) > 1 else None) from None
        convs.append((msgs, tools))
    return convs
