"""The whole contract in one module: for every registry entry and for hypothesis-generated
formats and conversations, every target rendered by its REAL engine equals the reference
renderer, each under its documented convention, and the no-dangling-newline invariants hold in
every target.

Engines and conventions:

* jinja2 sandbox (HF's settings) and transformers ``apply_chat_template``: identical, with and
  without ``add_generation_prompt``; both refuse what the reference refuses.
* Ollama (Go ``text/template`` harness with Ollama's messages-mode semantics): consecutive
  same-role messages merged with "\\n\\n"; no leading BOS; generation prompt when the last message
  is not an assistant one, otherwise the last assistant message is continued (no suffix);
  formats with ``|trim``/``|lstrip``/``|rstrip`` are compiled with ``allow_untrimmed=True`` and
  compared on contents that are already stripped; formats with answer rules (``|drop_think`` and
  its variants, ``|lstrip_nl``, a final answer with its own rule or a ``{THINK}`` block) are
  refused by the Ollama target (Go templates cannot split or strip a string), which is asserted,
  with the message naming the rule.
* llama.cpp (its own C++ Jinja engine, as ``llama-server --jinja``): the template renders the
  reference; with the GGUF's ``add_bos_token`` the leading BOS is removed from the text; formats
  without a system slot get llama-server's merge of a leading system message into the next
  message (``system + "\\n" + content``).

Dated formats (``{DATE=...}``) are compared on a drawn day: the reference renders it
(``date=``), jinja2's sandbox gets it as ``strftime_now``'s day, the Ollama harness and the
llama.cpp driver through their test hooks (a job's ``date``).  transformers' ``strftime_now``
reads the clock: its reference is rendered for today (taken before and after, for midnight).
The Ollama target carries only the YYYY-MM-DD date (Ollama's ``currentDate``) and must refuse
every other format, naming it.

Reasoning templates' rules (``|drop_think``..., ``|lstrip_nl``, ``|trim_first``, the final answer's
own rule and ``{THINK}`` block) are drawn in about half the generated formats, and always in
:func:`test_reasoning_formats_every_engine`, on conversations whose answers hold
``<think>...</think>`` with newlines around the tags.

Each hypothesis example is ONE batch: all engine renders of the example go through one process
call per engine.
"""

from __future__ import annotations

import datetime
from dataclasses import replace
import functools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tmplc
from tmplc.engines.llamacpp import LlamaCppRenderError, render_llamacpp
from tmplc.engines.ollama import OllamaRenderError, render_ollama
from tmplc.ir import DateToken
from tmplc.jinja_env import render_template
from tmplc.spec.vocabulary import THINK_FILTER_OF
from tmplc.errors import TargetError
from tmplc.targets.conventions import expected_llamacpp, expected_ollama
from tmplc.targets.ollama import modelfile_fields

from conftest import load_tokenizer, missing_fixture
from strategies import chat_formats, content_text, conversations, reasoning_text, structures

BOS, EOS = "<s>", "</s>"
REFUSED = object()
DAY = datetime.date(2024, 9, 25)  # the day dated formats are compared on, unless a test draws one
days = st.dates(datetime.date(1970, 1, 2), datetime.date(2099, 12, 31))


@pytest.fixture(scope="module", autouse=True)
def engines():
    from tmplc.engines.llamacpp import ensure_llamacpp_driver
    from tmplc.engines.ollama import harness_binary

    try:
        harness_binary()
    except Exception as e:  # GoNotFoundError, build failure
        missing_fixture("the Go harness (Ollama engine)", f"apt-get install golang-go ({e})")
    try:
        ensure_llamacpp_driver()
    except Exception as e:
        missing_fixture("llama.cpp's Jinja engine", f"run: python scripts/fetch_llamacpp.py --build ({e})")


def tokens(fmt):
    """The BOS/EOS strings a format renders with: its own, else the generic ones."""
    return fmt.meta.bos_token or BOS, fmt.meta.eos_token or EOS


def _ref(fmt, msgs, **kw):
    bos, eos = tokens(fmt)
    try:
        return fmt.render(msgs, bos_token=bos, eos_token=eos, **kw)
    except tmplc.MessageError:
        return REFUSED


def ollama_carries_dates(fmt):
    """Whether every {DATE=...} of ``fmt`` is the YYYY-MM-DD date (with literal text), all that
    Ollama's currentDate gives."""
    return all("%" not in re.sub("%Y-%m-%d|%F|%%", "", p.format)
               for f in fmt.structure.fragments() for p in f if isinstance(p, DateToken))


@functools.lru_cache(maxsize=None)
def _modelfile(fmt):
    return modelfile_fields(fmt.to_ollama(allow_untrimmed=fmt.trims))


@functools.lru_cache(maxsize=None)
def _llamacpp(fmt):
    return fmt.to_llamacpp()


def ollama_expected(fmt, msgs, day=DAY):
    m = msgs
    if fmt.trims:
        m = [{"role": x["role"], "content": x["content"].strip()} for x in m]
    bos, eos = tokens(fmt)
    try:
        return expected_ollama(fmt, m, date=day, bos_token=bos, eos_token=eos)
    except tmplc.MessageError:
        return REFUSED


def llamacpp_expected(fmt, msgs, gen, add_bos, day=DAY):
    bos, eos = tokens(fmt)
    try:
        return expected_llamacpp(fmt, msgs, gen, add_bos, day, bos_token=bos, eos_token=eos)
    except tmplc.MessageError:
        return REFUSED


def ollama_refusal(fmt):
    """The reason the Ollama target must refuse ``fmt`` (a regex for the TargetError), or None:
    the answer rules first (|drop_think..., |lstrip_nl, the final answer's own rule), then dates."""
    a = fmt.structure.assistant
    if fmt.structure.tools is not None:
        return r"renders tools, tool calls and tool results.*Go's encoding/json"
    if a.drop_think:
        return (re.escape("({OUTPUT|" + THINK_FILTER_OF[a.drop_think] + "})")
                + r".*Ollama's template functions cannot search or split a string")
    if a.lstrip_nl:
        return re.escape("({OUTPUT|lstrip_nl})") + r", which an Ollama template cannot do \(no string functions\)"
    if fmt.structure.closing:
        return r"closing text \(\{END\}\), which an Ollama template cannot do"
    if a.empty is not None:
        return r"renders an empty answer as a turn of its own \(\{EMPTY\}\)"
    if a.rule.wraps_nonempty:
        return r"renders text around an answer only when the answer is not empty \(\{NONEMPTY\}"
    if a.think is not None:
        return r"renders every answer's reasoning in a block \(\{THINK\}...\{/THINK\}\)"
    if a.final is not None:
        return (r"renders the final answer's content by its own rule .*\{THINK\} block.*"
                r"Ollama's template functions cannot search, split or strip a string")
    if fmt.structure.final_scope != "last":
        return r"ends answers other than the conversation's last message"
    if not ollama_carries_dates(fmt):
        return r"\{DATE=.*only date function, currentDate, always gives YYYY-MM-DD"
    return None


def ollama_job(fmt, msgs, day=DAY):
    """The harness job for ``msgs`` (contents stripped for a format that strips them)."""
    mf = _modelfile(fmt)
    om = [{"role": x["role"], "content": x["content"].strip() if fmt.trims else x["content"]} for x in msgs]
    return {"template": mf["template"], "messages": om, "date": day,
            **({"system": mf["system"]} if mf["system"] else {})}


def check_all(cases, day=DAY):
    """cases: list of (fmt, msgs, gen).  Renders every case in every engine (one call per
    engine) and asserts equality with the reference under each convention; dated formats on
    ``day`` (transformers: today)."""
    tok = load_tokenizer("llama3")
    oll_jobs, ll_jobs = [], []
    for fmt, msgs, gen in cases:
        ref = _ref(fmt, msgs, add_generation_prompt=gen, date=day)
        bos, eos = tokens(fmt)
        tmpl = fmt.to_jinja()
        # jinja2 sandbox
        try:
            got = render_template(tmpl, msgs, add_generation_prompt=gen, bos_token=bos, eos_token=eos, today=day)
        except Exception:
            got = REFUSED
        assert got == ref, ("jinja2", fmt.name, msgs, gen)
        # transformers (with the tokenizer's own bos/eos strings; its strftime_now reads the clock)
        before = datetime.date.today()
        try:
            got = tok.apply_chat_template(msgs, chat_template=tmpl, tokenize=False, add_generation_prompt=gen)
        except Exception:
            got = REFUSED
        wants = []
        for today in dict.fromkeys([before, datetime.date.today()]):  # the day it rendered
            try:
                wants.append(fmt.render(msgs, add_generation_prompt=gen, bos_token=tok.bos_token,
                                        eos_token=tok.eos_token, date=today))
            except tmplc.MessageError:
                wants.append(REFUSED)
        assert got in wants, ("transformers", fmt.name, msgs, gen)
        # Ollama
        why = ollama_refusal(fmt)
        if why is not None:
            with pytest.raises(TargetError, match=why):
                fmt.to_ollama(allow_untrimmed=True)
        else:
            oll_jobs.append((ollama_job(fmt, msgs, day), ollama_expected(fmt, msgs, day)))
        # llama.cpp
        target = _llamacpp(fmt)
        ll_jobs.append(({"template": target.chat_template, "messages": msgs, "bos_token": bos, "eos_token": eos,
                         "add_generation_prompt": gen, "add_bos": target.add_bos_token, "date": day},
                        llamacpp_expected(fmt, msgs, gen, target.add_bos_token, day)))
    for (job, want), got in zip(oll_jobs, render_ollama([j for j, _ in oll_jobs])):
        got = REFUSED if isinstance(got, OllamaRenderError) else got
        assert got == want, ("ollama", job, got, want)
    for (job, want), got in zip(ll_jobs, render_llamacpp([j for j, _ in ll_jobs])):
        got = REFUSED if isinstance(got, LlamaCppRenderError) else got
        assert got == want, ("llama.cpp", job, got, want)


def with_prefixes(fmt, msgs):
    """The conversation and its prefixes: every exchange boundary, with and without the
    generation prompt (for the append-only invariants)."""
    out = []
    for end in range(1, len(msgs) + 1):
        for gen in (False, True):
            out.append((fmt, msgs[:end], gen))
    return out


def assert_chain(outputs):
    """Each render (of a longer prefix of one conversation) extends the previous one."""
    outs = [o for o in outputs if isinstance(o, str)]
    assert len(outs) >= 2
    for a, b in zip(outs, outs[1:]):
        assert b.startswith(a), (a, b)


@settings(max_examples=15)
@given(st.lists(st.tuples(chat_formats(), conversations(max_exchanges=3), st.booleans()), min_size=6, max_size=6),
       days)
def test_generated_formats_every_engine(batch, day):
    check_all(batch, day)


reasoning_conversations = conversations(text=st.one_of(reasoning_text(), reasoning_text(), content_text),
                                        max_exchanges=3)


@settings(max_examples=10)
@given(st.lists(st.tuples(chat_formats(structures(reasoning=True)), reasoning_conversations, st.booleans()),
                min_size=6, max_size=6), days)
def test_reasoning_formats_every_engine(batch, day):
    """Formats that all have answer rules, on answers with reasoning: jinja2, transformers and
    llama.cpp render the reference; the Ollama target refuses each, naming the rule."""
    assert all(ollama_refusal(fmt) is not None for fmt, _, _ in batch)
    check_all(batch, day)


@settings(max_examples=10)
@given(st.data())
def test_registry_every_engine(data):
    cases = []
    for name in tmplc.registry:
        fmt = tmplc.registry[name]
        msgs = data.draw(conversations(max_exchanges=3, system=None if fmt.structure.system else False),
                         label=name)
        cases.append((fmt, msgs, data.draw(st.booleans())))
    check_all(cases)


@settings(max_examples=10)
@given(chat_formats(), conversations(min_exchanges=2, max_exchanges=4, end_with_assistant=True, system=False))
def test_no_dangling_newlines_in_any_engine(fmt, msgs):
    check_all(with_prefixes(fmt, msgs))  # every engine equals the reference on every prefix ...
    if fmt.structure.final_scope == "last_answer":
        return  # its last answer renders as final until another answer follows: not append-only by design
    # ... and, on each engine's own output, a longer conversation extends a shorter one
    prefixes = [msgs[:end] for end in range(1, len(msgs) + 1)]
    a = fmt.structure.assistant
    if a.final_suffix is not None or a.final is not None:
        # the last answer ends differently (final_suffix) or renders its content by its own rule
        # (final: reasoning kept or re-wrapped): chain the conversations ending with a question,
        # which every longer one extends
        prefixes = [m for m in prefixes if m[-1]["role"] == "user"]
    tmpl = fmt.to_jinja()
    bos, eos = tokens(fmt)
    # a closing ({END}) ends every render without the generation prompt: it is not extended
    closing = fmt.render([], bos_token=bos, eos_token=eos, date=DAY)[
        len(replace(fmt, structure=replace(fmt.structure, closing=())).render([], bos_token=bos, eos_token=eos,
                                                                              date=DAY)):]

    def unclosed(outs):
        return [o[:len(o) - len(closing)] if closing and isinstance(o, str) and o.endswith(closing) else o
                for o in outs]

    assert_chain(unclosed([render_template(tmpl, m, bos_token=bos, eos_token=eos, today=DAY) for m in prefixes]))
    if ollama_refusal(fmt) is None:
        outs = render_ollama([ollama_job(fmt, m) for m in prefixes])
        # Ollama prompts after a user message; {PROMPT=...} text is the prompt's, not the history's
        po = fmt.structure.assistant.prompt_only
        if po:
            outs = [o[:len(o) - len(po)] if isinstance(o, str) and m[-1]["role"] == "user" and o.endswith(po) else o
                    for o, m in zip(outs, prefixes)]
        assert_chain(outs)
    target = _llamacpp(fmt)
    assert_chain(unclosed(render_llamacpp([{"template": target.chat_template, "messages": m, "bos_token": bos,
                                            "eos_token": eos, "add_generation_prompt": False, "date": DAY}
                                           for m in prefixes])))


GPT_OSS_LIKE = ("<|start|>user<|message|>{INPUT}<|end|><|start|>assistant<|message|>{PROMPT|%s}{OUTPUT|drop_think}<|end|>"
                "{SPLIT}<|start|>user<|message|>{INPUT}<|end|><|start|>assistant<|message|>"
                "{PROMPT|%s}{OUTPUT}<|return|>")


@pytest.mark.parametrize("scope", ["last_answer", "after_user"])
def test_final_scope_every_engine(scope):
    """Which answers are final: the last assistant message even before a user message (LFM2.5), or
    every answer after the last user message; every engine renders them like the reference."""
    spec = f"U:{{INPUT}}\nA:{{OUTPUT|drop_think}}</s>\nU:{{INPUT}}\nA:{{OUTPUT|final_{scope}}}</s>\n"
    fmt = tmplc.parse_spec(spec, name=f"scope-{scope}")
    assert fmt.structure.final_scope == scope and fmt.to_spec() == spec
    a1, a2, q = ({"role": "assistant", "content": "r</think>1"}, {"role": "assistant", "content": "r</think>2"},
                 {"role": "user", "content": "q"})
    want = {"last_answer": ["U:q\nA:r</think>1</s>\nU:q\n", "U:q\nA:1</s>\nA:r</think>2</s>\n"],
            "after_user": ["U:q\nA:1</s>\nU:q\n", "U:q\nA:r</think>1</s>\nA:r</think>2</s>\n"]}[scope]
    convs = [[q, a1, q], [q, a1, a2]]
    assert [fmt.render(m) for m in convs] == want
    convs += [[a1], [a1, a2], [q, a1, q, a2], [a1, q, a2, a1]]
    check_all([(fmt, m, gen) for m in convs for gen in (False, True)])


@pytest.mark.parametrize("after", ["skip", "history"])
def test_prompt_after_an_answer_every_engine(after):
    """A final answer with its own ending (<|return|>) and rule (reasoning kept): the three
    choices render differently after an answer, and every engine renders each like the reference."""
    spec = GPT_OSS_LIKE % (f"{after}_after_answer", f"{after}_after_answer")
    fmt = tmplc.parse_spec(spec, name=f"oss-{after}")
    final = tmplc.parse_spec(spec.replace(f"{{PROMPT|{after}_after_answer}}", ""), name="oss-final")
    assert fmt.structure.prompt_after_answer == after and final.structure.prompt_after_answer == "final"
    conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r</think>a"}]
    want = {"final": "<|start|>user<|message|>q<|end|><|start|>assistant<|message|>r</think>a<|return|>"
                     "<|start|>assistant<|message|>",
            "skip": "<|start|>user<|message|>q<|end|><|start|>assistant<|message|>r</think>a<|return|>",
            "history": "<|start|>user<|message|>q<|end|><|start|>assistant<|message|>a<|end|>"
                       "<|start|>assistant<|message|>"}
    assert final.render(conv, True) == want["final"] and fmt.render(conv, True) == want[after]
    cases = [(f, conv[:n], gen) for f in (fmt, final) for n in (1, 2) for gen in (False, True)]
    check_all(cases + [(fmt, conv + [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "b"}],
                        gen) for gen in (False, True)])
