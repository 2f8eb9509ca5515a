"""``--tokenizer DIR``: the one place a tokenizer folder is checked and loaded (every command).

tmplc reads a *local folder* holding an HF fast tokenizer's ``tokenizer.json`` (and usually
``tokenizer_config.json``); it never downloads from a model hub.  ``check_tokenizer_dir`` says
precisely what is wrong (``InputError``, exit 2), without importing transformers:

* the path does not exist (and looks like a hub id ``org/name``: say how to download it);
* it is a file, or a folder without ``tokenizer.json`` (a ``tokenizer.model`` only: say how to
  convert it);
* ``tokenizer_config.json`` / ``special_tokens_map.json`` are not UTF-8, not JSON or not an
  object; when loading fails, ``tokenizer.json`` is diagnosed the same way (and whether the
  ``tokenizers`` library loads it).

``load_tokenizer_dir`` then loads it with ``AutoTokenizer.from_pretrained(dir,
local_files_only=True)``; anything transformers still raises becomes an ``InputError``.

``load_tokenizer_info`` gives the formatter's ``TokenizerInfo`` for a folder.  The first load goes
through transformers (so the tokenizer is exactly what transformers builds); what the formatter
needs from it (the backend's JSON and the BOS/EOS/PAD strings) is cached under
``$TMPLC_CACHE_DIR/tokenizers`` (default ``~/.cache/tmplc``), keyed by the sha256 of the folder's
tokenizer files and the transformers and tokenizers versions, so later runs skip importing
transformers (about 2 s).  The entry also holds what building the Rust tokenizer would tell
(BOS/EOS/PAD ids, whether it adds BOS, the vocabulary size), the JSON without the model's
vocabulary and merges (``spec_head``), the vocabulary's id ranges and the JSON's sha256, and the
surface length table (``KEY.surface.npy``), so that a run whose rows all take the tiktoken path
never builds the Rust tokenizer (about 0.5 s), never parses the full JSON (``KEY.tokenizer.json``,
about 0.1 s for a 128k vocabulary) nor recomputes the table.  Delete the folder to clear it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import partial
from pathlib import Path
from typing import Any

from tmplc.fileio import InputError, atomic_write_text, read_text

FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_WHAT = "--tokenizer is a local folder holding an HF fast tokenizer (tokenizer.json)"


def _json_file(path: Path, root: str, required_object: bool = True) -> Any:
    text = read_text(path, what="tokenizer file")
    from tmplc.data.readers import json_depth_exceeds

    if json_depth_exceeds(text, 64):
        raise InputError(path, "JSON nested deeper than 64 levels: not a tokenizer file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, f"invalid JSON: {e.msg} ({_WHAT})", line=e.lineno, column=e.colno) from None
    except (RecursionError, ValueError) as e:
        raise InputError(path, f"unreadable JSON: {e}") from None
    if required_object and not isinstance(data, dict):
        raise InputError(path, f"must hold a JSON object, not {type(data).__name__}")
    return data


def check_tokenizer_dir(path: str | os.PathLike) -> Path:
    """The folder as a Path when it holds a loadable ``tokenizer.json``; else ``InputError``."""
    shown = str(path)
    p = Path(path)
    if not p.exists():
        hint = ""
        if _HUB_ID.fullmatch(shown):
            hint = (f"; {shown!r} looks like a Hugging Face hub id, and tmplc never downloads: fetch the "
                    f"tokenizer first (huggingface-cli download {shown} tokenizer.json tokenizer_config.json "
                    "--local-dir DIR) and pass --tokenizer DIR")
        raise InputError(shown, f"no such folder ({_WHAT}){hint}")
    if not p.is_dir():
        raise InputError(shown, f"is a file; {_WHAT}: pass the folder that holds it")
    tj = p / "tokenizer.json"
    if not tj.is_file():
        try:
            found = sorted(x.name for x in p.iterdir())[:8]
        except OSError as e:
            raise InputError(shown, f"cannot list this folder: {e.strerror or e}") from None
        extra = ""
        if (p / "tokenizer.model").is_file():
            extra = (" (it has a SentencePiece tokenizer.model only: convert it once with transformers, "
                     "AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR), which writes tokenizer.json)")
        raise InputError(shown, f"no tokenizer.json in this folder{extra}; {_WHAT}; "
                                f"found: {found if found else 'nothing (an empty folder)'}")
    for name in FILES[1:]:
        if (p / name).is_file():
            _json_file(p / name, shown)
    return p


def diagnose_tokenizer_json(p: Path) -> None:
    """Raise ``InputError`` saying what is wrong with ``p/tokenizer.json`` (when something is)."""
    tj = p / "tokenizer.json"
    spec = _json_file(tj, str(p))
    if not isinstance(spec.get("model"), dict):
        raise InputError(tj, "not an HF tokenizers file: no 'model' object")
    try:
        from tokenizers import Tokenizer

        Tokenizer.from_file(str(tj))
    except Exception as e:  # the tokenizers library's own message says what it could not read
        raise InputError(tj, f"the tokenizers library cannot load it: {str(e).splitlines()[0][:300]}") from None


def load_tokenizer_dir(path: str | os.PathLike):
    """The transformers tokenizer of a checked local folder (``InputError`` when it cannot load)."""
    p = check_tokenizer_dir(path)
    try:
        from transformers import AutoTokenizer
    except ImportError as e:  # pragma: no cover
        from tmplc.errors import TmplcError

        raise TmplcError(f"loading a tokenizer needs transformers: pip install transformers ({e})") from None
    try:
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as e:
        diagnose_tokenizer_json(p)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise InputError(str(path), f"transformers cannot load this tokenizer: {type(e).__name__}: {first}") \
            from None
    if not getattr(tok, "is_fast", False) or getattr(tok, "backend_tokenizer", None) is None:
        raise InputError(str(path), f"transformers loads it as a slow tokenizer ({type(tok).__name__}); tmplc "
                                    "needs an HF fast tokenizer (tokenizer.json)")
    return tok


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("transformers", "tokenizers"):
        try:
            out.append(f"{pkg}={version(pkg)}")
        except PackageNotFoundError:  # pragma: no cover
            out.append(f"{pkg}=none")
    return ",".join(out)


def _cache_key(p: Path) -> str:
    h = hashlib.sha256(_versions().encode())
    for name in FILES:
        f = p / name
        h.update(name.encode() + b"\0")
        if f.is_file():
            h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _cache_dir() -> Path:
    from tmplc.formatter.fast import _cache_dir as base

    return Path(base()).parent / "tokenizers"


def load_tokenizer_info(path: str | os.PathLike, *, cache: bool = True):
    """The formatter's ``TokenizerInfo`` for a local tokenizer folder (see the module docstring)."""
    from tmplc.formatter.tokenizer_info import TokenizerInfo, tokenizer_info

    p = check_tokenizer_dir(path)
    key = _cache_key(p) if cache else None
    entry = _cache_dir() / f"{key}.json" if key else None
    if entry is not None and entry.is_file():
        try:
            parts = json.loads(entry.read_text(encoding="utf-8"))
            if parts.get("layout") == _LAYOUT:
                text = entry.with_suffix(".tokenizer.json")
                if not text.is_file():
                    raise FileNotFoundError(text)
                return TokenizerInfo.from_parts(partial(text.read_text, encoding="utf-8"), parts["bos"], parts["eos"],
                                                parts["pad"], facts=parts["facts"], surface=_read_surface(entry, parts),
                                                head=parts["head"])
        except Exception:  # an unreadable or older cache entry: load through transformers again
            pass
    info = tokenizer_info(load_tokenizer_dir(p))
    if entry is not None:
        try:
            _write_entry(entry, info)
        except Exception:  # pragma: no cover - a read-only cache is not an error
            pass
    return info


#: the cache entry's layout: KEY.json (what the formatter reads every run, small), KEY.tokenizer.json
#: (the backend's JSON, read only when something needs it) and KEY.surface.npy
_LAYOUT = 2


def _write_entry(entry: Path, info) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    _write_surface(entry, info)
    tj, bos, eos, pad = info.parts()
    atomic_write_text(entry.with_suffix(".tokenizer.json"), tj)
    atomic_write_text(entry, json.dumps({"layout": _LAYOUT, "bos": bos, "eos": eos, "pad": pad, "facts": info.facts(),
                                         "head": info.head, "nfc": info.nfc, "surface": info.surface is not None},
                                        ensure_ascii=False))


def _read_surface(entry: Path, parts: dict) -> tuple | None:
    """The cached surface length table (``TokenizerInfo.surface``, ``nfc``), or None to compute it."""
    if "nfc" not in parts:
        return None
    if not parts.get("surface"):
        return None, False
    f = entry.with_suffix(".surface.npy")
    if not f.is_file():
        return None
    import numpy as np

    return np.load(f, allow_pickle=False), bool(parts["nfc"])


def _write_surface(entry: Path, info) -> None:
    import numpy as np

    if info.surface is None:
        return
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, info.surface, allow_pickle=False)
    os.replace(tmp, entry.with_suffix(".surface.npy"))


def with_special_tokens(info, *, bos: str | None = None, eos: str | None = None):
    """A copy of ``info`` whose {BOS}/{EOS} render ``bos``/``eos`` (``--bos-token/--eos-token``).

    Each must be one token of the tokenizer's vocabulary (``InputError`` otherwise)."""
    import copy

    new = copy.copy(info)
    for name, token in (("bos", bos), ("eos", eos)):
        if token is None:
            continue
        tid = info.rust.token_to_id(token)
        if tid is None:
            raise InputError(None, f"--{name}-token {token!r} is not a token of this tokenizer's vocabulary")
        setattr(new, f"{name}_token", token)
        setattr(new, f"{name}_id", tid)
    if bos is not None:
        with_sp = info.rust.encode("a", add_special_tokens=True).ids
        new.adds_bos = bool(with_sp) and with_sp[0] == new.bos_id
    return new
