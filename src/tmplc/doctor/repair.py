"""``fix(path, out, ...)``: repair what ``check`` finds into a complete new folder (never in place),
with ``tmplc-fix-report.json`` saying what changed.

* ``untrained-tokens``: every untrained row (embedding and lm_head separately) becomes the mean of
  that matrix's *trained* rows, summed in float64 (the plain mean over all rows, zeros included,
  is the bug); trained rows stay byte-identical.  A pad row that is already zero (transformers'
  ``padding_idx`` convention) stays zero.
* pad (``pad-missing``, ``pad-is-eos``, ``pad-is-eot``, ``pad-out-of-range``): an existing reserved /
  pad token that is one token, in range, not BOS/EOS/end-of-turn, not used by the template or the
  data; else a new special token (text colliding with nothing in the vocabulary), the embedding
  (and lm_head) resized when its id does not fit, its row set to the trained mean.  The tokenizer
  files, config.json and generation_config.json are updated together.
* ``eot-not-stop``: the end-of-turn id is added to generation_config.json's ``eos_token_id``.
* ``vocab-out-of-range``: the embedding (and lm_head) grow to cover every token id (new rows: the
  trained mean); config ``vocab_size`` follows.
* ``template-mismatch`` / ``template-shadowed`` / ``template-missing``: one chat template (the given
  training format compiled to Jinja, else the one transformers uses) written to both
  ``chat_template.jinja`` and ``tokenizer_config.json``.
* ``double-bos`` from pre-rendered rows: the tokenizer stops adding BOS (``add_bos_token: false`` and
  the BOS removed from tokenizer.json's post-processor) — the source of the second BOS.  A double
  BOS written by the format itself is not rewritten (the spec is the user's: the report says so);
  the warning case (template BOS + tokenizer BOS, only on a render-then-tokenize path) is left alone.

* ``eot-not-single-token`` / ``template-token-missing`` (errors: ``<|...|>``-style strings): each
  string becomes a new special token (tokenizer.json ``added_tokens``, tokenizer_config.json
  ``added_tokens_decoder``), the embedding (and lm_head) resized as for a new pad token (spare
  rows used first), the new rows the trained mean, config ``vocab_size`` updated; a new end-of-turn
  token is added to generation_config.json's stop ids.  Refused (reported): no tokenizer.json, or a
  string already in the vocabulary that does not tokenize to its id.

Everything else (truncation, disk-space, ``<word>``-style template-token-missing warnings) is
listed as not fixed, with the reason.  Files are written into a temporary sibling folder that is renamed
to ``out`` when complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tmplc.doctor.findings import Report
from tmplc.doctor.model import DoctorInputError, read_json

REPORT_FILE = "tmplc-fix-report.json"

#: pad candidates, in order (exact text or prefix), after Unsloth's list
PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|finetune_right_pad|>", "<pad>", "[PAD]", "<PAD>", "<|pad|>",
                  "<fim_pad>", "<｜▁pad▁｜>", "<|endoftext|>", "<|reserved_special_token_", "<|reserved_",
                  "<unused", "<|placeholder", "<|dummy_", "[control_", "<|vision_pad|>", "<|image_pad|>",
                  "<|video_pad|>")
NEW_PAD_TEXTS = ("<|pad|>", "<｜PAD▁TOKEN｜>", "<|tmplc_pad|>")
PAD_CODES = ("pad-missing", "pad-is-eos", "pad-is-eot", "pad-out-of-range")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def fix(path: str | Path, out: str | Path, template: Any = None, data: Any = None, *,
        max_seq_length: int | None = None, output_dir: str | Path | None = None, tokenizer: Any = None,
        keep_checkpoints: int = 2, pad_token: str | None = None) -> Report:
    """Repair ``path`` into the new folder ``out`` (see the module docstring); returns the re-check of
    ``out`` with ``.changes`` (what was changed) and ``.before`` (the findings before).

    ``pad_token``: the pad token to set (an existing token, or a new special token when the text is not
    in the vocabulary) instead of the automatic choice; it also makes fix set the pad when check found
    nothing wrong with it."""
    from tmplc.doctor.checks import _check_folder, _is_gguf

    src, dst = Path(path), Path(out)
    if src.is_file() and _is_gguf(src):
        raise DoctorInputError(f"{src}: tmplc fix repairs model folders; fix the HF folder and export the GGUF again")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise DoctorInputError(f"{dst}: exists and is not empty (tmplc fix never overwrites; choose a new --out)")
    if dst.resolve() == src.resolve():
        raise DoctorInputError("--out must be a new folder: tmplc fix never edits in place")
    before, ctx = _check_folder(src, template, data, max_seq_length, output_dir, tokenizer, keep_checkpoints)
    dst.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp", dir=dst.parent))
    try:
        changes, not_fixed = _apply(src, work, before, ctx, data, pad_token)
        if dst.exists():
            dst.rmdir()
        work.rename(dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    after, _ = _check_folder(dst, template, data, max_seq_length, output_dir, None, keep_checkpoints)
    after.changes = changes
    after.before = before  # type: ignore[attr-defined]
    after.not_fixed = not_fixed  # type: ignore[attr-defined]
    _write_json(dst / REPORT_FILE, {"source": str(src), "out": str(dst), "changes": changes,
                                    "not_fixed": not_fixed, "before": before.to_json(), "after": after.to_json()})
    return after


# ---------------------------------------------------------------------------------------------------
def _apply(src: Path, work: Path, report: Report, ctx: dict, data, pad_token: str | None
           ) -> tuple[list[dict], list[dict]]:
    folder, facts, res = ctx["folder"], ctx["facts"], ctx["resolved"]
    codes = report.codes()
    changes: list[dict] = []
    not_fixed: list[dict] = []
    for f in src.iterdir():  # a complete copy first; edited files are replaced below
        if f.is_file() and f.name != REPORT_FILE:
            shutil.copy2(f, work / f.name)
        elif f.is_dir():
            shutil.copytree(f, work / f.name)
    tok_json = json.loads((work / "tokenizer.json").read_text(encoding="utf-8")) if (work / "tokenizer.json").is_file() else None
    tok_cfg = read_json(work / "tokenizer_config.json") if (work / "tokenizer_config.json").is_file() else {}
    config = read_json(work / "config.json") if (work / "config.json").is_file() else None
    gen = read_json(work / "generation_config.json") if (work / "generation_config.json").is_file() else None

    # -- pad ------------------------------------------------------------------------------------
    new_rows_needed = 0
    new_ids: list[int] = []  # ids of new tokens: their rows (new or spare) get the trained mean
    keep_zero: set[int] = set()  # the pad row stays zero when it is (transformers' padding_idx convention)
    if facts.pad_id is not None and not (codes & {"pad-is-eos", "pad-is-eot", "pad-out-of-range"}):
        keep_zero.add(facts.pad_id)
    if any(report.by_code(c) for c in PAD_CODES) or pad_token is not None:
        pid, ptxt, new = _choose_pad(folder, facts, ctx, data) if pad_token is None else _given_pad(facts, pad_token)
        if new:
            if tok_json is None:
                raise DoctorInputError(f"{src}: no tokenizer.json: cannot add a pad token")
            tok_json.setdefault("added_tokens", []).append(
                {"id": pid, "content": ptxt, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True})
            tok_cfg.setdefault("added_tokens_decoder", {})[str(pid)] = {
                "content": ptxt, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                "special": True}
            new_rows_needed = pid + 1
            new_ids.append(pid)
        else:
            keep_zero = {pid}
        old = {"tokenizer_config.pad_token": facts.pad,
               "config.pad_token_id": (folder.text_config() or {}).get("pad_token_id") if config else None}
        tok_cfg["pad_token"] = ptxt
        for c in ([config, config.get("text_config")] if config else []):
            if isinstance(c, dict):
                c["pad_token_id"] = pid
        if gen is not None:
            gen["pad_token_id"] = pid
        changes.append({"code": "pad", "pad_id": pid, "pad_token": ptxt, "new_token": new, "old": old,
                        "why": sorted(codes & set(PAD_CODES)),
                        "note": ("added a new special token" if new else "an existing token that is none of "
                                 "BOS/EOS/end-of-turn and unused by the template and data")})

    # -- special strings of the format that are not one token: new special tokens ----------------
    added = _add_missing_tokens(report, facts, tok_json, tok_cfg, max([facts.size] + [i + 1 for i in new_ids]),
                                changes, not_fixed)
    if added:
        new_ids += list(added.values())
        new_rows_needed = max(new_rows_needed, max(added.values()) + 1)
        eot = ctx["eot"]
        if eot in added and (gen is not None or config is not None):
            if gen is None:
                stops, _ = folder.eos_ids_for_generation()
                gen = {"eos_token_id": stops}
            old = gen.get("eos_token_id")
            ids = [i for i in ([old] if isinstance(old, int) else (old or []))]
            gen["eos_token_id"] = ids + [added[eot]]
            changes.append({"code": "eot-not-stop", "file": "generation_config.json", "old": old,
                            "new": gen["eos_token_id"], "added": added[eot], "token": eot,
                            "note": "the end-of-turn token added above is a stop id"})

    # -- vocabulary range -------------------------------------------------------------------------
    rows = folder.embedding_rows
    if "vocab-out-of-range" in codes and rows is not None:
        new_rows_needed = max(new_rows_needed, facts.size)

    # -- weights ----------------------------------------------------------------------------------
    if folder.embedding is not None:
        wch = _fix_weights(folder, work, ctx, keep_zero, new_rows_needed, new_ids)
        changes += wch
        grown = [c for c in wch if c["code"] == "resize"]
        if grown and config is not None:
            n = grown[0]["new_rows"]
            tgt = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
            changes.append({"code": "config.vocab_size", "old": tgt.get("vocab_size"), "new": n})
            tgt["vocab_size"] = n
    elif new_rows_needed:
        not_fixed.append({"code": "resize", "why": "no weights in this folder: resize the model's embeddings to "
                          f"at least {new_rows_needed} rows when you load it"})

    # -- stop ids ---------------------------------------------------------------------------------
    if "eot-not-stop" in codes:
        eot_id = ctx["eot_id"]
        if gen is None:
            stops, _ = folder.eos_ids_for_generation()
            gen = {"eos_token_id": stops}
            if folder.text_config().get("bos_token_id") is not None:
                gen["bos_token_id"] = folder.text_config()["bos_token_id"]
        old = gen.get("eos_token_id")
        ids = [i for i in ([old] if isinstance(old, int) else (old or []))]
        gen["eos_token_id"] = ids + [eot_id]
        changes.append({"code": "eot-not-stop", "file": "generation_config.json", "old": old,
                        "new": gen["eos_token_id"], "added": eot_id, "token": ctx["eot"]})

    # -- templates --------------------------------------------------------------------------------
    tmpl_codes = codes & {"template-mismatch", "template-shadowed", "template-missing"}
    if "template-unimportable" in codes and res.source == "given":
        tmpl_codes.add("template-unimportable")
    if tmpl_codes:
        if res.source == "given":
            text, which = res.fmt.to_jinja(), f"the training format {res.name!r} compiled to Jinja"
        else:
            text, which = folder.chat_template_jinja, "chat_template.jinja (the one transformers uses)"
        old_cfg = tok_cfg.get("chat_template")
        tok_cfg["chat_template"] = text
        tmp = work / "chat_template.jinja.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(work / "chat_template.jinja")
        changes.append({"code": "chat_template", "why": sorted(tmpl_codes),
                        "written": which, "files": ["chat_template.jinja", "tokenizer_config.json"],
                        "old_tokenizer_config_chars": len(old_cfg) if isinstance(old_cfg, str) else None,
                        "new_chars": len(text)})

    # -- double BOS -------------------------------------------------------------------------------
    for f in report.by_code("double-bos"):
        if f.severity != "error":
            continue
        if f.details.get("path") == "data":
            ok = tok_json is not None and _drop_bos_post_processor(tok_json, facts.bos)
            if ok:
                tok_cfg["add_bos_token"] = False
                changes.append({"code": "double-bos", "source": "tokenizer flag", "bos_id": facts.bos_id,
                                "rows": f.details.get("rows", [])[:50],
                                "note": "the tokenizer no longer adds BOS (add_bos_token: false, BOS removed from "
                                        "tokenizer.json's post-processor): the pre-rendered rows carry their own. "
                                        "Plain text tokenized with this tokenizer gets no BOS now"})
            else:
                not_fixed.append({"code": "double-bos", "why": "the tokenizer's post-processor is not a "
                                  "TemplateProcessing tmplc can edit: strip BOS from the text rows"})
        else:
            not_fixed.append({"code": "double-bos", "why": "the format itself writes BOS twice: edit the spec "
                              "(tmplc does not rewrite a given format)"})

    for code, why in (("truncation", "a data decision: --max-seq-length or drop/split rows"),
                      ("disk-space", "free space or choose another --output-dir"),
                      ("template-unimportable", "pass --template: tmplc then writes it as the chat_template")):
        if code in codes and not (code == "template-unimportable" and res.source == "given"):
            not_fixed.append({"code": code, "why": why})

    if tok_json is not None:
        _write_json(work / "tokenizer.json", tok_json)
    if tok_cfg:
        _write_json(work / "tokenizer_config.json", tok_cfg)
    if config is not None:
        _write_json(work / "config.json", config)
    if gen is not None:
        _write_json(work / "generation_config.json", gen)
    return changes, not_fixed


def _add_missing_tokens(report: Report, facts, tok_json: dict | None, tok_cfg: dict, first_id: int,
                        changes: list[dict], not_fixed: list[dict]) -> dict[str, int]:
    """The format's special strings that are not one token (``eot-not-single-token``, and the
    ``template-token-missing`` errors: ``<|...|>``-style strings) become new special added tokens
    (tokenizer.json ``added_tokens`` + tokenizer_config.json ``added_tokens_decoder``), ids from
    ``first_id`` on.  Returns text -> new id.  The ``<word>``-style warnings are left alone: such a
    string may be meant as text.  Refused (in ``not_fixed``): no tokenizer.json, or a string that is
    already in the vocabulary but tokenizes to several ids (making it special would change what the
    existing id means; mark it special yourself if that is intended)."""
    wanted = [f for f in report.by_code("eot-not-single-token")] + \
        [f for f in report.by_code("template-token-missing") if f.severity == "error"]
    if not wanted:
        return {}
    if tok_json is None:
        for f in wanted:
            not_fixed.append({"code": f.code, "token": f.details["token"],
                              "why": "no tokenizer.json in the folder: tmplc adds tokens there"})
        return {}
    vocab = facts.tokenizer.get_vocab()
    added: dict[str, int] = {}
    for f in wanted:
        text = f.details["token"]
        if text in added:
            continue
        if text in vocab:
            not_fixed.append({"code": f.code, "token": text, "id": vocab[text],
                              "why": f"{text!r} is token {vocab[text]} of the vocabulary but does not tokenize to it; "
                                     "making it a special token changes what that trained id stands for: do it "
                                     "yourself (tokenizer.add_special_tokens) if intended"})
            continue
        i = first_id + len(added)
        added[text] = i
        tok_json.setdefault("added_tokens", []).append(
            {"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True})
        tok_cfg.setdefault("added_tokens_decoder", {})[str(i)] = {
            "content": text, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}
        changes.append({"code": f.code, "token": text, "new_id": i, "old_ids": f.details.get("ids"),
                        "note": "added as a special token (tokenizer.json added_tokens, tokenizer_config.json "
                                "added_tokens_decoder); its embedding / lm_head rows are the trained mean. The "
                                "model has never seen it: train embed_tokens and lm_head (LoRA: modules_to_save)"})
    return added


def _drop_bos_post_processor(tok_json: dict, bos: str | None) -> bool:
    pp = tok_json.get("post_processor")
    if not bos or not isinstance(pp, dict):
        return False
    procs = pp.get("processors") if pp.get("type") == "Sequence" else [pp]
    done = False
    for proc in procs or []:
        if isinstance(proc, dict) and proc.get("type") == "TemplateProcessing":
            for key in ("single", "pair"):
                seq = proc.get(key) or []
                proc[key] = [x for x in seq if not (isinstance(x, dict) and (x.get("SpecialToken") or {}).get("id") == bos)]
            done = True
    return done


def _given_pad(facts, text: str) -> tuple[int, str, bool]:
    i = facts.single_id(text)
    if i is not None:
        if i in {facts.bos_id, facts.eos_id}:
            raise DoctorInputError(f"--pad-token {text!r} is the BOS/EOS token: choose another")
        return i, text, False
    if text in facts.tokenizer.get_vocab():
        raise DoctorInputError(f"--pad-token {text!r} exists but is not one token when tokenized")
    return facts.size, text, True


def _choose_pad(folder, facts, ctx, data) -> tuple[int, str, bool]:
    """(id, text, is_new)."""
    rows = folder.embedding_rows
    banned = {i for i in (facts.bos_id, facts.eos_id, ctx["eot_id"]) if i is not None}
    banned |= set(folder.eos_ids_for_generation()[0])
    banned |= ctx["template_ids"]
    cands: list[tuple[int, str]] = []
    for pat in PAD_CANDIDATES:
        hits = sorted(((i, t) for t, i in facts.added.items() if t == pat or (pat.endswith(("_", "<unused"))
                                                                               and t.startswith(pat))),
                      key=lambda x: -x[0])  # newest (highest) first, as Unsloth
        cands += hits
    if facts.unk is not None and facts.unk_id is not None:
        cands.append((facts.unk_id, facts.unk))
    cands = [(i, t) for i, t in cands if i not in banned and (rows is None or i < rows)
             and facts.single_id(t) == i]
    if cands and data is not None:
        from tmplc.doctor.data import read_data, scan_data

        scan = scan_data(ctx["resolved"].fmt, facts.tokenizer, read_data(data), None, [i for i, _ in cands])
        cands = [(i, t) for i, t in cands if i not in scan.used]
    if cands:
        i, t = cands[0]
        return i, t, False
    vocab = facts.tokenizer.get_vocab()
    for t in NEW_PAD_TEXTS:
        if t not in vocab and not any(t in v or v in t for v in facts.added if len(v) > 2):
            return facts.size, t, True
    raise DoctorInputError("no pad token text is free in this vocabulary")


def _fix_weights(folder, work: Path, ctx, keep_zero: set[int], new_rows: int, new_ids: list[int]) -> list[dict]:
    import torch
    from safetensors.torch import load_file, save_file

    from tmplc.doctor.weights import trained_mean

    scans = ctx["scans"]
    refs = {"embedding": folder.embedding}
    if "lm_head" in scans:
        refs["lm_head"] = folder.lm_head
    elif not folder.tied and folder.lm_head is not None:
        refs["lm_head"] = folder.lm_head
    by_file: dict[Path, list[str]] = {}
    for which, ref in refs.items():
        by_file.setdefault(ref.file, []).append(which)
    changes: list[dict] = []
    delta_bytes = 0
    for file, whiches in by_file.items():
        planned = []
        for which in whiches:
            scan = scans.get(which)
            untrained = set(scan.flags) if scan is not None else set()
            to_set = sorted(i for i in untrained if not (i in keep_zero and scan.flags[i] == "zero"))
            grow = max(0, new_rows - refs[which].rows)
            # new tokens whose ids fall in spare rows: their rows get the trained mean too
            extra = sorted(i for i in new_ids if i < refs[which].rows and i not in to_set)
            if to_set or grow or extra:
                planned.append((which, untrained, to_set, extra, grow))
        if not planned:
            continue
        sd = load_file(str(file))
        meta = _metadata(file)
        for which, untrained, to_set, extra, grow in planned:
            name = refs[which].name
            w = sd[name]
            mean64 = trained_mean(w, untrained)
            mean = mean64.to(w.dtype)
            if to_set:
                w[torch.tensor(to_set, dtype=torch.long)] = mean
                changes.append({"code": "untrained-tokens", "matrix": which, "tensor": name, "ids": to_set,
                                "tokens": [ctx["facts"].text(i) for i in to_set[:200]],
                                "new_value": "mean of the trained rows (float64, cast to " + str(w.dtype) + ")",
                                "mean_norm": float(mean64.norm()), "trained_rows": w.shape[0] - len(untrained)})
            if extra:
                w[torch.tensor(extra, dtype=torch.long)] = mean
                changes.append({"code": "new-token-row", "matrix": which, "tensor": name, "ids": extra,
                                "new_value": "mean of the trained rows"})
            if grow:
                w = torch.cat([w, mean.unsqueeze(0).expand(grow, -1).clone()], dim=0)
                delta_bytes += grow * w.shape[1] * w.element_size()
                changes.append({"code": "resize", "matrix": which, "tensor": name, "old_rows": w.shape[0] - grow,
                                "new_rows": w.shape[0], "new_value": "mean of the trained rows"})
            sd[name] = w.contiguous()
        tmp = work / (file.name + ".tmp")
        save_file(sd, str(tmp), metadata=meta)
        tmp.replace(work / file.name)
        del sd
    idx = work / "model.safetensors.index.json"
    if delta_bytes and idx.is_file():
        data = read_json(idx)
        if isinstance(data.get("metadata"), dict) and isinstance(data["metadata"].get("total_size"), int):
            data["metadata"]["total_size"] += delta_bytes
            _write_json(idx, data)
    return changes


def _metadata(file: Path) -> dict:
    import struct

    with open(file, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        head = json.loads(fh.read(n))
    return head.get("__metadata__") or {"format": "pt"}
