"""llama.cpp's own engines (C++ Jinja of ``llama-server --jinja`` + built-in templates), from Python.

Expected strings are written by hand from what each template means; they are never copied
from the driver's output.  Needs the llama-cpp-python sdist (fetched into the cache) and a
C++ compiler: skipped without them, failed when ``CI=true``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tmplc.engines.llamacpp import (
    LlamaCppRenderError,
    LlamaCppUnavailableError,
    builtin_names,
    detect_builtin,
    detect_builtins,
    ensure_llamacpp_driver,
    render_builtin,
    render_llamacpp,
    render_llamacpp_one,
    template_caps,
)
from tmplc.engines.llamacpp_fetch import llamacpp_source_dir
from conftest import missing_fixture

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# The shape of Meta's Llama-3 instruct template (bos on the first message, content | trim).
LLAMA3 = (
    "{% set loop_messages = messages %}"
    "{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

CONVERSATION = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "  Bye\n"},
]


@pytest.fixture(scope="module")
def driver() -> Path:
    """Build (or reuse) the driver; skip when llama.cpp cannot be had, fail under CI=true."""
    try:
        return ensure_llamacpp_driver()
    except LlamaCppUnavailableError as exc:
        missing_fixture(f"llama.cpp's engine ({exc})", "run: python scripts/fetch_llamacpp.py --build")


def test_chatml_template(driver: Path) -> None:
    expected = (
        "<|im_start|>system\nYou are helpful.<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\n  Bye\n<|im_end|>\n"
    )
    assert render_llamacpp_one(CHATML, CONVERSATION) == expected
    with_prompt = render_llamacpp_one(CHATML, CONVERSATION, add_generation_prompt=True)
    assert with_prompt == expected + "<|im_start|>assistant\n"


def test_llama3_template_bos_and_trim(driver: Path) -> None:
    expected = (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    kwargs = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "add_generation_prompt": True}
    assert render_llamacpp_one(LLAMA3, CONVERSATION, **kwargs) == expected
    # llama-server drops the template's leading BOS when the GGUF says add_bos_token=true
    stripped = render_llamacpp_one(LLAMA3, CONVERSATION, add_bos=True, **kwargs)
    assert stripped == expected.removeprefix("<|begin_of_text|>")


def test_add_generation_prompt_is_undefined_when_false(driver: Path) -> None:
    # llama-server only sets add_generation_prompt when it is true
    tpl = "{{ 'D' if add_generation_prompt is defined else 'U' }}"
    assert render_llamacpp_one(tpl, [], add_generation_prompt=False) == "U"
    assert render_llamacpp_one(tpl, [], add_generation_prompt=True) == "D"


def test_errors_are_results_not_crashes(driver: Path) -> None:
    ok = "{{ messages[0]['content'] }}"
    msgs = [{"role": "user", "content": "x"}]
    jobs = [
        {"template": "{{ messages[0]['content'] | center(9) }}", "messages": msgs},  # no such filter
        {"template": ok, "messages": msgs},
        {"template": "{{ messages | length // 2 }}", "messages": msgs},  # `//` does not lex
        {"template": "{% if true %}unclosed", "messages": msgs},  # parse error
        {"template": "{{ raise_exception('no system role') }}", "messages": msgs},
        {"template": "{% with a = 1 %}{{ a }}{% endwith %}", "messages": msgs},  # unknown statement
        {"template": ok, "messages": msgs},
    ]
    results = render_llamacpp(jobs)
    assert len(results) == len(jobs)
    assert results[1] == "x" and results[6] == "x"
    for i in (0, 2, 3, 4, 5):
        assert isinstance(results[i], LlamaCppRenderError), (i, results[i])
        assert results[i].index == i
    assert "center" in results[0].message
    assert "no system role" in results[4].message
    with pytest.raises(LlamaCppRenderError):
        render_llamacpp_one("{{ 'a' | center(5) }}", [])


def test_many_jobs_in_one_call(driver: Path) -> None:
    jobs = []
    expected = []
    for i in range(300):
        msgs = [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]
        jobs.append({"template": CHATML, "messages": msgs, "add_generation_prompt": i % 2 == 0})
        text = (f"<|im_start|>user\nquestion {i}<|im_end|>\n"
                f"<|im_start|>assistant\nanswer {i}<|im_end|>\n")
        expected.append(text + ("<|im_start|>assistant\n" if i % 2 == 0 else ""))
    assert render_llamacpp(jobs) == expected


def test_content_is_data_not_template(driver: Path) -> None:
    msgs = [{"role": "user", "content": "{{ 1 + 1 }} {% if %} <|im_end|> é日本"}]
    assert render_llamacpp_one(CHATML, msgs) == "<|im_start|>user\n{{ 1 + 1 }} {% if %} <|im_end|> é日本<|im_end|>\n"


def test_byte_based_slicing_is_reported(driver: Path) -> None:
    (result,) = render_llamacpp([{"template": "{{ messages[0]['content'][1:] }}",
                                  "messages": [{"role": "user", "content": "éa"}]}])
    assert isinstance(result, LlamaCppRenderError)
    assert "UTF-8" in result.message


def test_system_role_workaround(driver: Path) -> None:
    # this template never prints a system message, so llama.cpp's caps probe says
    # "no system role" and llama-server merges the system text into the next message
    tpl = ("{% for m in messages %}{% if m['role'] != 'system' %}"
           "[{{ m['role'] }}]{{ m['content'] }}{% endif %}{% endfor %}")
    assert template_caps(tpl)["supports_system_role"] is False
    assert template_caps(CHATML)["supports_system_role"] is True
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert render_llamacpp_one(tpl, msgs) == "[user]S\nU"
    (raw,) = render_llamacpp([{"template": tpl, "messages": msgs, "workarounds": False}])
    assert raw == "[user]U"


def test_detect_builtin(driver: Path) -> None:
    assert detect_builtin(CHATML) == "chatml"
    assert detect_builtin(LLAMA3) == "llama3"
    assert detect_builtin("{{ '<start_of_turn>user\\n' }}") == "gemma"
    assert detect_builtin("<|im_start|>{{ x }}<|im_sep|>") == "phi4"
    assert detect_builtin("zephyr") == "zephyr"  # an exact built-in name
    assert detect_builtin("{{ messages }}") is None
    assert detect_builtins([CHATML, "nothing"]) == ["chatml", None]


def test_render_builtin(driver: Path) -> None:
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": " Hi "}]
    assert render_builtin("chatml", msgs, add_generation_prompt=True) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n<|im_start|>assistant\n"
    )
    # the llama3 built-in trims content and emits no BOS
    assert render_builtin("llama3", msgs, add_generation_prompt=False) == (
        "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    )
    # a template text is detected first, like llama_chat_apply_template does
    assert render_builtin(CHATML, msgs) == render_llamacpp_one(CHATML, msgs)
    with pytest.raises(LlamaCppRenderError):
        render_builtin("no-such-template", msgs)
    names = builtin_names()
    assert {"chatml", "llama3", "gemma", "mistral-v7"} <= set(names)
    assert len(names) >= 50


def test_corpus_of_model_templates_is_extracted(driver: Path) -> None:
    templates = sorted((llamacpp_source_dir() / "models" / "templates").glob("*.jinja"))
    assert len(templates) >= 50


def test_a_crashing_job_does_not_lose_the_others(driver: Path) -> None:
    # unbounded macro recursion overflows the C++ stack (SIGSEGV); the wrapper restarts the
    # driver on the remaining jobs and reports the crash as that job's error
    recursion = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"
    results = render_llamacpp([
        {"template": "a", "messages": []},
        {"template": recursion, "messages": []},
        {"template": "b", "messages": []},
    ])
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], LlamaCppRenderError) and "died" in results[1].message


def test_strftime_now_and_the_date_test_hook(driver: Path) -> None:
    """strftime_now is C strftime of "now"; the job's "date" (a test hook, not a llama.cpp option)
    fixes "now" to local midnight of that day, for datetime/date_string too."""
    import datetime

    tpl = ("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%B %d, %Y') }}|"
           "{{ strftime_now('%A %j %H:%M') }}|{{ date_string }}|{{ datetime }}")
    jobs = [{"template": tpl, "messages": [], "date": "2024-02-29"},
            {"template": tpl, "messages": [], "date": datetime.date(1999, 12, 31)},
            {"template": tpl, "messages": []},
            {"template": tpl, "messages": [], "date": "2023-02-29"},
            {"template": tpl, "messages": [], "date": "29.02.2024"}]
    before = datetime.date.today()
    got = render_llamacpp(jobs)
    assert got[:2] == ["29 Feb 2024|2024-02-29|February 29, 2024|Thursday 060 00:00|29 Feb 2024|Feb 29 2024",
                       "31 Dec 1999|1999-12-31|December 31, 1999|Friday 365 00:00|31 Dec 1999|Dec 31 1999"]
    assert got[2].split("|")[1] in {before.isoformat(), datetime.date.today().isoformat()}
    assert all(isinstance(r, LlamaCppRenderError) and "'date'" in r.message for r in got[3:])
