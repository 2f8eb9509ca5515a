"""The doctor on a GGUF file: its key/values and tensor shapes, read by :mod:`tmplc.gguf_container`
(the same values as gguf-py's ``GGUFReader``, in milliseconds instead of seconds), and the
``token_embd`` / ``output`` rows.

What llama.cpp will do is computed as llama.cpp does it (``src/llama-vocab.cpp``):

* ``add_bos``: the ``tokenizer.ggml.add_bos_token`` key, else the vocabulary default (SPM ``llama``
  and WPM ``bert``: true; BPE ``gpt2``: true only for the Llama-3-family pre-tokenizers).
* the end-of-generation set: ``eos``/``eot``/``eom`` ids plus every token whose *text* is on
  llama.cpp's EOG list (``<|eot_id|>``, ``<|im_end|>``, ``<end_of_turn>`` ...).

Findings: ``double-bos`` (``add_bos`` and a template that renders BOS: two BOS on llama.cpp's
raw-completion / client-rendered path — a warning, since ``--jinja`` strips the template's; an
error when the template itself renders two), ``eot-not-single-token`` / ``template-token-missing``
(a special string of the format that is not a token of the GGUF vocabulary, or not typed CONTROL
so llama.cpp does not parse it as special), ``eot-not-stop``, ``pad-is-eos`` / ``pad-is-eot`` /
``pad-out-of-range`` (warnings at export: pad matters for training, not for llama.cpp),
``vocab-out-of-range`` (token ids >= ``token_embd`` rows), ``template-mismatch`` (the given
training format vs the GGUF's ``tokenizer.chat_template``, IR equality), ``template-unimportable``,
``untrained-tokens`` (below).

**Untrained rows.** ``token_embd.weight`` and, when the GGUF has one (untied), ``output.weight``
are scanned like a safetensors matrix (:mod:`tmplc.doctor.weights`): F32 / F16 / BF16 / F64 rows
straight from the memory-mapped file; quantized rows (Q8_0, Q4_K, ...) dequantized a chunk of rows
at a time with gguf-py's ``gguf.quants.dequantize`` (so ``zero`` and ``duplicate`` are exact: a
zero row quantizes to zero, identical rows to identical blocks; "equals the trained mean" allows
the quantization error).  Without gguf-py, or for a type it cannot dequantize, the finding
``untrained-not-checked`` (info) says so.  ``used_by``: ``template`` when the token's text
appears as a special token in a render of the format (a GGUF has no data to check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmplc.doctor.findings import Finding, Report
from tmplc.doctor.model import DoctorInputError

LLAMA3_PRE = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
              "jina-v5-nano"}
EOG_TEXTS = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
             "_<EOT>", "<｜end▁of▁sentence｜>", "<end_of_utterance>", "<|return|>", "<|call|>", "<|eom_id|>"}
CONTROL = 3


class GGUFVocab:
    """The GGUF's tokenizer keys, read once."""

    def __init__(self, path: Path) -> None:
        from tmplc.gguf_container import GGUFError, read_gguf

        try:
            self.file = read_gguf(path)
        except GGUFError as e:
            raise DoctorInputError(f"not a readable GGUF file: {e}") from None
        self.path = Path(path)
        self.kv = self.file.values()
        self.tensors = {t.name: (t.shape, t.ggml_type) for t in self.file.tensors}
        self.tokens: list[str] = list(self.value("tokenizer.ggml.tokens") or [])
        if not self.tokens:
            raise DoctorInputError(f"{path}: the GGUF has no tokenizer.ggml.tokens")
        self.types: list[int] = list(self.value("tokenizer.ggml.token_type") or [])
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.model = self.value("tokenizer.ggml.model")
        self.pre = self.value("tokenizer.ggml.pre")
        self.ids = {k: self.value(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "eot", "eom", "padding")}
        flag = self.value("tokenizer.ggml.add_bos_token")
        self.add_bos_key = flag
        if flag is not None:
            self.add_bos = bool(flag)
        elif self.model in ("llama", "bert"):
            self.add_bos = True
        elif self.model == "gpt2":
            self.add_bos = self.pre in LLAMA3_PRE
        else:
            self.add_bos = False
        self.template = self.value("tokenizer.chat_template")
        emb = self.tensors.get("token_embd.weight")
        self.embd_rows = int(emb[0][-1]) if emb is not None and len(emb[0]) == 2 else None

    def value(self, key: str) -> Any:
        return self.kv.get(key)

    def text(self, i: int | None) -> str | None:
        return self.tokens[i] if isinstance(i, int) and 0 <= i < len(self.tokens) else None

    def show(self, i: int | None) -> str:
        return f"id {i} {self.text(i)!r}" if i is not None else "none"

    def eog(self) -> set[int]:
        ids = {i for k, i in self.ids.items() if k in ("eos", "eot", "eom") and isinstance(i, int)}
        return ids | {self.index[t] for t in EOG_TEXTS if t in self.index}


def check_gguf(path: Path, template: Any = None) -> Report:
    from tmplc.doctor.template import STRICT_RE, import_chat_template, load_format, render_probe

    v = GGUFVocab(path)
    bos, eos = v.text(v.ids["bos"]), v.text(v.ids["eos"])
    given = load_format(template) if template is not None else None
    tok_fmt, refusal = None, None
    if isinstance(v.template, str) and v.template:
        tok_fmt, refusal = import_chat_template(v.template, bos=bos, eos=eos, name=path.stem,
                                                with_tools=given is not None and given.structure.tools is not None)
    if given is not None:
        fmt, source = given, "given"
        name = fmt.name
    elif tok_fmt is not None:
        from tmplc.convert import identify

        fmt, source, name = tok_fmt, "gguf chat_template", identify(tok_fmt) or tok_fmt.name
    else:
        fmt, source, name = None, "none", None
    report = Report(path, name, source)
    add = report.add
    if refusal is not None:
        add(Finding("template-unimportable", "warning" if source == "given" else "error",
                    f"the GGUF's tokenizer.chat_template cannot be imported by tmplc's converter: {refusal}",
                    "pass --template (the training format) to check against it", {"reason": refusal}))
    elif v.template is None:
        add(Finding("template-missing", "warning", "the GGUF has no tokenizer.chat_template: llama.cpp falls back "
                    "to a built-in template chosen by heuristics (or chatml)",
                    "export with the training format's template (tmplc compile --to llamacpp)", {}))
    if source == "given" and tok_fmt is not None:
        from tmplc.convert.identify import equivalent

        if not equivalent(fmt, tok_fmt):
            from tmplc.convert import identify

            add(Finding("template-mismatch", "error",
                        f"the GGUF's chat template ({identify(tok_fmt) or 'not a registry format'}) is not the training "
                        f"format {name!r}: llama.cpp / Ollama prompt the model with a format it was not trained on",
                        "re-export with the training format's template (gguf-new-metadata --chat-template-file)",
                        {"gguf_template": identify(tok_fmt), "training_template": name}))
    n = len(v.tokens)
    # -- vocabulary range -----------------------------------------------------------------------
    if v.embd_rows is not None and n > v.embd_rows:
        add(Finding("vocab-out-of-range", "error",
                    f"the GGUF vocabulary has {n} tokens but token_embd has {v.embd_rows} rows: ids "
                    f"{v.embd_rows}..{n - 1} index past the embedding",
                    "re-export after resizing the embeddings to the tokenizer", {"tokens": n, "rows": v.embd_rows}))
    for k, i in v.ids.items():
        if isinstance(i, int) and i >= n and k != "padding":
            add(Finding("vocab-out-of-range", "error", f"tokenizer.ggml.{k}_token_id = {i} is >= the {n} tokens: "
                        "llama.cpp warns and falls back to a default id", f"set the right {k} id",
                        {"key": f"tokenizer.ggml.{k}_token_id", "id": i, "tokens": n}))
    # -- pad ------------------------------------------------------------------------------------
    eot_text = None
    if fmt is not None:
        from tmplc.formatter.tokenizer_info import end_of_turn

        eot_text = end_of_turn(fmt, _Specials(v, bos, eos))
    eot_id = v.index.get(eot_text) if eot_text else None
    pad = v.ids["padding"]
    if isinstance(pad, int):
        if pad >= n:
            add(Finding("pad-out-of-range", "warning", f"tokenizer.ggml.padding_token_id = {pad} is >= the {n} tokens",
                        "set a pad id inside the vocabulary", {"pad_id": pad, "tokens": n}))
        elif eot_id is not None and pad == eot_id:
            add(Finding("pad-is-eot", "warning",
                        f"the pad token {v.show(pad)} is the end-of-turn token: harmless for llama.cpp (it does not use "
                        "pad), but the HF model was likely trained with it, and a collator masking labels by pad id "
                        "erased every end-of-turn label (the model may not stop)",
                        "check the training side with tmplc check on the HF folder", {"pad_id": pad, "eot_id": eot_id}))
        elif pad == v.ids["eos"]:
            add(Finding("pad-is-eos", "warning",
                        f"the pad token {v.show(pad)} is the EOS token: harmless for llama.cpp, a training hazard (a "
                        "collator masking labels by pad id erases EOS labels)",
                        "check the training side with tmplc check on the HF folder", {"pad_id": pad}))
    # -- untrained rows -------------------------------------------------------------------------
    for f in untrained_findings(v, fmt, bos, eos):
        add(f)
    if fmt is None:
        report.sort()
        return report
    # -- special strings ------------------------------------------------------------------------
    if eot_text:
        if eot_id is None:
            add(Finding("eot-not-single-token", "error",
                        f"the end-of-turn marker {eot_text!r} of format {fmt.name!r} is not a token of the GGUF "
                        "vocabulary: llama.cpp cannot stop on it as one token",
                        "export with the tokenizer the model was trained with", {"token": eot_text}))
        elif eot_id not in v.eog():
            add(Finding("eot-not-stop", "error",
                        f"the end-of-turn token {v.show(eot_id)} is not in llama.cpp's end-of-generation set "
                        f"(eos {v.show(v.ids['eos'])}, eot {v.show(v.ids['eot'])}, and tokens with known EOG texts): "
                        "generation runs on past the answer",
                        f"write tokenizer.ggml.eot_token_id = {eot_id} (or eos_token_id)",
                        {"eot_id": eot_id, "eog": sorted(v.eog())}))
    strings = {m.group(0) for frag in fmt.structure.fragments() for p in frag if hasattr(p, "value")
               for m in STRICT_RE.finditer(p.value)}
    if eot_text:
        strings.add(eot_text)
    for s in sorted(strings):
        i = v.index.get(s)
        if i is None:
            if s != eot_text:
                add(Finding("template-token-missing", "error",
                            f"format {fmt.name!r} writes {s!r}, which is not a token of the GGUF vocabulary",
                            "export with the tokenizer the model was trained with", {"token": s}))
        elif v.types and i < len(v.types) and v.types[i] != CONTROL:
            add(Finding("template-token-missing", "warning",
                        f"{s!r} ({v.show(i)}) is typed {v.types[i]} in tokenizer.ggml.token_type, not CONTROL (3): "
                        "llama.cpp's parse_special does not match it in prompt text, so the template's text tokenizes "
                        "differently than in training",
                        "mark the format's special tokens CONTROL when exporting", {"token": s, "id": i,
                                                                                  "type": v.types[i]}))
    # -- double BOS -----------------------------------------------------------------------------
    if bos:
        class _F:  # what render_probe needs
            pass

        facts = _F()
        facts.bos, facts.eos = bos, eos
        text = render_probe(fmt, facts)
        if text.startswith(bos + bos):
            add(Finding("double-bos", "error", f"format {fmt.name!r} renders BOS {bos!r} twice at the start",
                        "remove the second BOS from the template", {"path": "template", "bos_id": v.ids["bos"]}))
        elif v.add_bos and text.startswith(bos):
            where = "tokenizer.ggml.add_bos_token = true" if v.add_bos_key is not None else \
                f"no add_bos_token key: llama.cpp's default for {v.model}/{v.pre} is to add BOS"
            add(Finding("double-bos", "warning",
                        f"the template renders BOS {bos!r} and llama.cpp adds one ({where}): a client that renders the "
                        "template and sends the text to /completion (or tokenizes with add_special) gets two BOS "
                        "(llama.cpp prints check_double_bos_eos: 'Added a BOS token to the prompt as specified by the "
                        "model but the prompt also starts with a BOS token'). llama-server --jinja strips the "
                        "template's BOS itself",
                        "export with tokenizer.ggml.add_bos_token = false, or a template without BOS for raw "
                        "completion clients", {"path": "gguf add_bos_token", "bos_id": v.ids["bos"],
                                               "add_bos_key": v.add_bos_key}))
    report.sort()
    return report


class _Specials:
    """What ``end_of_turn`` reads from a TokenizerInfo, from the GGUF vocabulary (CONTROL tokens)."""

    def __init__(self, v: GGUFVocab, bos: str | None, eos: str | None) -> None:
        import re

        self.bos_token, self.eos_token = bos, eos
        if v.types:
            names = [t for t, ty in zip(v.tokens, v.types) if ty == CONTROL and len(t) > 1]
        else:
            names = [t for t in v.tokens if len(t) > 2 and t.startswith("<") and t.endswith(">")]
        names.sort(key=len, reverse=True)
        self.special_re = re.compile("|".join(re.escape(t) for t in names)) if names else None


#: GGUF tensor types read directly (ggml type -> float kind of :mod:`tmplc.doctor.weights`)
DIRECT = {0: "F32", 1: "F16", 30: "BF16", 28: "F64"}


def _rows(v: GGUFVocab, name: str):
    """(RawRows, closer) for tensor ``name`` (ggml shape [hidden, rows]), or (None, reason)."""
    import numpy as np

    from tmplc.doctor.weights import MappedMatrix, RawRows

    t = v.file.tensor(name)
    if t is None or len(t.shape) != 2:
        return None, None
    cols, rows = int(t.shape[0]), int(t.shape[1])
    start = v.file.data_start + t.offset
    kind = DIRECT.get(t.ggml_type)
    if kind is not None:
        m = MappedMatrix(v.path, start, rows, cols, kind)
        return RawRows(name, rows, cols, kind, kind, m.chunk, m.release), m.close
    try:
        import gguf
        from gguf.quants import dequantize

        qtype = gguf.GGMLQuantizationType(t.ggml_type)
        block, size = gguf.GGML_QUANT_SIZES[qtype]
    except ImportError:
        return None, f"type {t.ggml_type} is quantized and gguf-py (pip install gguf) is not installed to dequantize it"
    except (ValueError, KeyError):
        return None, f"ggml type {t.ggml_type} is unknown to gguf-py"
    if cols % block:
        return None, f"{cols} columns are not a multiple of the {qtype.name} block size {block}"
    row_bytes = cols // block * size
    m = MappedMatrix(v.path, start, rows, row_bytes, "U8")

    def chunk(a: int, b: int):
        return dequantize(np.asarray(m.chunk(a, b)), qtype).reshape(b - a, cols).view(np.uint32)

    return RawRows(name, rows, cols, "F32", qtype.name, chunk, m.release, step=256, quantized=True), m.close


class _TextFacts:
    def __init__(self, v: GGUFVocab) -> None:
        self.text = v.text


def untrained_findings(v: GGUFVocab, fmt, bos: str | None, eos: str | None) -> list[Finding]:
    """``untrained-tokens`` for ``token_embd`` (and ``output`` when untied), or
    ``untrained-not-checked`` (info) when a matrix's type cannot be read."""
    from tmplc.doctor.untrained import untrained_finding
    from tmplc.doctor.weights import scan_matrix

    scans, skipped = {}, []
    for which, name in (("embedding", "token_embd.weight"), ("lm_head", "output.weight")):
        try:
            raw, close = _rows(v, name)
        except ValueError as e:
            raise DoctorInputError(f"{v.path}: cannot read tensor {name}: {e}") from None
        if raw is None:
            if close is not None:
                skipped.append(f"{name}: {close}")
            continue
        try:
            scans[which] = scan_matrix(raw)
        except Exception as e:  # noqa: BLE001 - a type gguf-py cannot dequantize: say so, do not guess
            if not raw.quantized:
                raise
            skipped.append(f"{name}: gguf-py cannot dequantize {raw.dtype}: {type(e).__name__}: {e}")
        finally:
            close()
    out = []
    if skipped:
        out.append(Finding("untrained-not-checked", "info",
                           "untrained rows were not checked for " + "; ".join(skipped),
                           "check the HF folder before export (tmplc check MODEL_DIR)", {"skipped": skipped}))
    if scans:
        f = untrained_finding(scans, _TextFacts(v), fmt, template_ids(v, fmt, bos, eos), None, False)
        if f is not None:
            from dataclasses import replace

            out.append(replace(f, fix="fix the HF folder (tmplc fix MODEL_DIR --out FIXED sets untrained rows to the "
                                      "mean of the trained rows) and export the GGUF again; or start from the "
                                      "instruct model"))
    return out


def template_ids(v: GGUFVocab, fmt, bos: str | None, eos: str | None) -> set[int]:
    """Ids of the special tokens (CONTROL/USER_DEFINED, or ``<...>``-looking) that a render of the
    format contains (with and without the generation prompt)."""
    if fmt is None:
        return set()
    from tmplc.doctor.template import render_probe

    class _F:
        pass

    facts = _F()
    facts.bos, facts.eos = bos, eos
    rx = _Specials(v, bos, eos).special_re
    if rx is None:
        return set()
    ids: set[int] = set()
    for gen in (False, True):
        try:
            text = render_probe(fmt, facts, gen)
        except Exception:  # noqa: BLE001 - a format that cannot render the probe
            continue
        ids.update(v.index[m.group(0)] for m in rx.finditer(text) if m.group(0) in v.index)
    return ids
