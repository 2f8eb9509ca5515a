"""A spec is parsed into runs of text, not characters: an error inside a long run (past escaped
braces and line breaks) is still reported at the exact line and column of the spec text, and
quoting a huge run stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as hst

import tmplc
from tmplc import SpecError


def _position(text: str, index: int) -> tuple[int, int]:
    """The 1-based line and column of ``text[index]``, counted directly."""
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _esc(s: str) -> str:
    return s.replace("{", "{{").replace("}", "}}")


_literal = hst.text(alphabet="ab {}\n<|>", max_size=40)


@given(before=_literal, after=_literal)
@example(before="{{}}\n}", after="")
@example(before="", after="{")
@example(before="a\n{\n}b", after="\n}")
def test_a_difference_between_the_mids_is_reported_where_it_is(before, after):
    first = "U:{INPUT}" + _esc(before) + "X" + _esc(after) + "A:{OUTPUT}\n"
    second = "U:{INPUT}" + _esc(before) + "Y" + _esc(after) + "A:{OUTPUT}\n"
    spec = first + second
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(spec)
    assert "differ between {INPUT} and {OUTPUT}" in e.value.message
    assert (e.value.line, e.value.column) == _position(spec, len(first) + spec[len(first):].index("Y"))


@given(before=_literal)
@example(before="}}{{\n\n{")
def test_a_difference_after_the_answer_is_reported_where_it_is(before):
    # the second assistant turn ends with "<e>" + before + "Z", the first is followed by ... + "W"
    ending = "<e>" + _esc(before)
    spec = ("U:{INPUT}A:{OUTPUT}" + ending + "W" + "U:{INPUT}A:{OUTPUT}" + ending + "Z")
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(spec)
    assert "differ after {OUTPUT}" in e.value.message
    assert (e.value.line, e.value.column) == _position(spec, spec.rindex("Z"))


def test_escapes_in_a_run_render_as_single_braces():
    fmt = tmplc.parse_spec("{{U}}:{INPUT}\n{{A}}:{OUTPUT}\n" * 2)
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert fmt.render(msgs) == "{U}:q\n{A}:a\n"


def test_a_megabyte_of_escapes_parses_and_quotes_a_bounded_error():
    pad = "a{{b}} c\n" * 120_000  # ~1 MB, most of it escapes and line breaks
    turns = "<|u|>{INPUT}<|e|>\n<|a|>{OUTPUT}<|e|>\n"
    fmt = tmplc.parse_spec(pad + turns + pad + turns)
    assert fmt.render([{"role": "user", "content": "q"}]).startswith("a{b} c\n" * 3)
    bad = pad + turns + pad + turns.replace("<|e|>\n<|a|>", "<|e|>}}\n<|a|>")  # one more "}" in the second
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(bad)
    assert len(e.value.cli_text()) < 5000
    assert (e.value.line, e.value.column) == _position(bad, bad.rindex("}}"))


def test_text_with_the_private_use_characters_of_the_atom_encoding_parses():
    # structure recovery encodes each placeholder as a plane-15 character the spec does not use
    u, a = "\U000F0000", "\U000F0001"
    fmt = tmplc.parse_spec(f"{u}{{INPUT}}{a}\n{a}{{OUTPUT}}{u}\n" * 2)
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]
    assert fmt.render(msgs) == f"{u}q{a}\n{a}r{u}\n"


def test_a_placeholder_never_compares_equal_to_text():
    # the second exchange has the literal character where the first has {SPLIT}
    spec = "U:{INPUT}x{SPLIT}y{OUTPUT}\n" + "U:{INPUT}x\U000F0000y{OUTPUT}\n"
    with pytest.raises(SpecError, match="repetitions differ between {INPUT} and {OUTPUT}") as e:
        tmplc.parse_spec(spec)
    assert (e.value.line, e.value.column) == (2, 11)
