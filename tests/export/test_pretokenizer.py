"""``tokenizer.ggml.pre``: the table and check text are llama.cpp's (re-read from the pinned sdist);
unknown pre-tokenizers are refused, never guessed."""

from __future__ import annotations

import json

import pytest

from conftest import load_tokenizer, missing_fixture
from tmplc.export.errors import ExportRefused
from tmplc.export.pre_hashes import CHECK_TEXT, PRE_HASHES
from tmplc.export.pretokenizer import parse_pre_table, pre_tokenizer_name


def test_table_equals_the_sdists_converter():
    from tmplc.export.llamacpp_sources import read_sdist_member

    try:
        base = read_sdist_member("conversion/base.py")
    except Exception as exc:
        missing_fixture(f"the llama-cpp-python sdist ({exc})", "run: bash scripts/setup.sh")
    chktxt, table = parse_pre_table(base)
    assert chktxt == CHECK_TEXT and table == PRE_HASHES
    assert len(PRE_HASHES) >= 90 and "\U0001f999" in CHECK_TEXT


def test_known_tokenizers():
    assert pre_tokenizer_name(load_tokenizer("qwen3"), "qwen3") == "qwen2"
    assert pre_tokenizer_name(load_tokenizer("llama3"), "llama3") == "smaug-bpe"  # no ignore_merges in the fixture


def test_unknown_pre_tokenizer_is_refused(tmp_path):
    from transformers import PreTrainedTokenizerFast

    from conftest import tokenizer_dir

    tj = json.loads((tokenizer_dir("qwen3") / "tokenizer.json").read_text())
    # words split after at most 4 letters: a different pre-tokenizer, with no known hash
    pattern = tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]
    assert "]?\\p{L}+|" in pattern["Regex"]
    pattern["Regex"] = pattern["Regex"].replace("]?\\p{L}+|", "]?\\p{L}{1,4}|", 1)
    (tmp_path / "tokenizer.json").write_text(json.dumps(tj))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    with pytest.raises(ExportRefused, match="refuses to guess"):
        pre_tokenizer_name(tok, "x")
