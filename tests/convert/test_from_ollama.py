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


def test_library_style_template_with_if_system_is_refused_for_empty_system():
    t = ("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
         "{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 }}"
         "{{- if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n"
         "{{ else if eq .Role \"assistant\" }}<|im_start|>assistant\n{{ .Content }}"
         "{{ if not $last }}<|im_end|>\n{{ end }}{{ end }}{{ if and $last (ne .Role \"assistant\") }}"
         "<|im_start|>assistant\n{{ end }}{{ end }}")
    with pytest.raises(ConversionRefused) as e:
        from_ollama(t)
    assert "no system message" in e.value.reason or "ignores" in e.value.reason


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
