"""Malicious templates end in a clear error (SandboxError, a ConversionRefused) and execute nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tmplc.convert import ConversionRefused, SandboxError, from_jinja
from tmplc.convert.sandbox import Limits, render_batch

FAST = Limits(timeout=3.0, max_output=200_000, max_memory=256 << 20)

MALICIOUS = {
    "class escape": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals escape": "{{ cycler.__init__.__globals__.os.system('touch {marker}') }}",
    "self escape": "{{ self._TemplateReference__context }}",
    "namespace escape": "{% set ns = namespace() %}{{ ns.__init__.__globals__ }}",
    "raise_exception escape": "{{ raise_exception.__globals__['os'].system('touch {marker}') }}",
    "format escape": "{{ '{0.__class__.__mro__}'.format('') }}",
    "mutation": "{% set x = [] %}{{ x.append(1) }}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "string bomb": "{{ 'x' * 10**9 }}",
    "power bomb": "{{ 9 ** 9 ** 9 }}",
    "concat doubling": "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}"
                       "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
    "output flood": "{% for i in range(100000) %}{{ 'y' * 100 }}{% endfor %}",
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "list bomb": "{{ [0] * 10**9 }}",
}


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_malicious_template_ends_in_a_clear_error(name, tmp_path):
    marker = tmp_path / "pwned"
    template = MALICIOUS[name].replace("{marker}", str(marker))
    t0 = time.monotonic()
    with pytest.raises(ConversionRefused) as e:
        from_jinja(template, limits=FAST)
    assert time.monotonic() - t0 < 30
    assert not marker.exists(), "the template executed a shell command"
    assert e.value.reason
    if name not in ("mutation",):
        assert isinstance(e.value, SandboxError) or e.value.category in ("raises", "structure", "content"), \
            e.value.reason


@pytest.mark.parametrize("name", ["class escape", "globals escape", "raise_exception escape"])
def test_attribute_escapes_are_reported_as_unsafe(name, tmp_path):
    template = MALICIOUS[name].replace("{marker}", str(tmp_path / "pwned"))
    with pytest.raises(SandboxError) as e:
        from_jinja(template, limits=FAST)
    assert "unsafe" in e.value.reason or "sandbox" in e.value.reason


def test_endless_loop_hits_the_time_limit():
    with pytest.raises(SandboxError, match="time limit"):
        render_batch(MALICIOUS["nested loops"], [{"messages": []}], Limits(timeout=1.0))


def test_output_limit_is_a_per_render_result():
    res = render_batch(MALICIOUS["output flood"], [{"messages": []}], Limits(max_output=10_000))
    assert res[0][0] == "security" and "output limit" in res[0][1]


def test_memory_limit():
    try:
        res = render_batch(MALICIOUS["concat doubling"], [{"messages": []}], Limits(timeout=10, max_memory=128 << 20))
    except SandboxError:
        return
    assert res[0][0] == "memory"


def test_memory_bomb_is_a_sandbox_refusal():
    with pytest.raises(SandboxError, match="memory"):
        from_jinja(MALICIOUS["concat doubling"], limits=Limits(timeout=10, max_memory=128 << 20))


def test_sandbox_has_hf_globals():
    res = render_batch("{{ strftime_now('%Y') }}{{ {'a': 1} | tojson }}{% generation %}g{% endgeneration %}",
                       [{"messages": []}])
    assert res == [("ok", '2026{"a": 1}g')]


def test_nothing_outside_the_sandbox_runs(tmp_path):
    marker: Path = tmp_path / "x"
    t = "{{ lipsum.__globals__['os'].popen('touch " + str(marker) + "').read() }}"
    with pytest.raises(SandboxError):
        from_jinja(t, limits=FAST)
    assert not marker.exists()
