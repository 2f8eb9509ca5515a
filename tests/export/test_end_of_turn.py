"""The end-of-turn token a format is exported with, where it declares none (``with_end_of_turn``).

A format imported from a chat template knows no token names: Llama 3's turns end with
``<|eot_id|>`` while the base tokenizer's eos_token is ``<|end_of_text|>``.  Exporting such a
format with the EOS as its end of turn writes a GGUF and a Modelfile that never stop at the end
of an answer; the export (and the trainer, which records the format) reads the end-of-turn off
the assistant suffix instead, with the real Llama-3 tokenizer.
"""

from __future__ import annotations

import pytest

import tmplc
from conftest import load_tokenizer, tokenizer_dir
from tmplc.export.sources import Sources, load_format
from tmplc.formatter.tokenizer_info import with_end_of_turn


@pytest.fixture(scope="module")
def llama3_tokenizer():
    return load_tokenizer("llama3")


def imported_llama3(tok) -> tmplc.ChatFormat:
    """Registry llama-3 compiled to Jinja and imported back: the IR of a model folder's template."""
    return tmplc.from_jinja(tmplc.load("llama-3").to_jinja(), bos_token=tok.bos_token, eos_token=tok.eos_token)


def test_an_imported_format_gets_the_token_its_turns_end_with(llama3_tokenizer):
    tok = llama3_tokenizer
    fmt = imported_llama3(tok)
    assert fmt.meta.eot_token is None and fmt.eot_token == tok.eos_token == "<|end_of_text|>"
    assert fmt.stop_strings == ("<|end_of_text|>",)  # what the export would stop on without the rule
    got = with_end_of_turn(fmt, tok)
    assert got.eot_token == "<|eot_id|>" and got.stop_strings == ("<|eot_id|>", "<|end_of_text|>")
    assert "PARAMETER stop <|eot_id|>" in got.to_ollama(allow_untrimmed=True)


def test_declared_or_eos_ended_formats_are_unchanged(llama3_tokenizer):
    tok = llama3_tokenizer
    reg = tmplc.load("llama-3")
    assert with_end_of_turn(reg, tok) is reg  # declares eot_token
    stopped = imported_llama3(tok).with_meta(stop=("<|eot_id|>",))
    assert with_end_of_turn(stopped, tok) is stopped  # declares stop strings
    meta = dict(bos_token=tok.bos_token, eos_token=tok.eos_token)
    eos_ended = tmplc.load("{BOS}U: {INPUT}\nA: {OUTPUT}{EOS}U: {INPUT}\nA: {OUTPUT}{EOS}").with_meta(**meta)
    assert with_end_of_turn(eos_ended, tok).meta.eot_token is None  # its turns end with the EOS itself
    text_ended = tmplc.load("U: {INPUT}\nA: {OUTPUT}\n\nU: {INPUT}\nA: {OUTPUT}\n\n").with_meta(**meta)
    assert with_end_of_turn(text_ended, tok).meta.eot_token is None  # "\n\n" is no single special token


def test_export_reads_the_end_of_turn_of_a_tokenizer_template(tmp_path):
    """No --template and no tmplc.yaml: the export imports the tokenizer's chat_template and stops
    on ``<|eot_id|>``."""
    from transformers import AutoTokenizer

    # a tokenizer of its own: load_tokenizer's is shared by every test (its real template stays)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir("llama3")))
    tok.chat_template = tmplc.load("llama-3").to_jinja()
    src = Sources(tmp_path, None, tmp_path, {}, "")
    fmt, source = load_format(src, None, tok)
    assert "imported" in source and fmt.eot_token == "<|eot_id|>"
