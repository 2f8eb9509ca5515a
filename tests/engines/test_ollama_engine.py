"""The real Go text/template engine, driven the way Ollama drives it.

Every expected string below is written by hand from Ollama's semantics
(template/template.go, server/routes.go; see ollama_harness/main.go), never
copied from the harness output.
"""

from __future__ import annotations

import time

import pytest

from conftest import missing_fixture
from tmplc.engines.ollama import (
    GoNotFoundError,
    OllamaRenderError,
    find_go,
    harness_binary,
    render_ollama,
    render_ollama_one,
)


@pytest.fixture(scope="module", autouse=True)
def go_harness() -> None:
    """Build the harness once; without Go, skip locally but fail on CI."""
    try:
        find_go()
    except GoNotFoundError as exc:
        missing_fixture(f"Go ({exc})", "apt-get install golang-go")
    harness_binary()


# Ollama library llama3.1-style messages-mode template (tools removed).
LLAMA3 = """\
{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>

{{ .Content }}{{ if not $last }}<|eot_id|>{{ end }}
{{- end }}
{{- end }}"""

# Ollama's built-in chatml.gotmpl: prints every message, always adds the header.
CHATML = """\
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

# ChatML whose generation prompt depends on the last message ($last idiom).
CHATML_LAST = """\
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}{{ if or (ne .Role "assistant") (not $last) }}<|im_end|>
{{ end }}
{{- if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"""

# A legacy (.System/.Prompt/.Response) ChatML template.
CHATML_LEGACY = """\
{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ .Response }}<|im_end|>
"""

H = "<|start_header_id|>{}<|end_header_id|>\n\n"


def u(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def a(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def s(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


# --- generation prompt / trailing assistant ---------------------------------------------


def test_llama3_ends_with_user_gets_generation_prompt() -> None:
    out = render_ollama_one(LLAMA3, [s("Be brief."), u("Hi"), a("Hello!"), u("Bye")])
    assert out == (
        H.format("system") + "Be brief.<|eot_id|>"
        + H.format("user") + "Hi<|eot_id|>"
        + H.format("assistant") + "Hello!<|eot_id|>"
        + H.format("user") + "Bye<|eot_id|>"
        + H.format("assistant")
    )


def test_llama3_trailing_assistant_is_a_prefill() -> None:
    # Ollama passes no add_generation_prompt flag; the template's $last decides, and the
    # trailing assistant message is left open (no <|eot_id|>, no new header).
    out = render_ollama_one(LLAMA3, [u("Hi"), a("Sure, the answer is")])
    assert out == H.format("user") + "Hi<|eot_id|>" + H.format("assistant") + "Sure, the answer is"


def test_chatml_last_idiom() -> None:
    assert render_ollama_one(CHATML_LAST, [u("x")]) == (
        "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render_ollama_one(CHATML_LAST, [u("x"), a("y")]) == (
        "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\ny"
    )


def test_builtin_chatml_always_adds_header_even_after_assistant() -> None:
    # A template without $last renders the trailing assistant closed, then a new header.
    assert render_ollama_one(CHATML, [u("x"), a("y")]) == (
        "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\ny<|im_end|>\n<|im_start|>assistant\n"
    )


# --- collate: merging and .System -------------------------------------------------------


def test_consecutive_same_role_messages_are_merged() -> None:
    out = render_ollama_one(CHATML, [u("a"), u("b"), a("c"), a("d"), u("e")])
    assert out == (
        "<|im_start|>user\na\n\nb<|im_end|>\n"
        "<|im_start|>assistant\nc\n\nd<|im_end|>\n"
        "<|im_start|>user\ne<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_tool_messages_are_not_merged() -> None:
    tmpl = "{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}"
    msgs = [u("q"), {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}]
    assert render_ollama_one(tmpl, msgs) == "[user:q][tool:1][tool:2]"


def test_system_joins_all_system_messages_which_stay_in_messages() -> None:
    tmpl = "S={{ .System }}|{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}"
    msgs = [s("one"), u("q"), s("two"), s("three"), u("r")]
    assert render_ollama_one(tmpl, msgs) == (
        "S=one\n\ntwo\n\nthree|[system:one][user:q][system:two\n\nthree][user:r]"
    )


def test_llama3_system_from_two_system_messages() -> None:
    out = render_ollama_one(LLAMA3, [s("A"), u("q"), s("B"), u("r")])
    assert out == (
        H.format("system") + "A\n\nB<|eot_id|>"
        + H.format("user") + "q<|eot_id|>"
        + H.format("user") + "r<|eot_id|>" + H.format("assistant")
    )


def test_roles_are_lower_cased() -> None:
    tmpl = "{{ range .Messages }}{{ .Role }};{{ end }}"
    assert render_ollama_one(tmpl, [{"role": "USER", "content": "x"}, {"role": "Assistant", "content": "y"}]) == (
        "user;assistant;"
    )


# --- Modelfile SYSTEM default -------------------------------------------------------------


def test_default_system_prepended_when_first_message_is_not_system() -> None:
    tmpl = "S={{ .System }}|{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}"
    assert render_ollama_one(tmpl, [u("q")], system="DEF") == "S=DEF|[system:DEF][user:q]"


def test_default_system_not_used_when_first_message_is_system() -> None:
    tmpl = "S={{ .System }}|{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}"
    assert render_ollama_one(tmpl, [s("mine"), u("q")], system="DEF") == "S=mine|[system:mine][user:q]"


def test_default_system_only_looks_at_the_first_message() -> None:
    # routes.go checks req.Messages[0].Role only: a later system message does not stop the default.
    tmpl = "S={{ .System }}|{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}"
    assert render_ollama_one(tmpl, [u("q"), s("late"), u("r")], system="DEF") == (
        "S=DEF\n\nlate|[system:DEF][user:q][system:late][user:r]"
    )


def test_default_system_with_llama3() -> None:
    out = render_ollama_one(LLAMA3, [u("Hi")], system="You are a pirate.")
    assert out == (
        H.format("system") + "You are a pirate.<|eot_id|>"
        + H.format("user") + "Hi<|eot_id|>" + H.format("assistant")
    )


# --- functions and missing keys -----------------------------------------------------------


def test_json_function_is_compact_and_html_escaped() -> None:
    tmpl = "{{ range .Messages }}{{ json .Content }}{{ end }}"
    assert render_ollama_one(tmpl, [u('say "hi" <b> & é\n')]) == (
        '"say \\"hi\\" \\u003cb\\u003e \\u0026 é\\n"'
    )


def test_json_of_a_message_uses_go_field_names() -> None:
    tmpl = "{{ json (index .Messages 0) }}"
    assert render_ollama_one(tmpl, [u("x")]) == (
        '{"Role":"user","Content":"x","Thinking":"","Images":null,'
        '"ToolCalls":null,"ToolName":"","ToolCallID":""}'
    )


def test_tool_call_arguments_print_as_sorted_json() -> None:
    tmpl = "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Name }}{{ .Function.Arguments }}{{ end }}{{ end }}"
    msg = {"role": "assistant", "content": "",
           "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": "<x>"}}}]}
    assert render_ollama_one(tmpl, [u("q"), msg]) == 'f{"a":"\\u003cx\\u003e","b":1}'


def test_missingkey_zero_is_not_an_error() -> None:
    # A missing key of the data map is falsy, and printing it gives Go's "<no value>"
    # (missingkey=zero on map[string]any yields a nil interface). .Prompt does not exist
    # in messages mode.
    tmpl = "{{ if .Missing }}yes{{ else }}no{{ end }}|{{ .Missing }}|{{ .Prompt }}|{{ len .Messages }}"
    assert render_ollama_one(tmpl, [u("q")]) == "no|<no value>|<no value>|1"


def test_unknown_message_field_is_an_execution_error() -> None:
    with pytest.raises(OllamaRenderError, match="can't evaluate field Foo"):
        render_ollama_one("{{ range .Messages }}{{ .Foo }}{{ end }}", [u("q")])


def test_tools_are_nil_and_response_empty_in_messages_mode() -> None:
    tmpl = "{{ if .Tools }}T{{ else }}noT{{ end }}|{{ .Tools }}|[{{ .Response }}]{{ .Messages | len }}"
    assert render_ollama_one(tmpl, [u("q")]) == "noT|null|[]1"


def test_current_date_accepts_and_ignores_its_format() -> None:
    (out,) = render_ollama([{"template": "{{ currentDate }} {{ currentDate \"%d %b\" }} {{ yesterdayDate }}"
                                          "{{ .Messages }}",
                             "messages": [], "date": "2024-03-01"}])
    assert out == "2024-03-01 2024-03-01 2024-02-29[]"


def test_current_date_reads_the_clock_without_the_test_hook() -> None:
    """Ollama's currentDate/yesterdayDate format time.Now() (local); the job's "date" is only a
    test hook of the harness.  A bad hook value is an error of that job."""
    import datetime

    tmpl = "{{ currentDate }}|{{ yesterdayDate }}{{ .Messages }}"
    before = datetime.date.today()
    out = render_ollama([{"template": tmpl, "messages": []}, {"template": tmpl, "messages": [], "date": "2024-3-1"},
                         {"template": tmpl, "messages": [], "date": datetime.date(2025, 1, 1)}])
    days = {before, datetime.date.today()}
    assert out[0] in {f"{d.isoformat()}|{(d - datetime.timedelta(1)).isoformat()}[]" for d in days}
    assert isinstance(out[1], OllamaRenderError) and "YYYY-MM-DD" in out[1].message
    assert out[2] == "2025-01-01|2024-12-31[]"


def test_think_values() -> None:
    tmpl = "{{ .Think }}/{{ .ThinkLevel }}/{{ .IsThinkSet }}{{ .Messages | len }}"
    jobs = [
        {"template": tmpl, "messages": [u("q")]},
        {"template": tmpl, "messages": [u("q")], "think": True},
        {"template": tmpl, "messages": [u("q")], "think": False},
        {"template": tmpl, "messages": [u("q")], "think": "high"},
    ]
    assert render_ollama(jobs) == ["false//false1", "true/medium/true1", "false//true1", "true/high/true1"]


# --- legacy mode --------------------------------------------------------------------------


def test_legacy_mode_per_turn_and_generation_prompt() -> None:
    out = render_ollama_one(CHATML_LEGACY, [s("S"), u("a"), a("b"), u("c")])
    assert out == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n"
        "<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n"
    )


def test_legacy_mode_trailing_assistant_is_cut_after_response() -> None:
    out = render_ollama_one(CHATML_LEGACY, [u("a"), a("b")])
    assert out == "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb"


def test_legacy_mode_uses_default_system_once() -> None:
    out = render_ollama_one(CHATML_LEGACY, [u("a"), a("b"), u("c")], system="S")
    assert out == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n"
        "<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n"
    )


def test_legacy_template_without_response_gets_one_appended() -> None:
    # "{{ .Prompt }}" becomes "{{ .Prompt }}{{ .Response }}".
    assert render_ollama_one("{{ .Prompt }}", [u("a"), a("b"), u("c")]) == "abc"


def test_legacy_final_turn_has_no_funcmap() -> None:
    # Ollama executes the truncated last turn on a bare template.New(""): no "json".
    with pytest.raises(OllamaRenderError, match='"json" is not a defined function'):
        render_ollama_one("{{ json .Prompt }}{{ .Response }}", [u("a")])


# --- errors and batching ------------------------------------------------------------------


def test_syntax_error_is_an_error_result_and_does_not_abort_the_batch() -> None:
    jobs = [
        {"template": CHATML, "messages": [u("x")]},
        {"template": "{{ range .Messages }}{{ .Content }", "messages": [u("x")]},
        {"template": "{{ template \"nope\" }}", "messages": [u("x")]},
        {"template": "{{ if .Messages }}", "messages": [u("x")]},
        {"template": CHATML, "messages": [u("y")]},
    ]
    res = render_ollama(jobs)
    assert res[0] == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
    assert isinstance(res[1], OllamaRenderError) and res[1].index == 1
    assert isinstance(res[2], OllamaRenderError) and "undefined template specified" in res[2].message
    assert isinstance(res[3], OllamaRenderError)
    assert res[4] == "<|im_start|>user\ny<|im_end|>\n<|im_start|>assistant\n"


def test_render_ollama_one_raises() -> None:
    with pytest.raises(OllamaRenderError):
        render_ollama_one("{{ .Messages", [u("x")])


def test_empty_batch() -> None:
    assert render_ollama([]) == []


def _expected_chatml_last(msgs: list[dict[str, str]]) -> str:
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs]
    if msgs[-1]["role"] == "assistant":
        parts[-1] = parts[-1][: -len("<|im_end|>\n")]
    else:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def test_thousand_jobs_in_one_call() -> None:
    tricky = ["", " lead", "trail ", "{{ .System }}", "<|im_end|>", "naïve\n\nü", "{% x %}", "a\tb\r\n"]
    jobs, expected = [], []
    for i in range(1000):
        n = 1 + i % 6
        msgs = []
        for k in range(n):
            role = "user" if k % 2 == 0 else "assistant"
            msgs.append({"role": role, "content": f"{tricky[(i + k) % len(tricky)]}#{i}.{k}"})
        if i % 3 == 0:
            msgs.insert(0, s(f"sys{i}"))
        jobs.append({"template": CHATML_LAST, "messages": msgs})
        expected.append(_expected_chatml_last(msgs))
    start = time.perf_counter()
    out = render_ollama(jobs)
    elapsed = time.perf_counter() - start
    assert out == expected
    assert elapsed < 30, f"1000 renders took {elapsed:.2f}s"


def test_go_not_found_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import tmplc.engines.ollama as engine

    monkeypatch.delenv("TMPLC_GO", raising=False)
    monkeypatch.setattr(engine.shutil, "which", lambda name: None)
    monkeypatch.setattr(engine.os, "access", lambda path, mode: False)
    with pytest.raises(GoNotFoundError, match="apt-get install golang-go") as info:
        engine.find_go()
    assert isinstance(info.value, RuntimeError)
