"""Ollama import through the Go harness: round trip of the Ollama target, refusals."""

from __future__ import annotations

import os

import pytest

from conftest import missing_fixture
from tmplc import registry
from tmplc.convert import ConversionRefused, from_ollama
from tmplc.convert.common import verification_cases
from tmplc.convert.ollama import expected_ollama
from tmplc.engines.ollama import GoNotFoundError, find_go, harness_binary, render_ollama


@pytest.fixture(scope="module", autouse=True)
def go_harness():
    try:
        find_go()
    except GoNotFoundError as exc:
        missing_fixture("Go (for the Ollama harness)", f"apt-get install golang-go ({exc})")
    harness_binary()


def _ollama_target(fmt):
    """The Modelfile fields for fmt; formats with |trim are written with allow_untrimmed=True
    (Ollama cannot trim: the Modelfile renders contents as sent, which is what is imported)."""
    from tmplc.targets.ollama import modelfile_fields

    return modelfile_fields(fmt.to_ollama(allow_untrimmed=fmt.trims))


@pytest.mark.parametrize("name", sorted(registry))
def test_to_ollama_round_trip(name):
    fmt = registry[name]
    if fmt.structure.assistant.drop_think or fmt.structure.tools is not None:
        # Ollama templates cannot split an answer nor write the format's tool JSON: refused
        from tmplc.targets.ollama import TargetError

        # (a tool format is refused for its JSON first: Ollama's encoding/json)
        with pytest.raises(TargetError, match="drop_think" if fmt.structure.tools is None else "encoding/json"):
            fmt.to_ollama(allow_untrimmed=True)
        return
    mf = _ollama_target(fmt)
    bos = fmt.meta.bos_token if fmt.structure.uses("BOS") else None
    back = from_ollama(mf["template"], mf["system"], bos_token=bos, eos_token=fmt.meta.eos_token, n_random=60)
    # Ollama-equivalence, checked here independently of from_ollama's own verification
    cases = verification_cases(system=fmt.structure.system is not None, n_random=40, seed=99,
                               generation_prompt=False)
    got = render_ollama([{"template": mf["template"], "messages": c.msgs,
                          **({"system": mf["system"]} if mf["system"] else {})} for c in cases])
    for c, g in zip(cases, got):
        assert expected_ollama(back, c, prefill=True, bos=bos is not None) == g, c.label


@pytest.mark.parametrize("name", ["chatml", "qwen2.5", "phi-3", "granite", "openchat", "solar"])
def test_to_ollama_round_trip_is_identity_where_the_split_is_visible(name):
    fmt = registry[name]
    mf = _ollama_target(fmt)
    back = from_ollama(mf["template"], mf["system"], bos_token=fmt.meta.bos_token if fmt.structure.uses("BOS")
                       else None, eos_token=fmt.meta.eos_token, n_random=40)
    assert back.structure == fmt.structure


def test_library_style_template_with_if_system_recovers_nonempty_system():
    # {{ if .System }}: a system message with content "" is no system message ({SYSTEM|nonempty})
    t = ("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
         "{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 }}"
         "{{- if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n"
         "{{ else if eq .Role \"assistant\" }}<|im_start|>assistant\n{{ .Content }}"
         "{{ if not $last }}<|im_end|>\n{{ end }}{{ end }}{{ if and $last (ne .Role \"assistant\") }}"
         "<|im_start|>assistant\n{{ end }}{{ end }}")
    fmt = from_ollama(t, n_random=40)
    assert fmt.structure.system.skip_empty and fmt.default_system is None
    assert "{SYSTEM|nonempty}" in fmt.to_spec()
    msgs = [{"role": "system", "content": ""}, {"role": "user", "content": "q"}]
    (got,) = render_ollama([{"template": t, "messages": msgs}])
    assert got == fmt.render(msgs, add_generation_prompt=True) == \
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    # ... and the Ollama target carries it back
    mf = _ollama_target(fmt)
    (again,) = render_ollama([{"template": mf["template"], "messages": msgs}])
    assert again == got
    # with a Modelfile SYSTEM, an empty system message still shows no block (Ollama sends SYSTEM
    # only when the first message is not a system one): {SYSTEM|nonempty=D} cannot say that
    with pytest.raises(ConversionRefused, match="system content ''"):
        from_ollama(t, system="Be brief.", n_random=10)


def _with(fmt, *, skip=False, prompt=""):
    from dataclasses import replace

    from tmplc.ir import ChatFormat

    st = fmt.structure
    if skip:
        st = replace(st, system=replace(st.system, skip_empty=True))
    if prompt:
        st = replace(st, assistant=replace(st.assistant, prompt_only=prompt))
    return ChatFormat(st, fmt.meta.__class__(**{**fmt.meta.__dict__, "name": fmt.name + "+"}))


@pytest.mark.parametrize("name", ["chatml", "vicuna", "llama-2", "mistral-v3", "llama-3"])
@pytest.mark.parametrize("skip,prompt", [(True, ""), (False, "<think>\n"), (True, "<think>\n")])
def test_nonempty_system_and_prompt_only_survive_the_ollama_round_trip(name, skip, prompt):
    fmt = _with(registry[name], skip=skip, prompt=prompt)
    mf = _ollama_target(fmt)
    bos = fmt.meta.bos_token if fmt.structure.uses("BOS") else None
    back = from_ollama(mf["template"], mf["system"], bos_token=bos, eos_token=fmt.meta.eos_token, n_random=40)
    assert back.structure.system.skip_empty == skip
    assert back.structure.assistant.prompt_only == prompt
    assert back.structure.assistant.lead == fmt.structure.assistant.lead
    if name == "chatml":
        assert back.structure == fmt.structure


def test_date_template_is_refused():
    t = ("Today is {{ currentDate }}.{{ range .Messages }}<{{ .Role }}>{{ .Content }}</{{ .Role }}>{{ end }}"
         "<assistant>")
    with pytest.raises(ConversionRefused, match="today's date"):
        from_ollama(t)


def test_modelfile_system_becomes_the_default():
    t = ("{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
         "<|im_start|>assistant\n")
    with pytest.raises(ConversionRefused):
        from_ollama(t)  # always appends the assistant header, even after an answer
    t2 = ("{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 }}"
          "<|im_start|>{{ .Role }}\n{{ .Content }}{{ if or (not $last) (ne .Role \"assistant\") }}<|im_end|>\n"
          "{{ end }}{{ if and $last (ne .Role \"assistant\") }}<|im_start|>assistant\n{{ end }}{{ end }}")
    fmt = from_ollama(t2, system="Be brief.")
    assert fmt.default_system == "Be brief."
    assert os.environ is not None


def test_prompt_that_stops_before_the_history_opening_text_becomes_the_lead():
    # Vicuna-style: the prompt ends with "ASSISTANT:", an answer in the history follows "ASSISTANT: "
    t = ("{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 }}"
         "{{- if eq .Role \"system\" }}{{ .Content }} "
         "{{- else if eq .Role \"user\" }}USER: {{ .Content }} {{ if $last }}ASSISTANT:{{ end }}"
         "{{- else if eq .Role \"assistant\" }}ASSISTANT: {{ .Content }}{{ if not $last }}</s>{{ end }}"
         "{{- end }}{{- end }}")
    fmt = from_ollama(t, eos_token="</s>", n_random=40)
    st = fmt.structure
    assert st.assistant.lead and "".join(p.value for p in st.assistant.lead) == " "
    msgs = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    assert fmt.render(msgs[:1], True) == "USER: x ASSISTANT:"
    assert fmt.render(msgs) == "USER: x ASSISTANT: y</s>"


@pytest.mark.parametrize("name", ["vicuna", "openchat", "deepseek-v2", "mistral-v3", "llama-2"])
def test_registry_leads_survive_the_ollama_round_trip(name):
    fmt = registry[name]
    mf = _ollama_target(fmt)
    bos = fmt.meta.bos_token if fmt.structure.uses("BOS") else None
    back = from_ollama(mf["template"], mf["system"], bos_token=bos, eos_token=fmt.meta.eos_token, n_random=40)
    assert back.structure.assistant.lead
