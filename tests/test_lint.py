"""Caveats: what in an exactly-rendered format still hurts a fine-tune."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import tmplc
from tmplc.lint import caveats


def codes(spec: str) -> list[str]:
    return [c.code for c in caveats(tmplc.parse_spec(spec, bos_token="<s>", eos_token="</s>"))]


def test_a_consistent_format_has_no_caveat():
    assert codes("<u>{INPUT}</u>{SPLIT}<a>{OUTPUT}</a>\n<u>{INPUT}</u>{SPLIT}<a>{OUTPUT}</a>\n") == []
    assert caveats(tmplc.load("llama-3")) == [] and caveats(tmplc.load("chatml")) == []


def test_each_caveat():
    assert codes("U:{INPUT}\nA:{OUTPUT}U:{INPUT}\nA:{OUTPUT}") == ["no-end-of-turn"]
    assert codes("U:{INPUT}\nA:{OUTPUT} \nU:{INPUT}\nA:{OUTPUT} \n") == ["no-end-of-turn"]
    assert codes("U:{INPUT}\nA:{PROMPT=<think>\n}{OUTPUT}{EOS}U:{INPUT}\nA:{PROMPT=<think>\n}{OUTPUT}{EOS}") == \
        ["prompt-not-in-training"]
    assert codes("U:{INPUT}\nA:{OUTPUT|drop_think}{EOS}U:{INPUT}\nA:{OUTPUT|drop_think}{EOS}") == \
        ["reasoning-dropped"]
    assert codes("[{DATE=%Y-%m-%d}]U:{INPUT}\nA:{OUTPUT}{EOS}U:{INPUT}\nA:{OUTPUT}{EOS}") == ["renders-today"]
    assert codes("U:{INPUT}\nA:{OUTPUT}<end>{SPLIT}U:{INPUT}\nA:{OUTPUT}") == ["last-turn-open"]
    assert codes("U:{INPUT}\nA:{OUTPUT}<end>{SPLIT}U:{INPUT}\nA:{OUTPUT}<return>") == []
    # the registry's SOLAR has no end-of-turn marker, faithfully to its official template
    assert [c.code for c in caveats(tmplc.load("solar"))] == ["no-end-of-turn"]


def test_with_date_removes_the_date_caveat():
    fmt = tmplc.parse_spec("[{DATE=%Y-%m-%d}]U:{INPUT}\nA:{OUTPUT}{EOS}U:{INPUT}\nA:{OUTPUT}{EOS}", eos_token="</s>")
    fixed = fmt.with_date(dt.date(2024, 7, 26))
    assert caveats(fixed) == []
    assert fixed.render([{"role": "user", "content": "q"}]) == "[2024-07-26]U:q\n"


def test_cli_prints_caveats_on_stderr():
    r = subprocess.run([sys.executable, "-m", "tmplc.cli", "compile", "solar", "--to", "spec"],
                       capture_output=True, text=True)
    assert r.returncode == 0
    assert "caveat: no-end-of-turn" in r.stderr and "caveat" not in r.stdout
