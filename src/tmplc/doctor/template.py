"""The format a model is trained/served with, and the template findings.

* Which format: the one given (``template=``: a ChatFormat or anything ``tmplc.load`` takes), else
  the tokenizer's own chat_template imported with the converter (``template_source`` says which;
  a template the converter refuses is reported, and the format-dependent checks are skipped).
  The tokenizer's chat_template is the one transformers uses: ``chat_template.jinja`` when the
  folder has one, else ``tokenizer_config.json``'s ``chat_template``.
* ``template-mismatch``: the tokenizer's chat_template is not the given format (IR equality).
* ``template-shadowed``: ``tokenizer_config.json``'s chat_template differs from
  ``chat_template.jinja`` (transformers reads the second, llama.cpp's converter the first).
* ``eot-not-single-token`` / ``template-token-missing``: a special string of the format is not
  exactly one token.
* ``eot-not-stop``: the end-of-turn id is not among generation's stop ids.
* ``double-bos`` (the template's side): the render starts with two BOS, or the template writes
  BOS and the tokenizer adds one when the render is tokenized with special tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tmplc.doctor.findings import Finding

#: strings of a layout that look like special tokens: ``<|...|>``, ``<｜...｜>`` (must be single
#: tokens: errors) and ``<word>`` / ``</word>`` (warnings: e.g. ``<think>``)
STRICT_RE = re.compile(r"<\|[^<>|\s]{1,64}\|>|<｜[^<>｜]{1,64}｜>")
LOOSE_RE = re.compile(r"(?<![<\w])</?[A-Za-z_][A-Za-z0-9_\-]{0,40}>(?!>)")  # not <<SYS>>

PROBE_SYS = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "Yes"}, {"role": "user", "content": "Ok"},
             {"role": "assistant", "content": "No"}]


@dataclass
class Resolved:
    fmt: Any                    # ChatFormat or None
    name: str | None
    source: str                 # "given" | "tokenizer chat_template" | "none"
    tokenizer_fmt: Any = None   # the tokenizer's own template imported (or None)
    tokenizer_template: str | None = None
    refusal: str | None = None  # why the tokenizer's template could not be imported


def tokenizer_template(folder) -> str | None:
    """The chat_template transformers uses for this folder (chat_template.jinja wins)."""
    if folder.chat_template_jinja is not None:
        return folder.chat_template_jinja
    ct = folder.config_chat_template
    if ct is None:
        return None
    from tmplc.convert.sources import _pick

    return _pick(ct, str(folder.path / "tokenizer_config.json"))[0]


def _config_template(folder) -> str | None:
    ct = folder.config_chat_template
    if ct is None:
        return None
    from tmplc.convert.sources import _pick

    return _pick(ct, str(folder.path / "tokenizer_config.json"))[0]


def load_format(template: Any):
    from tmplc.api import load
    from tmplc.ir import ChatFormat

    if isinstance(template, ChatFormat):
        return template
    return load(template)


def import_chat_template(text: str, *, bos: str | None, eos: str | None, name: str,
                         with_tools: bool) -> tuple[Any, str | None]:
    """(the format of a tokenizer's or GGUF's chat template, or None; why it could not be imported).
    ``with_tools``: import its tool part too (``convert_jinja``), so that a training format with
    tools is compared with the whole template, not with the template's text part alone."""
    from tmplc.convert import ConversionRefused
    from tmplc.convert.jinja import convert_jinja, from_jinja

    try:
        if with_tools:
            return convert_jinja(text, bos_token=bos, eos_token=eos, format_name=name).format, None
        return from_jinja(text, bos_token=bos, eos_token=eos, format_name=name), None
    except ConversionRefused as e:
        return None, str(getattr(e, "reason", e))


def resolve(template: Any, folder, facts) -> Resolved:
    tmpl_text = tokenizer_template(folder)
    fmt = load_format(template) if template is not None else None
    tok_fmt, refusal = None, None
    if tmpl_text:
        # the folder's own format carries its tool part where the converter recovers it exactly (a
        # dataset with tools formats with it); a given text format is compared with the text part
        tok_fmt, refusal = import_chat_template(tmpl_text, bos=facts.bos, eos=facts.eos, name=folder.path.name,
                                                with_tools=fmt is None or fmt.structure.tools is not None)
    if fmt is not None:
        return Resolved(fmt, fmt.name, "given", tok_fmt, tmpl_text, refusal)
    if tok_fmt is not None:
        from tmplc.convert import identify

        name = identify(tok_fmt)
        return Resolved(tok_fmt, name or tok_fmt.name, "tokenizer chat_template", tok_fmt, tmpl_text, None)
    return Resolved(None, None, "none", None, tmpl_text, refusal)


def folder_format(model, tokenizer=None) -> tuple[Any, str]:
    """A model (or tokenizer) folder's own chat format, where ``--template`` is not given: its
    chat_template (``chat_template.jinja``, else tokenizer_config.json's) imported exactly, named
    after the registry entry it equals (else the folder) -> ``(format, "")``; ``(None, why)`` when
    the folder has none or the converter refuses it.  ``tmplc check``, ``format`` and ``train`` read
    a folder's format this one way."""
    from pathlib import Path

    from tmplc.doctor.model import ModelFolder
    from tmplc.doctor.tokens import TokFacts

    folder = ModelFolder(Path(model), tokenizer=tokenizer)
    res = resolve(None, folder, TokFacts.of(folder.check_tokenizer))
    if res.fmt is None:
        return None, (f"its chat_template cannot be imported exactly ({res.refusal})" if res.tokenizer_template
                      else "it has no chat_template")
    return res.fmt.with_meta(name=res.name), ""


def render_probe(fmt, facts, gen: bool = False) -> str:
    from tmplc.errors import MessageError

    for msgs in (PROBE_SYS, PROBE_SYS[1:]):
        try:
            return fmt.render(msgs, add_generation_prompt=gen, bos_token=facts.bos or "", eos_token=facts.eos or "")
        except MessageError:
            continue
    return fmt.render(PROBE_SYS[1:3], bos_token=facts.bos or "", eos_token=facts.eos or "")


def special_strings(fmt, facts) -> list[tuple[str, bool]]:
    """(string, strict) for each special-looking string of the layout, first occurrence order."""
    from tmplc.ir import SpecialToken, Text

    seen: dict[str, bool] = {}
    for frag in fmt.structure.fragments():
        for p in frag:
            if isinstance(p, Text):
                for m in STRICT_RE.finditer(p.value):
                    seen.setdefault(m.group(0), True)
                for m in LOOSE_RE.finditer(p.value):
                    seen.setdefault(m.group(0), False)
            elif isinstance(p, SpecialToken):
                t = facts.bos if p.name == "BOS" else facts.eos
                if t:
                    seen[t] = True
    for t in (fmt.meta.eot_token,):
        if t:
            seen.setdefault(t, True)
    return list(seen.items())


class _Specials:
    """What :func:`tmplc.formatter.tokenizer_info.end_of_turn` reads from a TokenizerInfo (building a
    whole TokenizerInfo costs seconds on a 262k vocabulary; this is all it needs)."""

    def __init__(self, facts) -> None:
        self.bos_token, self.eos_token = facts.bos, facts.eos
        names = sorted(facts.special, key=len, reverse=True)
        self.special_re = re.compile("|".join(re.escape(s) for s in names)) if names else None


def end_of_turn_text(fmt, facts) -> str | None:
    """The string that ends an assistant turn (the formatter's own rule)."""
    from tmplc.formatter.tokenizer_info import end_of_turn

    return end_of_turn(fmt, _Specials(facts))


def template_findings(res: Resolved, folder, facts, eot: str | None) -> list[Finding]:
    out: list[Finding] = []
    # -- which template -------------------------------------------------------------------
    if res.refusal is not None:
        out.append(Finding(
            "template-unimportable", "warning" if res.source == "given" else "error",
            f"the tokenizer's chat_template cannot be imported by tmplc's converter: {res.refusal}"
            + ("" if res.source == "given" else "; the format-dependent checks (end-of-turn, stop ids, "
               "untrained tokens used by the template, double BOS) were skipped"),
            "pass the format you train with (--template NAME|SPEC); tmplc fix --template ... writes it as the "
            "tokenizer's chat_template", {"reason": res.refusal}))
    elif res.fmt is None:
        out.append(Finding("no-template", "warning", "no --template given and the tokenizer has no chat_template: "
                           "the format-dependent checks were skipped",
                           "pass --template NAME|SPEC (the format you train and serve with)", {}))
    if res.source == "given" and res.tokenizer_fmt is not None:
        from tmplc.convert.identify import equivalent

        if not equivalent(res.fmt, res.tokenizer_fmt):
            from tmplc.convert import identify

            other = identify(res.tokenizer_fmt)
            sample_a = render_probe(res.fmt, facts)
            sample_b = render_probe(res.tokenizer_fmt, facts)
            if sample_a != sample_b:
                from tmplc.spec.atoms import common_prefix

                k = common_prefix(sample_a, sample_b)
                at = max(0, k - 40)
                how = (f"From character {k} on, training renders {'…' if at else ''}{sample_a[at:k + 80]!r}, the "
                       f"tokenizer's template renders {'…' if at else ''}{sample_b[at:k + 80]!r}")
            else:
                how = "They render text conversations alike; their tool parts differ (tools, tool calls or tool results)"
            out.append(Finding(
                "template-mismatch", "error",
                f"the tokenizer's chat_template ({other or 'not a registry format'}) is not the training format "
                f"{res.name!r}: a server that uses the saved tokenizer (transformers, vLLM, llama.cpp's converter) "
                f"prompts the model with a format it was not trained on. {how}",
                "tmplc fix PATH --out DIR --template ... writes the training format as the chat_template "
                "(chat_template.jinja and tokenizer_config.json)",
                {"tokenizer_template": other, "training_template": res.name}))
    elif res.source == "given" and res.tokenizer_template is None:
        out.append(Finding("template-missing", "warning",
                           f"the tokenizer has no chat_template; the training format is {res.name!r}: a server "
                           "using this tokenizer has no template (or falls back to a default)",
                           "tmplc fix PATH --out DIR --template ... writes it", {}))
    cfg_t, jinja_t = _config_template(folder), folder.chat_template_jinja
    if cfg_t is not None and jinja_t is not None and cfg_t != jinja_t:
        out.append(Finding(
            "template-shadowed", "error",
            "tokenizer_config.json's chat_template differs from chat_template.jinja: transformers uses "
            "chat_template.jinja, llama.cpp's converter (convert_hf_to_gguf / gguf SpecialVocab) uses "
            "tokenizer_config.json's, so the GGUF gets a different template than the one trained with",
            "tmplc fix writes one template to both (the training format, else chat_template.jinja); or delete "
            "the stale 'chat_template' key from tokenizer_config.json",
            {"tokenizer_config_chars": len(cfg_t), "chat_template_jinja_chars": len(jinja_t)}))
    fmt = res.fmt
    if fmt is None:
        return out
    fname = res.name or fmt.name
    # -- special strings -------------------------------------------------------------------
    eot_id = facts.single_id(eot) if eot else None
    if eot and eot_id is None:
        ids = facts.ids(eot)
        out.append(Finding(
            "eot-not-single-token", "error",
            f"the end-of-turn marker {eot!r} of format {fname!r} is not one token of this vocabulary (it "
            f"tokenizes to {len(ids)} ids {ids[:8]}): generation cannot stop on one id, and the model learns a "
            "multi-token ending",
            "use a tokenizer that has it as a special token, or add it (tokenizer.add_special_tokens) and resize "
            "the embeddings; or use a format whose end-of-turn is a token of this vocabulary",
            {"token": eot, "ids": ids}))
    missing = []
    for s, strict in special_strings(fmt, facts):
        if s == eot:
            continue
        if facts.single_id(s) is None:
            missing.append((s, strict, facts.ids(s)))
    for s, strict, ids in missing:
        out.append(Finding(
            "template-token-missing", "error" if strict else "warning",
            f"format {fname!r} writes {s!r}, which is not one token of this vocabulary (it tokenizes to "
            f"{len(ids)} ids {ids[:8]}): the model sees a different sequence than a tokenizer with that special "
            "token, and a server matching it as a token will not find it",
            "use the tokenizer the format was made for, or add the token (tokenizer.add_special_tokens) and "
            "resize the embeddings", {"token": s, "ids": ids}))
    # -- stop ids --------------------------------------------------------------------------
    if eot_id is not None and (folder.config is not None or folder.generation_config is not None):
        stops, where = folder.eos_ids_for_generation()
        if eot_id not in stops:
            out.append(Finding(
                "eot-not-stop", "error",
                f"the end-of-turn token {facts.show(eot_id)} of format {fname!r} is not among the stop ids of "
                f"{where} ({', '.join(facts.show(i) for i in stops) or 'none'}): model.generate() does not stop "
                "after an answer; it runs on into a new turn",
                f"add {eot_id} to generation_config.json's eos_token_id (tmplc fix does)",
                {"eot_id": eot_id, "eot": eot, "stop_ids": stops, "source": where}))
    # -- double BOS (template side) --------------------------------------------------------
    if facts.bos_id is not None:
        text = render_probe(fmt, facts)
        plain = facts.ids(text)
        if len(plain) > 1 and plain[0] == plain[1] == facts.bos_id:
            out.append(Finding(
                "double-bos", "error",
                f"format {fname!r} itself renders BOS twice at the start ({facts.show(facts.bos_id)}): every "
                "row starts with two BOS, even tokenized without special tokens",
                "remove the second {BOS} / literal BOS text from the spec (tmplc fix rewrites the template)",
                {"path": "template", "bos_id": facts.bos_id}))
        elif facts.adds_bos and plain and plain[0] == facts.bos_id:
            out.append(Finding(
                "double-bos", "warning",
                f"format {fname!r} renders BOS {facts.show(facts.bos_id)} and the tokenizer adds one too when "
                "text is tokenized with special tokens (tested: tokenizer('a') starts with BOS): rendering then "
                "tokenizing with add_special_tokens=True (TRL's text path, a raw /completion prompt) gives two "
                "BOS. tmplc format and apply_chat_template(tokenize=True) give one",
                "tokenize rendered text with add_special_tokens=False (or use tmplc format); or drop BOS from one "
                "side", {"path": "render+tokenize(add_special_tokens=True)", "bos_id": facts.bos_id}))
    return out
