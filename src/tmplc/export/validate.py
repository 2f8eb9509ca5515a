"""Export-time validation: the checks that run on the written (still temporary) files before they
get their final names.  Each returns a :class:`~tmplc.export.report.Check`; none raises on a
mismatch.  The engines are the project's real ones: llama.cpp's C++ Jinja engine
(:mod:`tmplc.engines.llamacpp`), the Go text/template harness (:mod:`tmplc.engines.ollama`), and
llama.cpp itself (tokenizer, loader, forward pass) through llama-cpp-python.

1. ``llamacpp_template``: the GGUF's ``tokenizer.chat_template`` rendered by llama.cpp's engine
   (with the GGUF's bos/eos texts and add_bos, as llama-server does) equals the reference render
   under llama.cpp's conventions, with and without the generation prompt; for a format with
   tools, on tool conversations too (a tool list, calls, results).
2. ``modelfile``: the Modelfile's TEMPLATE run by the Go harness equals the reference under
   Ollama's conventions, and every end-of-turn string is a ``PARAMETER stop``.
3. ``token_ids``: the training render tokenized by llama.cpp with the GGUF vocabulary (BOS added
   as the GGUF says, special tokens parsed) equals the HF tokenizer's ids; BOS not doubled.
4. ``doctor``: the doctor finds no error (untrained tokens the template uses, pad == EOS, an
   end-of-turn that is not one token).
5. ``logits`` (F32/F16 only): llama.cpp's forward pass on a short prompt matches torch's logits
   within ``tol x max(1, max |logit|)`` (tol: F32 1e-3, F16 2e-2).
"""

from __future__ import annotations

import datetime
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from tmplc.errors import MessageError, TmplcError
from tmplc.export.report import Check

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from tmplc.ir import ChatFormat

DAY = datetime.date(2024, 2, 29)  # the date of dated formats in every comparison
LOGIT_TOL = {"F32": 1e-3, "F16": 2e-2}


def _first(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


@contextmanager
def quiet_stderr():
    """Silence llama.cpp's C-level logging (fd 2) while loading models."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)
        os.close(devnull)


def gguf_chat_fields(path: Path) -> dict[str, Any]:
    """The chat-relevant keys of a GGUF file (template, ids, token texts, add_bos)."""
    from tmplc.gguf_container import read_gguf

    f = read_gguf(path, skip=("tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"))
    tokens = f.get("tokenizer.ggml.tokens", [])
    out: dict[str, Any] = {"chat_template": f.get("tokenizer.chat_template"),
                           "add_bos": f.get("tokenizer.ggml.add_bos_token"),
                           "add_eos": f.get("tokenizer.ggml.add_eos_token")}
    for k in ("bos", "eos", "eot", "padding"):
        i = f.get(f"tokenizer.ggml.{k}_token_id")
        out[f"{k}_id"] = i
        out[f"{k}_text"] = tokens[i] if i is not None and 0 <= i < len(tokens) else None
    out["n_vocab"] = len(tokens)
    return out


def _render_cases(convs: Sequence[list[dict]], tool_convs: Sequence[tuple[list[dict], list[dict] | None]]):
    """``(messages, tools, from tool_convs, add_generation_prompt)`` of every render a check
    compares: each conversation without and with the generation prompt (not after an answer)."""
    for c, tools, agentic in [(c, None, False) for c in convs] + [(c, t, True) for c, t in tool_convs]:
        for agp in (False, True):
            if not (agp and c[-1]["role"] == "assistant"):
                yield c, tools, agentic, agp


def check_llamacpp_template(fmt: "ChatFormat", gguf_path: Path, convs: Sequence[list[dict]],
                            fields: dict[str, Any] | None = None,
                            tool_convs: Sequence[tuple[list[dict], list[dict] | None]] = ()) -> Check:
    """``fields``: :func:`gguf_chat_fields` of ``gguf_path`` when the caller has them already;
    ``tool_convs``: (messages, tools) pairs, given to the engine as they are (tool calls with their
    arguments as objects) with ``tools`` in the template's context, as ``llama-server --jinja``
    passes a request's tools."""
    from tmplc.engines.llamacpp import LlamaCppRenderError, render_llamacpp
    from tmplc.targets.llamacpp import expected_llamacpp

    g = fields if fields is not None else gguf_chat_fields(gguf_path)
    if not g["chat_template"]:
        return Check("llamacpp_template", False, "the GGUF has no tokenizer.chat_template")
    jobs, wants = [], []
    with_tools = 0
    for c, tools, agentic, agp in _render_cases(convs, tool_convs):
        try:
            want = expected_llamacpp(fmt, c, agp, bool(g["add_bos"]), DAY, tools=tools)
        except (MessageError, TmplcError):
            continue
        job = {"template": g["chat_template"], "messages": c, "bos_token": g["bos_text"] or "",
               "eos_token": g["eos_text"] or "", "add_generation_prompt": agp,
               "add_bos": bool(g["add_bos"]), "date": DAY}
        if agentic:  # tool messages as given, the tools in the template's context
            job.update(raw_messages=True, extra_context={"tools": tools} if tools is not None else None)
        jobs.append(job)
        wants.append(want)
        with_tools += agentic
    try:
        got = render_llamacpp(jobs)
    except TmplcError as exc:
        return Check("llamacpp_template", False, f"llama.cpp's Jinja engine is unavailable: {exc}")
    for job, want, out in zip(jobs, wants, got):
        if isinstance(out, LlamaCppRenderError) or out != want:
            return Check("llamacpp_template", False,
                         f"llama.cpp renders the GGUF template differently from training "
                         f"(add_generation_prompt={job['add_generation_prompt']})",
                         {"messages": job["messages"], "expected": want,
                          "got": out.message if isinstance(out, LlamaCppRenderError) else out})
    return Check("llamacpp_template", True, f"{len(jobs)} renders by llama.cpp's Jinja engine equal the "
                 "reference (with and without the generation prompt"
                 + (f"; {with_tools} with tools, tool calls and results" if with_tools else "") + ")",
                 {"renders": len(jobs), "with_tools": with_tools})


def check_modelfile(fmt: "ChatFormat", modelfile: str | None, convs: Sequence[list[dict]],
                    refusal: str | None = None) -> Check:
    from tmplc.engines.ollama import OllamaRenderError, render_ollama
    from tmplc.targets.ollama import modelfile_fields
    from tmplc.targets.conventions import expected_ollama

    if modelfile is None:
        return Check("modelfile", None, f"no Modelfile: the Ollama target refuses this format ({refusal})")

    f = modelfile_fields(modelfile)
    stops = list(f.get("stop") or [])
    eots = [t for t in dict.fromkeys([fmt.eot_token]) if t]
    missing = [t for t in eots if t not in stops]
    if missing:
        return Check("modelfile", False, f"end-of-turn {missing} is not a PARAMETER stop", {"stop": stops})
    trims = fmt.trims
    jobs, wants = [], []
    for c in convs:
        msgs = [{"role": m["role"], "content": m["content"].strip() if trims else m["content"]} for m in c]
        try:
            want = expected_ollama(fmt, msgs, date=DAY)
        except (MessageError, TmplcError):
            continue
        jobs.append({"template": f["template"], "messages": msgs, "system": f["system"], "date": DAY})
        wants.append(want)
    try:
        got = render_ollama(jobs)
    except TmplcError as exc:
        return Check("modelfile", False, f"the Go template harness is unavailable: {exc}")
    for job, want, out in zip(jobs, wants, got):
        if isinstance(out, OllamaRenderError) or out != want:
            return Check("modelfile", False, "the Modelfile's TEMPLATE (Go text/template) renders differently "
                         "from training", {"messages": job["messages"], "expected": want,
                                           "got": out.message if isinstance(out, OllamaRenderError) else out})
    note = (" (contents pre-stripped: the format trims and Ollama templates cannot)" if trims else "")
    return Check("modelfile", True, f"{len(jobs)} renders by the Go harness equal the reference; stops "
                 f"{stops}{note}", {"renders": len(jobs), "stop": stops, "pre_stripped": trims})


def load_llama(path: Path, **kw: Any):
    import llama_cpp

    with quiet_stderr():
        return llama_cpp.Llama(model_path=str(path), verbose=False, **kw)


def check_token_ids(fmt: "ChatFormat", gguf_path: Path, tokenizer: Any, convs: Sequence[list[dict]],
                    fields: dict[str, Any] | None = None) -> Check:
    try:
        import llama_cpp  # noqa: F401
    except Exception as exc:
        return Check("token_ids", False, f"llama-cpp-python is not importable ({exc}): cannot tokenize with the GGUF "
                     "(install it: scripts/setup.sh)")
    g = fields if fields is not None else gguf_chat_fields(gguf_path)
    add_bos = bool(g["add_bos"])
    bos_text, bos_id = g["bos_text"], g["bos_id"]
    llm = load_llama(gguf_path, vocab_only=True)
    n = 0
    try:
        for c in convs:
            for agp in (False, True):
                if agp and c[-1]["role"] == "assistant":
                    continue
                try:
                    text = fmt.render(c, add_generation_prompt=agp, date=DAY)
                except (MessageError, TmplcError):
                    continue
                hf = list(tokenizer(text, add_special_tokens=False)["input_ids"])
                served = text[len(bos_text):] if add_bos and bos_text and text.startswith(bos_text) else text
                ll = llm.tokenize(served.encode("utf-8"), add_bos=add_bos, special=True)
                n += 1
                if ll != hf:
                    k = next((i for i, (x, y) in enumerate(zip(ll, hf)) if x != y), min(len(ll), len(hf)))

                    def show(ids: list[int]) -> str:
                        return " ".join(f"{t!r}({i})" for i, t in zip(ids, tokenizer.convert_ids_to_tokens(ids)))

                    return Check("token_ids", False, (
                        f"llama.cpp's tokens differ from the HF tokenizer's at position {k} of a training render: "
                        f"HF {show(hf[max(0, k - 2):k + 3])}, llama.cpp {show(ll[max(0, k - 2):k + 3])}: served by "
                        "llama.cpp, the model would see other tokens than in training"), {"text": text, "hf": hf[max(0, k - 3):k + 5],
                                     "llama_cpp": ll[max(0, k - 3):k + 5], "add_bos": add_bos})
                if bos_id is not None and len(ll) >= 2 and ll[0] == bos_id and ll[1] == bos_id:
                    return Check("token_ids", False, "double BOS at the start", {"text": text})
    finally:
        llm.close()
    return Check("token_ids", True, f"{n} training renders: llama.cpp ids == HF ids (add_bos={add_bos}, "
                 "BOS not doubled)", {"renders": n, "add_bos": add_bos})


def check_logits(gguf_path: Path, outtype: str, reference: "np.ndarray", ids: list[int]) -> Check:
    """``reference``: the torch model's float32 logits on ``ids`` (one row per position); ``ids``: the
    prompt."""
    import numpy as np

    name = f"logits_{outtype.lower()}"
    try:
        import llama_cpp  # noqa: F401
    except Exception as exc:
        return Check(name, False, f"llama-cpp-python is not importable ({exc}): cannot run the GGUF "
                     "(install it: scripts/setup.sh)")
    ref = np.asarray(reference, dtype=np.float32)
    llm = load_llama(gguf_path, n_ctx=max(64, len(ids) + 8), logits_all=True, n_threads=2, n_batch=len(ids) + 8)
    try:
        llm.eval(ids)
        got = np.array(llm.scores[:len(ids)], dtype=np.float32)
    finally:
        llm.close()
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got - ref).max())
    tol = LOGIT_TOL[outtype] * scale
    agree = float((got.argmax(-1) == ref.argmax(-1)).mean())
    data = {"max_abs_diff": err, "tolerance": tol, "max_abs_logit": scale, "argmax_agreement": agree,
            "prompt_tokens": len(ids)}
    ok = err <= tol
    return Check(name, ok, f"llama.cpp vs torch logits on {len(ids)} tokens: max |diff| {err:.3g} "
                 f"{'<=' if ok else '>'} {tol:.3g} (= {LOGIT_TOL[outtype]} x {scale:.3g}); argmax agreement "
                 f"{agree:.2f}", data)


def check_hf_template(fmt: "ChatFormat", tokenizer: Any, convs: Sequence[list[dict]],
                      tool_convs: Sequence[tuple[list[dict], list[dict] | None]] = ()) -> Check:
    """The tokenizer's own chat_template (what transformers users get) renders like the format
    (``tool_convs``: (messages, tools) pairs, for a format with tools).

    A tokenizer without a chat_template passes (nothing disagrees); one whose template renders any
    check conversation differently fails: the model folder would carry two formats."""
    jt = getattr(tokenizer, "chat_template", None)
    if not isinstance(jt, str) or not jt:
        return Check("hf_template", True, "the tokenizer has no chat_template (the format is the only one)")
    n = with_tools = 0
    for c, tools, agentic, agp in _render_cases(convs, tool_convs):
        try:
            want = fmt.render(c, add_generation_prompt=agp, date=DAY, tools=tools)
        except (MessageError, TmplcError):
            continue
        try:
            got = tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=agp, tools=tools)
        except Exception as exc:  # the template raised where the format renders
            got = f"<error: {exc}>"
        n += 1
        with_tools += agentic
        if got != want:
            return Check("hf_template", False, "the tokenizer's chat_template renders differently from the "
                         "training format (the model folder carries two formats; save the tokenizer with "
                         "the format's template: tmplc compile --to jinja)",
                         {"messages": c, "tools": tools, "add_generation_prompt": agp, "format": want,
                          "tokenizer": got})
    return Check("hf_template", True, f"the tokenizer's chat_template equals the format on {n} renders"
                 + (f" ({with_tools} with tools, tool calls and results)" if with_tools else ""),
                 {"renders": n, "with_tools": with_tools})
