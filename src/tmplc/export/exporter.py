"""``tmplc.export``: HF model (+ LoRA adapter) -> GGUF files + Modelfile + llama.cpp template files +
``export-report.json``, validated before anything gets its final name.

Order: read config/tokenizer/format -> plan tensors and vocabulary -> one pass over the weights
writing every native output type to temporary files -> k-quants by llama.cpp's quantizer ->
checks -> rename (or, on a failed check without ``force``, delete the temporaries and raise
:class:`ValidationFailed`; the report is still written so it says which check and why).
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Sequence

from tmplc.export.errors import ExportInputError, ValidationFailed
from tmplc.export.report import Check, ExportReport, sha256_file

REPORT = "export-report.json"
MODELFILE = "Modelfile"


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _umask_mode())
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _temp_path(out: Path, final: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{final}.", suffix=".partial", dir=out)
    os.close(fd)
    os.chmod(tmp, _umask_mode())
    return Path(tmp)


@contextmanager
def _phase(timings: dict[str, float], name: str):
    """Add the wall time of the block to ``timings[name]`` (the report's phase timer)."""
    t = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t, 3)


def _load_tokenizer(folder: Path, model_dir: Path):
    """The tokenizer as training loaded it: from ``folder`` (the adapter's copy, when it has one) but
    with the model's config, which decides the class (transformers 5 picks another class, with another
    normaliser, for a tokenizer folder without config.json)."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), config=AutoConfig.from_pretrained(str(model_dir)))
    except Exception as exc:  # transformers raises many types for unusable folders
        raise ExportInputError(f"{folder}: cannot load the tokenizer: {exc}") from exc


def _plan(src, template: Any, tokenizer: Any):
    """The format, checkpoint, tensor plan, vocabulary, adapter and chat keys of an export."""
    from tmplc.export.architectures import plan_architecture
    from tmplc.export.lora import load_adapter
    from tmplc.export.metadata import choose_chat_keys
    from tmplc.export.safetensors_reader import Checkpoint
    from tmplc.export.sources import load_format
    from tmplc.export.vocab import build_vocab

    fmt, spec_source = load_format(src, template, tokenizer)
    ck = Checkpoint.from_folder(src.model)
    shapes = {n: ck.shape(n) for n in ck.names()}
    arch = plan_architecture(src.config, shapes, str(src.model / "config.json"))
    emb_rows = shapes["model.embed_tokens.weight"][0]
    if emb_rows != arch.n_vocab:
        raise ExportInputError(f"{src.model}: config vocab_size {arch.n_vocab} != embedding rows {emb_rows}")
    vocab = build_vocab(src.tokenizer_dir, tokenizer, arch.n_vocab)
    lora = load_adapter(src.adapter, set(shapes)) if src.adapter is not None else None
    keys = choose_chat_keys(fmt, vocab, tokenizer)
    return fmt, spec_source, ck, shapes, arch, vocab, lora, keys


def export(model: str | Path, template: Any = None, out: str | Path = "gguf-out", *,
           outtypes: str | Sequence[str] = ("F16",), adapter: str | Path | None = None, name: str | None = None,
           force: bool = False, logits: bool = True, n_random: int = 12, seed: int = 0,
           progress: Callable[[str], None] | None = None) -> ExportReport:
    """Export ``model`` (an HF folder; ``adapter``: a PEFT LoRA folder merged first) with the chat
    format ``template`` (a registry name, spec file/text or ChatFormat; default: the recorded
    ``tmplc.yaml``, else the tokenizer's chat_template) into ``out``.

    Returns the :class:`ExportReport` (also written as ``export-report.json``).

    Raises:
        ExportInputError: unusable input.  ExportRefused: unsupported model/tokenizer/type.
        ValidationFailed: a check failed and ``force`` is false (no GGUF/Modelfile under a final name).
    """
    from tmplc.export import quantize as qz
    from tmplc.export import validate as v
    from tmplc.export.conversations import check_conversations, check_tool_conversations
    from tmplc.export.doctor_check import check_doctor
    from tmplc.export.reference import reference_logits
    from tmplc.export.sources import locate
    from tmplc.export.writer import write_ggufs

    tm: dict[str, float] = {}
    types = qz.parse_outtypes(outtypes)
    kq = [t for t in types if t in qz.KQUANTS]
    if kq:
        qz.llama_cpp_quantizer()  # refuse before any work
    src = locate(model, adapter)
    with _phase(tm, "load tokenizer"):
        tokenizer = _load_tokenizer(src.tokenizer_dir, src.model)
    with _phase(tm, "plan (format, tensors, vocabulary)"):
        fmt, spec_source, ck, shapes, arch, vocab, lora, keys = _plan(src, template, tokenizer)


    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = name or src.model.resolve().name
    finals = {t: f"{base}-{t}.gguf" for t in types}
    native = [t for t in types if t in qz.NATIVE]
    source_for_k = next((t for t in ("F16", "F32") if t in native), None)
    scratch = None
    if kq and source_for_k is None:
        scratch = "F16"
        native.append("F16")
    temps: dict[str, Path] = {t: _temp_path(out_dir, finals.get(t, f"{base}-{t}.gguf")) for t in native}
    report = ExportReport(model=str(src.model), adapter=str(src.adapter) if src.adapter else None,
                          format=fmt.name, spec=fmt.to_yaml(), spec_source=spec_source, outtypes=types,
                          out_dir=str(out_dir), forced=force, timings=tm)
    report.notes += vocab.notes + keys.notes + arch.notes
    if lora is not None:
        report.notes.append(f"LoRA adapter merged into {lora.used()} weights (CPU, float32, then cast)")
    report.metadata = {"architecture": arch.gguf_arch, "tokenizer.ggml.model": vocab.model,
                       "tokenizer.ggml.pre": vocab.pre, "bos_token_id": keys.bos_id, "eos_token_id": keys.eos_id,
                       "eot_token_id": keys.eot_id, "padding_token_id": keys.pad_id, "add_bos_token": keys.add_bos,
                       "add_eos_token": False, "n_vocab": arch.n_vocab}
    all_temps = list(temps.values())
    try:
        with _phase(tm, "weights (read, encode, write, hash)"):
            res = write_ggufs(temps, base, arch, vocab, keys, ck, lora, progress)
        for t, names in res.fallbacks.items():
            report.notes.append(f"{t}: {len(names)} tensors whose rows are not a multiple of 32 are F16 "
                                f"({', '.join(names[:5])}{'...' if len(names) > 5 else ''})")
        for t in kq:
            temps[t] = _temp_path(out_dir, finals[t])
            all_temps.append(temps[t])
            with _phase(tm, f"k-quant {t} (llama.cpp)"):
                qz.kquantize(str(temps[source_for_k or scratch]), str(temps[t]), t)
        from tmplc.errors import TmplcError
        from tmplc.targets.ollama import to_ollama

        first = finals[types[0]]
        modelfile, ollama_refusal = None, None
        try:
            modelfile = to_ollama(fmt, from_="./" + first, allow_untrimmed=True)
        except TmplcError as exc:
            refused = exc
            if fmt.structure.tools is not None:  # the text part, where the tools are what Ollama cannot carry
                try:
                    modelfile = to_ollama(fmt.without_tools(), from_="./" + first, allow_untrimmed=True)
                    report.notes.append(f"the Modelfile carries the text format only, without its tools: {exc}; "
                                        "serve tool calls with llama.cpp (the GGUF's template carries them)")
                except TmplcError as exc2:
                    refused = exc2
            if modelfile is None:
                ollama_refusal = str(refused)
                report.notes.append(f"no Modelfile: the Ollama target refuses this format ({refused})")
        if fmt.trims:
            report.notes.append("the format trims message content and Ollama templates cannot: the Modelfile "
                                "renders contents as sent (strip them before sending)")
        from tmplc.targets.llamacpp import to_llamacpp

        lc_files = to_llamacpp(fmt, check_builtins=False).files()

        # -- checks ---------------------------------------------------------------------------
        convs = check_conversations(n_random, seed)
        probe = temps[native[0]]
        fields = v.gguf_chat_fields(probe)
        tool_convs = check_tool_conversations() if fmt.structure.tools is not None else []
        runs = [("llamacpp_template", lambda: v.check_llamacpp_template(fmt, probe, convs, fields, tool_convs)),
                ("modelfile", lambda: v.check_modelfile(fmt.without_tools(), modelfile, convs, ollama_refusal)),
                ("token_ids", lambda: v.check_token_ids(fmt, probe, tokenizer, convs, fields)),
                ("hf_template", lambda: v.check_hf_template(fmt, tokenizer, convs, tool_convs)),
                ("doctor", lambda: check_doctor(fmt, tokenizer, ck, keys.eot_id, src.model))]
        checks: list[Check] = []
        for cname, run in runs:
            with _phase(tm, f"check {cname}"):
                checks.append(run())
        if "F16" in temps and "F16" != scratch:
            over = res.overflow
            checks.append(Check("f16_range", not over, (
                f"{len(over)} tensors exceed F16's range (+-65504) and would become inf in the F16 file: "
                f"{', '.join(list(over)[:5])}; export bf16 instead (--outtype bf16)") if over else
                "every F16 value is finite", {"tensors": over}))
        lt = [t for t in ("F32", "F16") if t in temps and t != scratch]
        if logits and lt:
            ids = list(tokenizer(fmt.render(list(convs[2]), add_generation_prompt=True, date=v.DAY),
                                 add_special_tokens=False)["input_ids"])[:48]
            with _phase(tm, "check logits: torch reference"):
                ref = reference_logits(src.model, ids, src.adapter, ck)
            for t in lt:
                with _phase(tm, f"check logits_{t.lower()} (llama.cpp)"):
                    checks.append(v.check_logits(temps[t], t, ref, ids))
        report.checks = checks
        report.refused = not report.ok and not force
        if report.refused:
            raise ValidationFailed("export refused: " + "; ".join(f"{c.name}: {c.detail}" for c in report.failed()),
                                   report)
        # -- final names ----------------------------------------------------------------------
        for t in types:
            final = out_dir / finals[t]
            os.replace(temps[t], final)
            report.files[finals[t]] = res.sha256.get(t) or sha256_file(final)
        if modelfile is not None:
            _atomic_write(out_dir / MODELFILE, modelfile.encode("utf-8"))
            report.files[MODELFILE] = sha256_file(out_dir / MODELFILE)
        for rel, text in lc_files.items():
            path = out_dir / rel  # "llama.cpp/chat_template.jinja", "llama.cpp/args.txt"
            _atomic_write(path, text.encode("utf-8"))
            report.files[rel] = sha256_file(path)
        if not report.ok:
            report.notes.append("--force: written although checks failed: " +
                                ", ".join(c.name for c in report.failed()))
        return report
    except BaseException:
        report.refused = not force or not report.checks
        raise
    finally:
        for p in all_temps:
            if p.exists():
                p.unlink()
        _atomic_write(out_dir / REPORT, report.to_json().encode("utf-8"))
