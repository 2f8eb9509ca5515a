"""The template registry (templates/*.yaml): metadata, round trips, and every entry's Jinja
rendered by transformers' real chat-template machinery equals the reference renderer.

Properties (DESIGN.md "Invariants"): spec round trip, Jinja == reference (with and without
add_generation_prompt), append-only, and generation prompt + content + assistant suffix ==
the full render.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import tmplc
from tmplc.ir import SpecialToken
from tmplc.registry import registry
from tmplc.spec.files import load_yaml_spec, parse_structure

import answer_rules
from strategies import conversations

NAMES = list(registry)

REQUIRED = [
    "llama-2", "llama-3", "llama-3.1", "llama-3.2", "chatml", "qwen2.5", "qwen3", "mistral-v1",
    "mistral-v3", "mistral-v7", "gemma", "gemma-2", "gemma-3", "phi-3", "phi-4", "alpaca", "vicuna",
    "zephyr", "openchat", "deepseek-v2", "deepseek-v3", "command-r", "granite", "starling", "solar",
    "yi",
]


def _render_jinja(fmt, messages, add_generation_prompt):
    """Render fmt.to_jinja() through transformers' own chat-template renderer (the sandboxed
    environment with trim_blocks/lstrip_blocks and {% generation %} that apply_chat_template uses)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    kwargs = {}
    if fmt.meta.bos_token is not None:
        kwargs["bos_token"] = fmt.meta.bos_token
    if fmt.meta.eos_token is not None:
        kwargs["eos_token"] = fmt.meta.eos_token
    rendered, _ = render_jinja_template(
        conversations=[messages], chat_template=_jinja(fmt.name),
        add_generation_prompt=add_generation_prompt, **kwargs)
    return rendered[0]


_JINJA: dict[str, str] = {}


def _jinja(name: str) -> str:
    if name not in _JINJA:
        _JINJA[name] = registry[name].to_jinja()
    return _JINJA[name]


def _frag_text(fmt, frag) -> str:
    out = []
    for p in frag:
        if isinstance(p, SpecialToken):
            out.append(fmt.meta.bos_token if p.name == "BOS" else fmt.meta.eos_token)
        else:
            out.append(p.value)
    return "".join(out)


def _convs(fmt, **kw):
    """Conversations the format accepts: no system message when it has no system slot."""
    if fmt.structure.system is None:
        kw["system"] = False
    return conversations(**kw)


# -- metadata ----------------------------------------------------------------------------------

def test_registry_has_the_required_families():
    assert len(NAMES) >= 25
    missing = [n for n in REQUIRED if n not in NAMES]
    assert not missing, f"missing registry entries: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_entry_loads_with_metadata(name):
    fmt = registry[name]
    assert fmt.name == name
    assert name == name.lower()
    path = Path(fmt.meta.source)
    assert path.stem == name and path.suffix == ".yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["name"] == name
    assert fmt.meta.description.strip() and "\n" not in fmt.meta.description.strip()
    assert fmt.meta.aliases, f"{name}: no aliases"
    assert fmt.meta.notes.strip(), f"{name}: notes must document the source and differences"
    assert fmt.meta.eos_token, f"{name}: eos_token is not declared"
    assert fmt.stop_strings, f"{name}: no stop strings"
    # a {BOS}/{EOS} in the spec needs its token declared (the loader enforces it; keep it so)
    if fmt.structure.uses("BOS"):
        assert fmt.bos_token
    # the YAML chomping indicator decides the spec's final newline: the assistant turn must
    # end exactly where the spec says (a stray "\n" from '|' instead of '|-' would end up here)
    tail = data["spec"][data["spec"].rindex("{OUTPUT"):]
    tail = tail[tail.index("}") + 1:].replace("{EOS}", fmt.meta.eos_token or "").replace(
        "{BOS}", fmt.meta.bos_token or "")
    assert tail == _frag_text(fmt, fmt.structure.assistant.suffix)

def test_aliases_unique_across_registry():
    seen: dict[str, str] = {}
    for name in NAMES:
        for alias in registry[name].meta.aliases:
            key = alias.strip().lower()
            assert key not in seen, f"alias {alias!r} of {name} is also an alias of {seen[key]}"
            assert key not in NAMES or key == name, f"alias {alias!r} of {name} is an entry name"
            seen[key] = name


@pytest.mark.parametrize("name", NAMES)
def test_aliases_resolve(name):
    aliases = registry[name].meta.aliases
    resolved = [a for a in aliases if registry.resolve(a) == name]
    assert resolved, f"{name}: no alias resolves to it"
    assert resolved == list(aliases)
    assert registry.resolve(name.upper()) == name
    assert tmplc.load(aliases[0]).structure == registry[name].structure


# -- round trips -------------------------------------------------------------------------------

@given(st.sampled_from(NAMES))
def test_spec_round_trip(name):
    from tmplc.spec.tools import text_layout

    fmt = registry[name]  # the spec text carries the text layout; a YAML's 'tools:' the rest
    assert parse_structure(fmt.to_spec()) == text_layout(fmt.structure)


@pytest.mark.parametrize("name", NAMES)
def test_yaml_round_trip(name):
    fmt = registry[name]
    back = load_yaml_spec(fmt.to_yaml(), f"{name}.yaml")
    assert back.structure == fmt.structure
    assert back.meta.aliases == fmt.meta.aliases
    assert back.meta.stop == fmt.meta.stop


# -- Jinja through transformers == reference renderer -----------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_jinja_equals_reference(name):
    fmt = registry[name]

    @given(_convs(fmt), st.booleans())
    def check(msgs, agp):
        assert _render_jinja(fmt, msgs, agp) == fmt.render(msgs, add_generation_prompt=agp)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_jinja_fixed_conversations(name):
    fmt = registry[name]
    system = [{"role": "system", "content": "  Be brief.\n"}] if fmt.structure.system else []
    msgs = system + [
        {"role": "user", "content": "Hi {{ there }} <|eot_id|>"},
        {"role": "assistant", "content": "\nHello!  "},
        {"role": "user", "content": "What's 2+2?"},
    ]
    for agp in (False, True):
        assert _render_jinja(fmt, msgs, agp) == fmt.render(msgs, add_generation_prompt=agp)
    if fmt.structure.system is None:
        from jinja2.exceptions import TemplateError

        with pytest.raises(tmplc.MessageError):
            fmt.render([{"role": "system", "content": "x"}] + msgs)
        with pytest.raises(TemplateError):
            _render_jinja(fmt, [{"role": "system", "content": "x"}] + msgs, False)


# -- append-only and generation prompt ---------------------------------------------------------

def _exchanges(msgs):
    head = msgs[:1] if msgs and msgs[0]["role"] == "system" else []
    return head, msgs[len(head):]


@pytest.mark.parametrize("name", NAMES)
def test_append_only(name):
    fmt = registry[name]
    a = fmt.structure.assistant
    lead, suffix = _frag_text(fmt, a.lead), _frag_text(fmt, a.suffix)

    @given(_convs(fmt, end_with_assistant=True))
    def check(msgs):
        head, body = _exchanges(msgs)
        # a user-final conversation is a prefix of every longer one, and so is its generation
        # prompt (without its {PROMPT=...} text: deepseek-r1's "<think>\n" is the prompt's only)
        renders = [fmt.render(head + body[:2 * k - 1]) for k in range(1, len(body) // 2 + 1)]
        for a_, b_ in zip(renders, renders[1:]):
            assert b_.startswith(a_)
        for k in range(1, len(body) // 2 + 1):
            full = fmt.render(head + body[:2 * k])
            assert full.startswith(fmt.render(head + body[:2 * k - 1]))
            prompt = fmt.render(head + body[:2 * k - 1], add_generation_prompt=True)
            assert prompt.endswith(a.prompt_only)
            prompt = prompt[:len(prompt) - len(a.prompt_only)]
            assert full.startswith(prompt)
            # the answer as an earlier answer renders it (qwen3-thinking: its reasoning dropped)
            # is what every longer conversation holds
            if 2 * k < len(body):
                earlier = prompt + lead + answer_rules.answer(a, body[2 * k - 1]["content"], False) + suffix
                assert fmt.render(head + body[:2 * k + 1]).startswith(earlier)
        if a.final is None and a.final_suffix is None:  # the answers render alike: plain append-only
            renders = [fmt.render(head + body[:2 * k]) for k in range(1, len(body) // 2 + 1)]
            for a_, b_ in zip(renders, renders[1:]):
                assert b_.startswith(a_)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_generation_prompt_plus_reply_is_the_full_render(name):
    fmt = registry[name]
    a = fmt.structure.assistant
    suffix = _frag_text(fmt, a.suffix if a.final_suffix is None else a.final_suffix)
    lead = _frag_text(fmt, a.lead)  # {REPLY}: text the model writes before the content

    @given(_convs(fmt, end_with_assistant=True))
    def check(msgs):
        # the final answer: its reasoning dropped (deepseek-r1), re-wrapped (qwen3-thinking),
        # trimmed, as answer_rules writes the rules out
        content = answer_rules.answer(a, msgs[-1]["content"], True)
        # {PROMPT=...} text (deepseek-r1's "<think>\n") is the prompt's only
        prompt = fmt.render(msgs[:-1], add_generation_prompt=True)
        assert prompt.endswith(a.prompt_only)
        prompt = prompt[:len(prompt) - len(a.prompt_only)]
        assert prompt + lead + content + suffix == fmt.render(msgs)
        jprompt = _render_jinja(fmt, msgs[:-1], True)
        assert jprompt[:len(jprompt) - len(a.prompt_only)] + lead + content + suffix == _render_jinja(fmt, msgs, False)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_generation_prompt_is_the_assistant_prefix(name):
    fmt = registry[name]
    msgs = ([{"role": "system", "content": "s"}] if fmt.structure.system else []) + \
        [{"role": "user", "content": "u"}]
    with_gp = fmt.render(msgs, add_generation_prompt=True)
    without = fmt.render(msgs)
    a = fmt.structure.assistant
    assert with_gp == without + _frag_text(fmt, a.prefix) + a.prompt_only


def test_stop_strings_cover_the_end_of_turn():
    for name in NAMES:
        fmt = registry[name]
        suffix = _frag_text(fmt, fmt.structure.assistant.suffix)
        if suffix.strip():
            assert any(s in suffix for s in fmt.stop_strings), \
                f"{name}: stop strings {fmt.stop_strings} do not cover the turn end {suffix!r}"


def test_compile_from_a_warm_cache_imports_neither_lark_nor_yaml(tmp_path):
    """Cold start: a registry entry compiled once is read back as IR JSON (no YAML, no Lark)."""
    import os
    import subprocess
    import sys

    code = ("import sys, tmplc; t = tmplc.load('chatml').to_jinja(); "
            "print('lark' in sys.modules, 'yaml' in sys.modules, len(t) > 0)")
    env = dict(os.environ, TMPLC_CACHE_DIR=str(tmp_path))
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert first.stdout.split() == ["True", "True", "True"]  # compiled: YAML and the parser
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert again.stdout.split() == ["False", "False", "True"]


def test_spec_cache_follows_the_file(tmp_path, monkeypatch):
    from tmplc.spec.cache import load_cached

    monkeypatch.setenv("TMPLC_CACHE_DIR", str(tmp_path / "cache"))
    src = tmplc.registry["chatml"].meta.source
    path = tmp_path / "mine.yaml"
    text = open(src, encoding="utf-8").read()
    path.write_text(text, encoding="utf-8")
    first = load_cached(path)
    assert first == tmplc.load_spec_file(path) and load_cached(path) == first
    path.write_text(text.replace("<|im_end|>", "<|end|>"), encoding="utf-8")
    changed = load_cached(path)
    assert changed == tmplc.load_spec_file(path) and changed != first
    assert list((tmp_path / "cache" / "spec-cache").iterdir())  # both compiled results are cached
