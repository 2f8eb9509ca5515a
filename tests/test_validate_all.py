"""One row per case: a format's output, or refusal, in every target (see ``crosstarget.validate_all``);
expected texts are written out by hand from the formats' published templates."""

from __future__ import annotations

import pytest

from conftest import missing_fixture
from crosstarget import SAME, Refused, assistant, system, user, validate_all

CHATML_TURNS = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
L3 = "<|start_header_id|>{}<|end_header_id|>\n\n"


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


def test_chatml_answer():
    validate_all("chatml", [user("Hi"), assistant("Hello")],
                 reference=CHATML_TURNS, jinja=SAME, llamacpp=SAME,
                 # Ollama continues a conversation that ends with an answer: no end-of-turn
                 ollama="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello")


def test_chatml_generation_prompt():
    want = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    validate_all("chatml", [system("S"), user("Hi")], gen=True,
                 reference=want, jinja=want, ollama=want, llamacpp=want)


def test_llama3_trims_strict_ollama_refuses_untrimmed_renders_as_sent():
    validate_all("llama-3", [user(" Hi ")], gen=True,
                 reference="<|begin_of_text|>" + L3.format("user") + "Hi<|eot_id|>" + L3.format("assistant"),
                 jinja=SAME,
                 ollama=Refused(r"\|trim.*allow_untrimmed"),
                 # no BOS (Ollama's runtime adds it); the content as sent
                 ollama_untrimmed=L3.format("user") + " Hi <|eot_id|>" + L3.format("assistant"),
                 # add_bos_token: llama-server strips the leading BOS text
                 llamacpp=L3.format("user") + "Hi<|eot_id|>" + L3.format("assistant"))


def test_qwen3_thinking_reasoning_refused_by_ollama_only():
    conv = [user("q"), assistant("<think>\nr\n</think>\n\na"), user("q2")]
    want = ("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"
            "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n")
    validate_all("qwen3-thinking", conv, gen=True, reference=want, jinja=want, llamacpp=want,
                 ollama=Refused(r"drop_think.*cannot search or split a string"),
                 ollama_untrimmed=Refused(r"drop_think"))
