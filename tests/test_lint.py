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


def messages(first: str, second: str | None = None) -> dict[str, str]:
    spec = f"U:{{INPUT}}\nA:{first}{{EOS}}U:{{INPUT}}\nA:{second or first}{{EOS}}"
    return {c.code: c.message for c in caveats(tmplc.parse_spec(spec, bos_token="<s>", eos_token="</s>"))}


KEPT = "only the final answer (the conversation's last message) keeps its reasoning"
EVERY = "dropped from every assistant turn (no reasoning is trained)"


def test_reasoning_dropped_from_every_answer():
    for first, which in (("{OUTPUT|drop_think}", "last"), ("{OUTPUT|drop_think_lstrip_nl|trim}", "last"),
                         ("{OUTPUT|drop_think_first}", "first"), ("{OUTPUT|drop_think_first_lstrip_nl}", "first")):
        msg = messages(first)["reasoning-dropped"]
        assert f"answers are rendered from after their {which} '</think>'" in msg and EVERY in msg, first
        assert KEPT not in msg
    # the final answer with a rule of its own that drops the reasoning too: dropped from every answer
    msg = messages("{OUTPUT|drop_think}", "{OUTPUT|drop_think|trim}")["reasoning-dropped"]
    assert EVERY in msg and KEPT not in msg
    assert [c.code for c in caveats(tmplc.load("deepseek-r1"))] == ["prompt-not-in-training", "reasoning-dropped"]


def test_reasoning_kept_only_in_the_final_answer():
    # QwQ-like (the final answer as sent) and Qwen3-like (re-wrapped in a block): a multi-turn row
    # trains the last answer's reasoning only
    for second in ("{OUTPUT}", "{OUTPUT|lstrip_nl}",
                   "{THINK}<think>{REASONING}</think>{/THINK}{OUTPUT|drop_think}"):
        msg = messages("{OUTPUT|drop_think}", second)["reasoning-dropped"]
        assert msg.startswith("earlier answers are rendered from after their last '</think>'"), second
        assert KEPT in msg and "make one row per answer" in msg and EVERY not in msg
    msg = messages("{OUTPUT|drop_think_first}", "{OUTPUT}")["reasoning-dropped"]
    assert msg.startswith("earlier answers are rendered from after their first '</think>'")
    thinking = caveats(tmplc.load("qwen3-thinking"))
    assert [c.code for c in thinking] == ["reasoning-dropped"]
    assert KEPT in thinking[0].message
    # without a drop on earlier answers there is nothing dropped to report
    assert messages("{OUTPUT|lstrip_nl}") == {}
    assert messages("{OUTPUT}", "{THINK}<think>{REASONING}</think>{/THINK}{OUTPUT}") == {}


def test_not_append_only_when_the_last_answer_is_final_before_a_user_message():
    got = messages("{OUTPUT|drop_think}", "{OUTPUT|final_last_answer}")
    assert "not-append-only" in got and "not the start of its continuation's" in got["not-append-only"]
    assert "not-append-only" not in messages("{OUTPUT|drop_think}", "{OUTPUT|final_after_user}")


def test_reasoning_dropped_only_from_the_final_answer():
    for second, which in (("{OUTPUT|drop_think}", "last"), ("{OUTPUT|drop_think_first|trim}", "first")):
        msg = messages("{OUTPUT}", second)["reasoning-dropped"]
        assert msg.startswith(f"the final answer (the conversation's last message) is rendered from after its "
                              f"{which} '</think>'"), second
        assert "earlier answers keep their reasoning" in msg and EVERY not in msg and KEPT not in msg
    # a final answer that re-wraps its reasoning in a block keeps it: no caveat
    for second in ("{THINK}<t>{REASONING}</t>{/THINK}{OUTPUT}", "{THINK}<t>{REASONING}</t>{/THINK}{OUTPUT|drop_think}"):
        assert "reasoning-dropped" not in messages("{OUTPUT}", second), second
