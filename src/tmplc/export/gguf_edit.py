"""Existing GGUF files: :func:`inspect_gguf` (what chat format is embedded, and its token keys) and
:func:`set_template` (rewrite the template and the token ids/flags a format implies; tensors
byte-identical, written atomically)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmplc.export.errors import ExportRefused
from tmplc.gguf_container import ARRAY, read_gguf, rewrite_kv


@dataclass
class GGUFInspection:
    path: str
    architecture: str | None
    chat_template: str | None
    registry_entry: str | None
    reason: str | None  # why there is no registry entry
    tokens: dict[str, Any]
    doctor: list[dict] = field(default_factory=list)
    doctor_status: str = ""

    def text(self) -> str:
        t = self.tokens
        lines = [f"file: {self.path}", f"architecture: {self.architecture}"]
        for k in ("bos", "eos", "eot", "padding"):
            lines.append(f"{k}: {t.get(k + '_id')} {t.get(k + '_text')!r}" if t.get(k + "_id") is not None
                         else f"{k}: (not set)")
        lines.append(f"add_bos_token: {t.get('add_bos')}   add_eos_token: {t.get('add_eos')}")
        lines.append(f"registry entry: {self.registry_entry or 'none'}"
                     + (f" ({self.reason})" if self.reason and not self.registry_entry else ""))
        lines.append(f"doctor: {self.doctor_status}")
        for d in self.doctor:
            lines.append(f"  {d.get('severity', 'error')} {d['code']}: {d['message']}")
        lines.append("chat template:" if self.chat_template else "chat template: (none)")
        if self.chat_template:
            lines.append(self.chat_template)
        return "\n".join(lines) + "\n"


def inspect_gguf(path: str | Path) -> GGUFInspection:
    import tmplc
    from tmplc.export.validate import gguf_chat_fields

    f = read_gguf(path)
    g = gguf_chat_fields(Path(path))
    tmpl = g.pop("chat_template")
    entry, reason = None, None
    if tmpl:
        try:
            fmt = tmplc.from_jinja(tmpl, bos_token=g.get("bos_text"), eos_token=g.get("eos_text"))
            entry = tmplc.identify(fmt)
            if entry is None:
                reason = f"converts exactly (as {fmt.name!r}) but equals no registry entry"
        except tmplc.ConversionRefused as exc:
            reason = f"the converter refuses it: {exc.reason}"
    else:
        reason = "no tokenizer.chat_template"
    doctor: list[dict] = []
    try:
        from tmplc.doctor import check as doctor_check
    except ImportError:
        status = "not available (tmplc.doctor is not installed)"
    else:
        try:
            rep = doctor_check(str(path))
            doctor = [{"code": x.code, "severity": str(getattr(x, "severity", "")), "message": x.message}
                      for x in getattr(rep, "findings", rep.errors)]
            status = "ok" if rep.ok else f"{len(rep.errors)} error(s)"
        except Exception as exc:  # the doctor may not read GGUFs: say so, do not hide it
            status = f"could not check this file: {exc}"
    return GGUFInspection(str(path), f.get("general.architecture"), tmpl, entry, reason, g, doctor, status)


def set_template(path: str | Path, template: Any, out: str | Path | None = None) -> dict[str, Any]:
    """Rewrite the chat template and the ids/flags ``template`` implies into ``out`` (default: in place).

    Keys set: ``tokenizer.chat_template`` (the format's llama.cpp target), ``add_bos_token``,
    ``add_eos_token`` (false), ``eos_token_id`` and ``eot_token_id`` (the end-of-turn token),
    ``bos_token_id`` (the format's BOS, when it renders one).  Other ``tokenizer.chat_template.*``
    variants are removed (llama.cpp would prefer one of them for tool calls).  Returns the changes.

    Raises:
        ExportRefused: a token the format needs is not a single token of the GGUF's vocabulary.
    """
    import tmplc
    from tmplc.ir import ChatFormat
    from tmplc.targets.llamacpp import to_llamacpp

    fmt = template if isinstance(template, ChatFormat) else tmplc.load(template)
    f = read_gguf(path)
    tokens = f.get("tokenizer.ggml.tokens", [])
    index: dict[str, int] = {}
    for i, t in enumerate(tokens):
        index.setdefault(t, i)
    target = to_llamacpp(fmt, check_builtins=False)
    changes: dict[str, Any] = {"tokenizer.chat_template": target.chat_template,
                               "tokenizer.ggml.add_bos_token": target.add_bos_token,
                               "tokenizer.ggml.add_eos_token": False}
    eot = fmt.eot_token
    if not eot:
        raise ExportRefused(f"the format {fmt.name!r} declares no end-of-turn token: cannot set the stop token")
    for what, text, keys in (("end-of-turn", eot, ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")),
                             ("BOS", fmt.bos_token, ("tokenizer.ggml.bos_token_id",))):
        if text is None:
            continue
        if text not in index:
            raise ExportRefused(f"{path}: the format's {what} token {text!r} is not in the GGUF's vocabulary "
                                "(a format for another model?)")
        for k in keys:
            changes[k] = index[text]
    remove = {k for k in f.kvs if k.startswith("tokenizer.chat_template.") or k == "tokenizer.chat_templates"}
    for k, kv in f.kvs.items():
        if k in changes and kv.type == ARRAY:
            remove.add(k)
    rewrite_kv(f, out or path, changes, remove)
    return {"changed": {k: (v if k != "tokenizer.chat_template" else f"<{len(v)} characters>")
                        for k, v in changes.items()}, "removed": sorted(remove)}
