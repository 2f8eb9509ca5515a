"""The Go harness bounded from Python (issue 12.1): wall time, memory, output; the process group
is killed and the caller gets HarnessLimitError naming the limit."""

from __future__ import annotations

import time

import pytest

from tmplc.engines.ollama import HarnessLimitError, HarnessLimits, render_ollama

MSGS = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}] * 3  # 6: 6**14 iterations
M = "{{ range .Messages }}{{ .Content }}{{ end }}"  # messages mode (Ollama's legacy mode drops {{ define }}s)
LOOPS = "{{ range $.Messages }}" * 14 + "{{ end }}" * 14 + "{{ range .Messages }}{{ .Content }}{{ end }}"
WRITES = "{{ range $.Messages }}" * 14 + "x" + "{{ end }}" * 14
DOUBLING = ('{{ define "t0" }}xxxxxxxx{{ end }}'
            + "".join('{{ define "t%d" }}{{ template "t%d" . }}{{ template "t%d" . }}{{ end }}' % (i, i - 1, i - 1)
                      for i in range(1, 40)) + '{{ template "t39" . }}' + M)
PRINTF = '{{ $a := "xxxxxxxxxxxxxxxx" }}' + '{{ $a = printf "%s%s" $a $a }}' * 40 + M
RECURSION = '{{ define "r" }}x{{ template "r" . }}{{ end }}{{ template "r" . }}' + M


def _limit(template: str, limits: HarnessLimits) -> tuple[str, float]:
    t0 = time.monotonic()
    with pytest.raises(HarnessLimitError) as e:
        render_ollama([{"template": template, "messages": MSGS}] * 4, limits)
    return e.value.limit, time.monotonic() - t0


def test_an_endless_loop_is_killed_at_the_time_limit():
    limit, took = _limit(LOOPS, HarnessLimits(timeout=2.0))
    assert limit == "time" and took < 2.0 + 10  # killed, not waited for (2^.. iterations would take hours)


@pytest.mark.parametrize("template", [WRITES, DOUBLING])
def test_output_bombs_stop_at_the_output_limit(template):
    limit, _ = _limit(template, HarnessLimits(timeout=60.0, max_output_per_render=100_000))
    assert limit == "output"


def test_a_memory_bomb_stops_at_the_memory_limit():
    limit, _ = _limit(PRINTF, HarnessLimits(timeout=60.0, max_memory=1 << 30))
    assert limit == "memory"


def test_endless_template_recursion_is_bounded():
    # text/template stops at its own depth limit (an error for the job), the stack limit or the
    # output limit: any of them, but never a hang or an unbounded process
    try:
        out = render_ollama([{"template": RECURSION, "messages": MSGS}], HarnessLimits(timeout=20.0))
        assert not isinstance(out[0], str)
    except HarnessLimitError as e:
        assert e.limit in ("memory", "output")


def test_results_over_the_total_output_limit_kill_the_process():
    limit, _ = _limit("{{ range .Messages }}" + "y" * 5000 + "{{ end }}",
                      HarnessLimits(timeout=60.0, max_output=10_000))
    assert limit == "output"


def test_normal_templates_are_unaffected():
    out = render_ollama([{"template": "{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ end }}", "messages": MSGS[:2]}],
                        HarnessLimits(timeout=20.0))
    assert out == ["user:hi;assistant:yo;"]
