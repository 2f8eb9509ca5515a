"""Huge and repeated-key specs: errors quote a bounded window of the input, duplicate YAML keys are
refused where they are (parse time against size is measured by bench/bench_spec_parse.py)."""

from __future__ import annotations

import pytest

import tmplc
from tmplc import SpecError
from tmplc.errors import MESSAGE_LIMIT, QUOTE_WINDOW
from tmplc.spec.files import load_yaml_spec

TURNS = "<|u|>{INPUT}<|e|>\n<|a|>{OUTPUT}<|e|>\n"


def test_a_mismatch_in_a_megabyte_line_quotes_a_window():
    pad = "lorem ipsum " * 90_000  # ~1 MB on one line
    spec = "<|u|>" + pad + TURNS + "<|u|>" + pad + "X" + TURNS  # the second repetition differs
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(spec)
    text = e.value.cli_text()
    assert len(text) < MESSAGE_LIMIT + 4 * QUOTE_WINDOW + 200, len(text)
    assert e.value.column > 1_000_000  # where it is: far into the line
    shown, mark = text.split("\n")[-2:]
    # the quoted window holds the reported column, and the caret points at it
    line = spec.split("\n")[e.value.line - 1]
    at = mark.index("^")
    assert shown.startswith("    ...") and shown[at] == line[e.value.column - 1]
    assert shown[at - 20:at + 20] == line[e.value.column - 21:e.value.column + 19]


def test_a_huge_spec_parses():
    pad = "lorem ipsum\n" * 20_000  # 240 KB of a multi-line prefix
    fmt = tmplc.parse_spec(("<|u|>" + pad + TURNS) * 2)
    assert fmt.render([{"role": "user", "content": "q"}]) == "<|u|>" + pad + "<|u|>q<|e|>\n"


@pytest.mark.parametrize("key", ["spec", "name", "eos_token"])
def test_duplicate_yaml_keys_are_refused_at_the_repeat(key):
    body = {"spec": "spec: |\n  U:{INPUT}\n  A:{OUTPUT}\n  U:{INPUT}\n  A:{OUTPUT}\n",
            "name": "name: x\n", "eos_token": "eos_token: '</s>'\n"}
    text = body["name"] + body["spec"] + body["eos_token"] + body[key].replace("U:", "Q:")
    with pytest.raises(SpecError, match=f"duplicate key '{key}' \\(first at line (\\d+)\\)") as e:
        load_yaml_spec(text, "f.yaml")
    assert e.value.line == text.count("\n") - body[key].count("\n") + 1 and e.value.filename == "f.yaml"
