"""Dates in converted templates (issue 11.1): the probe days tell apart every conversion of the
date language, a converted date renders like the original on every day (transformers' clock
frozen to days 1-9 of a month), and a time of day is refused, never frozen."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from tmplc.convert import ConversionRefused, from_jinja
from tmplc.convert.corpus import Entry, frozen_hf_clock, hf_render, independent_check
from tmplc.convert.dates import DATE_FORMATS, PROBE_DATES, same_format
from tmplc.spec.vocabulary import DATE_CONVERSIONS

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# the directives of {DATE=...}, with and without glibc's '-' (no padding) flag
DIRECTIVES = sorted({f"%{fl}{c}" for c in DATE_CONVERSIONS if c not in "%nt" for fl in ("", "-")})


def test_probe_days_tell_apart_every_directive():
    """Two directives that render differently on some day render differently on a probe day;
    pairs of directives too (a format is a sequence of them)."""
    for a, b in itertools.combinations(DIRECTIVES, 2):
        if not same_format(a, b):
            assert any(d.strftime(a) != d.strftime(b) for d in PROBE_DATES), (a, b)
    for (a1, a2), (b1, b2) in itertools.combinations(itertools.product(["%d", "%-d", "%m", "%-m", "%e", "%y", "%-y", "%u", "%w"],
                                                                       repeat=2), 2):
        a, b = f"{a1}{a2}", f"{b1}{b2}"
        if not same_format(a, b):
            assert any(d.strftime(a) != d.strftime(b) for d in PROBE_DATES), (a, b)


def test_probe_days_have_single_digit_days_and_months_and_different_weekdays():
    assert any(d.day < 10 and d.month < 10 for d in PROBE_DATES)
    assert len({d.weekday() for d in PROBE_DATES}) == len(PROBE_DATES)
    assert any(d.strftime("%G") != d.strftime("%Y") for d in PROBE_DATES)


@pytest.mark.parametrize("date_format", list(DATE_FORMATS[::3]) + ["%-d.%m.%y", "%d.%m.%y", "%-d.%-m.%Y"])
def test_each_recognised_date_format_converts_to_itself(date_format):
    fmt = from_jinja("Today: {{ strftime_now('" + date_format + "') }}\n" + CHATML, n_random=10)
    (got,) = {p.format for f in fmt.structure.fragments() for p in f if hasattr(p, "format")}
    assert same_format(got, date_format), (got, date_format)


@pytest.mark.parametrize("template, date_format", [
    ("{{ bos_token }}Today is {{ strftime_now('%-d.%m.%y') }}\n" + CHATML, "%-d.%m.%y"),
    ("{{ bos_token }}Today is {{ strftime_now('%d.%m.%y') }}\n" + CHATML, "%d.%m.%y"),
    ("{{ bos_token }}Date: {{ strftime_now('%B %-d, %Y') }}\n" + CHATML, "%B %-d, %Y"),
])
def test_dates_render_like_transformers_on_days_1_to_9(template, date_format):
    """The issue's bug: %-d was recovered as %d (both old probe days had two digits).  With
    transformers' clock frozen to the 1st..9th (of single-digit months too), the original, the
    converted format and its Jinja render the same text."""
    fmt = from_jinja(template, bos_token="<s>", n_random=10)
    assert "{DATE=" + date_format + "}" in fmt.to_spec()
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    target = fmt.to_jinja()
    for month, day in [(m, d) for m in (1, 9, 10, 12) for d in range(1, 10)]:
        today = dt.date(2026, month, day)
        with frozen_hf_clock(today):
            want = hf_render(template, msgs, False, "<s>", None)
            assert today.strftime(date_format) in want
            assert fmt.render(msgs, date=today, bos_token="<s>") == want
            assert hf_render(target, msgs, False, "<s>", None) == want


def test_the_corpus_check_renders_on_a_single_digit_day():
    """The independent check sees a wrong conversion: %d where the original writes %-d."""
    import tmplc

    entry = Entry("t", "test", "{{ bos_token }}Today is {{ strftime_now('%-d.%m.%y') }}\n" + CHATML, "<s>", None)
    good = from_jinja(entry.template, bos_token="<s>", n_random=10)
    assert independent_check(entry, good, n=5) is None
    wrong = tmplc.parse_spec(good.to_spec().replace("%-d", "%d"), bos_token="<s>")
    assert "renders differently" in independent_check(entry, wrong, n=5)


@pytest.mark.parametrize("call", ["%H:%M:%S", "%I %p", "%d %b %Y %H:%M", "%c"])
def test_a_time_of_day_is_refused_not_frozen(call):
    with pytest.raises(ConversionRefused) as e:
        from_jinja("Now: {{ strftime_now('" + call + "') }}\n" + CHATML, n_random=10)
    assert e.value.category == "date" and "time of day" in e.value.reason


def test_a_time_of_day_in_one_branch_only_is_refused():
    """The probes do not show it (no tools in them), the verification's conversations do: a
    time rendered only with six exchanges."""
    t = ("{% if messages | length > 11 %}{{ strftime_now('%H:%M') }}{% endif %}" + CHATML)
    with pytest.raises(ConversionRefused) as e:
        from_jinja(t, n_random=10)
    assert "time of day" in e.value.reason


@pytest.mark.parametrize("name", ["messages", "add_generation_prompt", "__today__"])
def test_a_reserved_variable_is_a_tmplc_error(name):
    """Issue 12.9: a TmplcError (the CLI's exit 2), no longer a bare TypeError."""
    from tmplc.errors import TmplcError, UsageError

    with pytest.raises(UsageError) as e:
        from_jinja(CHATML, **{name: 1})
    assert isinstance(e.value, TmplcError) and name in str(e.value)
