"""The trained folder: what ``tmplc export`` and ``tmplc check`` read.

``OUT/`` gets, each file written under a temporary name and renamed when complete:

* the PEFT adapter (``adapter_config.json``, ``adapter_model.safetensors``; the base model's
  absolute path in ``base_model_name_or_path``);
* the tokenizer with the training format's Jinja as its chat template, in
  ``chat_template.jinja`` **and** ``tokenizer_config.json`` (identical strings: llama.cpp's
  converter reads the latter, transformers 5 the former);
* ``generation_config.json`` whose ``eos_token_id`` lists the end-of-turn token first (or,
  when the end of turn is not one token, ``stop_strings``);
* ``tmplc.yaml``: the training format (``fmt.to_yaml()``), so export defaults to it;
* ``tmplc-train.json``: the options, versions, data summary, doctor findings gone past with
  ``--ignore``, and the attention path used.

``merge=True`` also writes ``OUT/merged/``: a full HF model (weights with the adapter merged,
tokenizer, generation config, tmplc.yaml).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


def _move_in(tmp_dir: Path, dest: Path) -> None:
    """Rename every file of ``tmp_dir`` into ``dest`` (same disk), then remove ``tmp_dir``."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in tmp_dir.iterdir():
        os.replace(f, dest / f.name)
    tmp_dir.rmdir()


def eot_ids(fmt, tokenizer) -> tuple[list[int], list[str]]:
    """(stop ids, stop strings): the end-of-turn token id first, then the tokenizer's EOS."""
    from tmplc.formatter import end_of_turn, tokenizer_info

    eot = end_of_turn(fmt, tokenizer_info(tokenizer))
    ids: list[int] = []
    strings: list[str] = []
    if eot:
        enc = tokenizer.convert_tokens_to_ids(eot)
        if isinstance(enc, int) and enc != tokenizer.unk_token_id and tokenizer.convert_ids_to_tokens(enc) == eot:
            ids.append(enc)
        else:
            strings.append(eot)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(int(tokenizer.eos_token_id))
    return ids, strings


def write_tokenizer(dest: Path, tokenizer, fmt) -> str:
    """Tokenizer files with the format's Jinja in chat_template.jinja and tokenizer_config.json."""
    jinja = fmt.to_jinja()
    tokenizer.chat_template = jinja
    tmp = dest / ".tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(str(tmp))
    cfg_path = tmp / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["chat_template"] = jinja
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp / "chat_template.jinja").write_text(jinja, encoding="utf-8", newline="")
    _move_in(tmp, dest)
    return jinja


def write_generation_config(dest: Path, base_model, fmt, tokenizer) -> dict:
    from transformers import GenerationConfig

    gc = getattr(base_model, "generation_config", None)
    gc = GenerationConfig.from_dict(gc.to_dict()) if gc is not None else GenerationConfig.from_model_config(
        base_model.config)
    ids, strings = eot_ids(fmt, tokenizer)
    old = gc.eos_token_id
    old = [old] if isinstance(old, int) else list(old or [])
    gc.eos_token_id = ids + [i for i in old if i not in ids]
    if tokenizer.bos_token_id is not None:
        gc.bos_token_id = tokenizer.bos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is not None:
        gc.pad_token_id = pad
    if strings:
        gc.stop_strings = strings
    d = gc.to_diff_dict() if hasattr(gc, "to_diff_dict") else gc.to_dict()
    d.update({"eos_token_id": gc.eos_token_id})
    if strings:
        d["stop_strings"] = strings
    _atomic_text(dest / "generation_config.json", json.dumps(d, indent=2) + "\n")
    return d


def write_folder_extras(dest: Path, fmt, tokenizer, base_model) -> None:
    write_tokenizer(dest, tokenizer, fmt)
    write_generation_config(dest, base_model, fmt, tokenizer)
    _atomic_text(dest / "tmplc.yaml", fmt.to_yaml())


def save_adapter(out: Path, peft_model, fmt, tokenizer, record: dict) -> None:
    tmp = out / ".adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    peft_model.save_pretrained(str(tmp))
    _move_in(tmp, out)
    write_folder_extras(out, fmt, tokenizer, peft_model.get_base_model())
    _atomic_text(out / "tmplc-train.json", json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n")


def save_merged(out: Path, peft_model, fmt, tokenizer) -> Path:
    """Merge the adapter into the base weights and write a full HF model folder to ``out/merged``."""
    dest = out / "merged"
    tmp = out / ".merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(str(tmp), safe_serialization=True)
    write_folder_extras(tmp, fmt, tokenizer, merged)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
