"""Tool entries against the REAL chat templates they reproduce (the template text from the
corpus, .cache/corpus/templates/), on random tool conversations: transformers'
``apply_chat_template`` with the real template == tmplc's reference render == tmplc's HF Jinja
through transformers == tmplc's llama.cpp target through llama.cpp's C++ engine (conversations without floats in
tool JSON: llama.cpp writes them like %g); and the token
ids.  The real tokenizer fixture of the family tokenises (qwen3 for Qwen-family entries).

``llama-3.1-tools`` takes conversations through :func:`one_call_answers` (its template renders one call
per answer, without content); its refusals are tested in test_llama31_tools.py.

``qwen3-tools`` is proven the same way against the qwen3 fixture's own template in
test_qwen3_tools_real.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmplc.engines.llamacpp import LlamaCppRenderError, render_llamacpp
from tmplc.registry import registry
from tmplc.targets.conventions import strip_leading_bos

from conftest import load_tokenizer, missing_fixture
from tools.strategies_tools import mistral_shaped, one_call_answers, tool_conversations
from tools.test_llamacpp_tools import _driver, _has_float
from tools.test_qwen3_tools_real import AGENT, WEATHER

CORPUS = Path(__file__).resolve().parents[2] / ".cache" / "corpus" / "templates"

#: entry -> (real template file in the corpus, tokenizer fixture, renders reasoning)
ENTRIES = {
    "qwen2.5-tools": ("llamacpp-Qwen-Qwen2.5-7B-Instruct.jinja", "qwen3", False),
    "llama-3.1-tools": ("llamacpp-meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3", False),
    # today's date in its header (strftime_now on both sides: the real template and tmplc's targets)
    "llama-3.2-tools": ("llamacpp-meta-llama-Llama-3.2-3B-Instruct.jinja", "llama3", False),
    # no Granite tokenizer among the fixtures: qwen3's tokenises both renders alike (ids compared)
    "granite-4.0-tools": ("llamacpp-ibm-granite-granite-4.0.jinja", "qwen3", False),
    "granite-4.1-tools": ("llamacpp-ibm-granite-granite-4.1.jinja", "qwen3", False),
    # today's date in its default system prompt; no Tekken tokenizer among the fixtures: llama2's
    # (<s>, </s>) tokenises both renders alike (ids compared)
    "mistral-v7-tekken-tools": ("llamacpp-Mistral-Small-3.2-24B-Instruct-2506.jinja", "llama2", False),
}
#: entry -> how a conversation is fitted to what its real template can render
FIT = {"llama-3.1-tools": one_call_answers, "llama-3.2-tools": one_call_answers,
       "mistral-v7-tekken-tools": mistral_shaped}


def _fit(entry: str, msgs: list[dict]) -> list[dict]:
    return FIT.get(entry, lambda m: m)(msgs)


def _real_template(entry: str) -> str:
    path = CORPUS / ENTRIES[entry][0]
    if not path.is_file():
        missing_fixture(f"the real template {path.name}", "run: bash scripts/setup.sh (fetches the corpus)")
    return path.read_text(encoding="utf-8")


def _ids(x):
    return x["input_ids"] if hasattr(x, "keys") else x


def check(entry: str, cases) -> None:
    fmt = registry[entry]
    tok = load_tokenizer(ENTRIES[entry][1])
    real_t, ours_t = _real_template(entry), fmt.to_jinja()
    for msgs, tools, agp in cases:
        kw = dict(tools=tools, add_generation_prompt=agp)
        real = tok.apply_chat_template(msgs, tokenize=False, chat_template=real_t, **kw)
        assert fmt.render(msgs, **kw) == real, (msgs, tools, agp)
        assert tok.apply_chat_template(msgs, tokenize=False, chat_template=ours_t, **kw) == real
        assert _ids(tok.apply_chat_template(msgs, tokenize=True, chat_template=real_t, **kw)) == \
            _ids(tok.apply_chat_template(msgs, tokenize=True, chat_template=ours_t, **kw))
    # llama.cpp's tojson writes floats like %g (a known divergence, test_llamacpp_tools.py)
    cases = [c for c in cases if not _has_float([m.get("tool_calls") for m in c[0]]) and not _has_float(c[1] or [])]
    _driver()
    target = fmt.to_llamacpp()
    jobs = [{"template": target.chat_template, "messages": msgs, "bos_token": "", "eos_token": fmt.meta.eos_token,
             "add_generation_prompt": agp, "add_bos": target.add_bos_token, "raw_messages": True,
             "extra_context": {"tools": tools} if tools is not None else None} for msgs, tools, agp in cases]
    for (msgs, tools, agp), out in zip(cases, render_llamacpp(jobs)):
        assert not isinstance(out, LlamaCppRenderError), out
        ref = fmt.render(msgs, tools=tools, add_generation_prompt=agp)
        if target.add_bos_token:  # llama.cpp adds the leading BOS when it tokenizes (GGUF add_bos_token)
            ref = strip_leading_bos(ref, fmt.meta.bos_token)
        assert out == ref, (msgs, tools, agp)


def _plain(msgs, reasoning: bool):
    return msgs if reasoning else [{k: v for k, v in m.items() if k != "reasoning_content"} for m in msgs]


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_fixed_agent_conversation(entry):
    agent = _fit(entry, _plain(AGENT, ENTRIES[entry][2]))
    check(entry, [(c, tools, agp) for cut in range(2, len(agent) + 1) for c in (agent[:cut], agent[1:cut])
                  for tools in (None, [], [WEATHER], [WEATHER, WEATHER]) for agp in (False, True)])


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_random_tool_conversations_equal_the_real_template(entry):
    reasoning = ENTRIES[entry][2]
    cases = []

    @settings(max_examples=60)
    @given(tool_conversations(reasoning=reasoning), st.booleans())
    def collect(conv, agp):
        msgs, tools = conv
        msgs = _fit(entry, msgs)
        fmt = registry[entry]
        tok = load_tokenizer(ENTRIES[entry][1])
        kw = dict(tools=tools, add_generation_prompt=agp)
        assert fmt.render(msgs, **kw) == tok.apply_chat_template(msgs, tokenize=False,
                                                                  chat_template=_real_template(entry), **kw)
        cases.append((msgs, tools, agp))

    collect()
    check(entry, cases)


def test_string_arguments_json_renders_a_json_string_literal():
    """Qwen2.5 pipes every call's arguments through tojson: a JSON-string argument is quoted."""
    msgs = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": "{\"a\":1}"}]}]
    out = registry["qwen2.5-tools"].render(msgs)
    assert '{"name": "f", "arguments": "{\\"a\\":1}"}' in out
    check("qwen2.5-tools", [(msgs, None, False)])


def test_mistral_refuses_an_earlier_user_message_like_the_last():
    """Mistral Small 3.2's template puts the tool list before every user message equal to the last
    one (it compares messages by value): the real template renders it twice here; tmplc's format
    and its HF template refuse (a MessageError naming the earlier message) rather than render one
    of the two readings."""
    import tmplc

    fmt = registry["mistral-v7-tekken-tools"]
    tok = load_tokenizer("llama2")
    msgs = [{"role": "user", "content": "go on"}, {"role": "assistant", "content": "a"},
            {"role": "user", "content": "go on"}]
    tools = [WEATHER]
    real = tok.apply_chat_template(msgs, tokenize=False, tools=tools, chat_template=_real_template("mistral-v7-tekken-tools"))
    assert real.count("[AVAILABLE_TOOLS]") == 2
    with pytest.raises(tmplc.MessageError, match="same content") as e:
        fmt.render(msgs, tools=tools)
    assert e.value.index == 0
    with pytest.raises(Exception, match="same content"):
        tok.apply_chat_template(msgs, tokenize=False, tools=tools, chat_template=fmt.to_jinja())
    msgs[0]["content"] = "go on, please"
    check("mistral-v7-tekken-tools", [(msgs, tools, False), (msgs, tools, True)])
