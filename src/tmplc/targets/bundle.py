"""``--to all``: every target written into one directory, plus a manifest.

Files::

    chat_template.jinja            HF chat template
    tokenizer_config.json          fragment to merge into a tokenizer_config.json (eos = end of turn)
    Modelfile                      Ollama
    llama.cpp/chat_template.jinja  for GGUF tokenizer.chat_template / --chat-template-file
    llama.cpp/args.txt             llama-server / llama-cli arguments and GGUF metadata
    spec.yaml, format.spec         canonical spec (with metadata / plain)
    format.json                    the IR
    manifest.json                  target -> file -> sha256 (for export-time validation)

Every file is written to a temporary name and renamed when complete (``tmplc.fileio``); the
manifest is removed first and written last, so a folder with a manifest is a complete run.

A target that refuses the format is recorded in the manifest under ``refused`` with its reason
instead of being silently skipped (e.g. Ollama for a ``{DATE=...}`` that is not ``%Y-%m-%d``, the
only date its ``currentDate`` gives; llama.cpp for a date format with time-of-day conversions).  A format with ``|trim`` gets a Modelfile that renders
contents as sent (Ollama templates cannot trim); that is recorded under ``caveats`` and printed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tmplc.errors import TmplcError

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ChatFormat


def _tokenizer_config(fmt: "ChatFormat") -> str:
    """chat_template, bos_token and eos_token for tokenizer_config.json.

    ``eos_token`` is the end-of-turn token (what ends an assistant turn) so that ``generate``
    stops where the model was trained to stop -- the "model never stops" bug is an instruct
    model whose config names the base EOS (``<|end_of_text|>``) while its turns end with
    ``<|eot_id|>``.  When the spec itself uses ``{EOS}``, the template renders the tokenizer's
    ``eos_token``, so that one is kept."""
    cfg: dict = {"chat_template": fmt.to_jinja()}
    if fmt.meta.bos_token is not None:
        cfg["bos_token"] = fmt.meta.bos_token
    eos = fmt.meta.eos_token if fmt.structure.uses("EOS") else fmt.eot_token
    if eos is not None:
        cfg["eos_token"] = eos
    return json.dumps(cfg, indent=2, ensure_ascii=False) + "\n"


def _targets(fmt: "ChatFormat", from_: str | None) -> dict[str, Callable[[], dict[str, str]]]:
    def llamacpp() -> dict[str, str]:
        return fmt.to_llamacpp().files()

    return {
        "jinja": lambda: {"chat_template.jinja": fmt.to_jinja(),
                          "tokenizer_config.json": _tokenizer_config(fmt)},
        "ollama": lambda: {"Modelfile": fmt.to_ollama(from_=from_, allow_untrimmed=True)},
        "llamacpp": llamacpp,
        "spec": lambda: {"spec.yaml": fmt.to_yaml(), "format.spec": fmt.to_spec()},
        "json": lambda: {"format.json": json.dumps(fmt.to_dict(), indent=2, ensure_ascii=False) + "\n"},
    }


def write_all(fmt: "ChatFormat", out_dir: str | Path, *, from_: str | None = None) -> dict:
    """Write every target into ``out_dir``; return (and write) the manifest."""
    from tmplc import __version__

    from tmplc.fileio import OutputError, atomic_write_bytes, atomic_write_text

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(out, "is a file; --to all writes a folder: give a folder name")
    stale = out / "manifest.json"
    try:  # the manifest is written last: a folder without one is an incomplete run
        stale.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        raise OutputError(stale, f"cannot replace the previous manifest: {e.strerror or e}") from None
    manifest: dict = {"tmplc": __version__, "format": fmt.name, "targets": {}, "refused": {}, "caveats": {}}
    from tmplc.targets.ollama import untrimmed_caveat

    caveat = untrimmed_caveat(fmt)
    if caveat is not None:
        manifest["caveats"]["ollama"] = caveat
    for target, make in _targets(fmt, from_).items():
        try:
            files = make()
        except TmplcError as e:
            manifest["refused"][target] = str(e)
            continue
        entry = {}
        for rel, text in files.items():
            data = text.encode("utf-8")
            atomic_write_bytes(out / rel, data)  # temp name + rename; parents created
            entry[rel] = hashlib.sha256(data).hexdigest()
        manifest["targets"][target] = entry
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest
