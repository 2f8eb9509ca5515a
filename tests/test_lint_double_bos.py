"""Issue 11.11: `{BOS}<|begin_of_text|>` (BOS written twice) is a caveat of compile, not silent."""

from __future__ import annotations

import pytest

import tmplc
from tmplc.cli import main
from tmplc.lint import caveats

TURNS = "U: {INPUT}\nA: {OUTPUT}<|eot_id|>U: {INPUT}\nA: {OUTPUT}<|eot_id|>"


@pytest.mark.parametrize("head, bos", [
    ("{BOS}<|begin_of_text|>", "<|begin_of_text|>"),   # the declared BOS string after {BOS}
    ("{BOS}<|begin_of_text|>", None),                  # a well-known BOS text, no bos_token declared
    ("<s>{BOS}", "<s>"),
    ("{BOS}{BOS}", "<s>"),
    ("<s><s>", "<s>"),
])
def test_double_bos_is_a_caveat(head, bos):
    fmt = tmplc.parse_spec(head + TURNS, bos_token=bos)
    assert [c.code for c in caveats(fmt)][0] == "double-bos"


@pytest.mark.parametrize("head, bos", [("{BOS}", "<|begin_of_text|>"), ("<|begin_of_text|>", None), ("", None)])
def test_a_single_bos_is_not(head, bos):
    fmt = tmplc.parse_spec(head + TURNS, bos_token=bos)
    assert "double-bos" not in [c.code for c in caveats(fmt)]


def test_registry_has_no_double_bos():
    assert not [n for n in tmplc.registry if "double-bos" in [c.code for c in caveats(tmplc.registry[n])]]


def test_compile_prints_it(capsys, tmp_path):
    p = tmp_path / "x.spec"
    p.write_text("{BOS}<|begin_of_text|>" + TURNS)
    assert main(["compile", str(p), "--to", "spec", "--bos-token", "<|begin_of_text|>"]) == 0
    assert "tmplc: caveat: double-bos: {BOS}<|begin_of_text|>" in capsys.readouterr().err
