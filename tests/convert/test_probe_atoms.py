"""The importers read a probe render as spec atoms, never as spec text: a template whose fixed text
holds braces, doubled braces, text that looks like a placeholder, and the private-use characters the
atom encoding uses converts exactly (each checked against the template rendered by jinja2)."""

from __future__ import annotations

import pytest

import tmplc
from tmplc.convert import from_jinja
from tmplc.convert.common import probe_atoms, probe_messages
from tmplc.jinja_env import render_template
from tmplc.spec.atoms import write
from tmplc.spec.vocabulary import TEXT

MARKERS = {
    "braces": ("{user}}\n", "{/user}\n", "{{assistant}}\n", "{{/assistant}}\n"),
    "placeholder look-alikes": ("{INPUT}: ", " {SPLIT}\n", "{OUTPUT|trim}: ", " {END}\n"),
    "private-use characters": ("\U000F0000u\U000F0001 ", "\U000F0002\n", "\U000F0000a\U000F0003 ", "\U000F0004\n"),
}


def _template(user_open: str, user_close: str, bot_open: str, bot_close: str) -> str:
    q = [repr(s) for s in (user_open, user_close, bot_open, bot_close)]
    return ("{% for m in messages %}{% if m['role'] == 'user' %}{{ " + q[0] + " + m['content'] + " + q[1] + " }}"
            "{% else %}{{ " + q[2] + " + m['content'] + " + q[3] + " }}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}{{ " + q[2] + " }}{% endif %}")


@pytest.mark.parametrize("kind", sorted(MARKERS))
def test_a_template_with_brace_or_code_markers_converts_exactly(kind):
    markers = MARKERS[kind]
    template = _template(*markers)
    fmt = from_jinja(template, n_random=40)
    user_open, user_close, bot_open, bot_close = markers
    assert fmt.structure.user.prefix[0].value == user_open and fmt.structure.assistant.suffix[0].value == bot_close
    convs = [
        ([{"role": "user", "content": "q{1}"}, {"role": "assistant", "content": "}}a{"}], False),
        ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"},
          {"role": "user", "content": "\U000F0000"}], True),
    ]
    for msgs, gen in convs:
        assert fmt.render(msgs, gen) == render_template(template, msgs, add_generation_prompt=gen)
    assert tmplc.parse_spec(fmt.to_spec()).structure == fmt.structure  # the spec text written for output reads back


def test_probe_atoms_are_the_placeholders_and_the_text_between_them():
    text = render_template(_template("{u}", "\n", "{{a}}", "\n"), probe_messages(False))
    assert text == "{u}Us1qZmXb\n{{a}}As1qZmXc\n{u}Us2qZmXd\n{{a}}As2qZmXe\n"  # the probe, as jinja2 renders it
    atoms = probe_atoms(text, system=False, trim={})
    assert [(a.kind, a.value) for a in atoms] == [
        (TEXT, "{u}"), ("INPUT", ""), (TEXT, "\n{{a}}"), ("OUTPUT", ""), (TEXT, "\n{u}"), ("INPUT", ""),
        (TEXT, "\n{{a}}"), ("OUTPUT", ""), (TEXT, "\n")]
    assert write(atoms) == "{{u}}{INPUT}\n{{{{a}}}}{OUTPUT}\n{{u}}{INPUT}\n{{{{a}}}}{OUTPUT}\n"
