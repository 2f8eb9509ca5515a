"""Which date a template renders: the probe dates, the candidate formats, and the search.

A template that calls ``strftime_now`` is rendered on three probe *days* (and once more at
another *time* of the first day).  The probe days are chosen so that every conversion of the spec
language's ``{DATE=...}`` (:data:`tmplc.spec.parse.DATE_CONVERSIONS`, with the ``-`` flag)
renders differently on at least one of them unless the two conversions render alike on every
day (``%h`` and ``%b``): a single-digit day and month (``%d`` ``04`` vs ``%-d`` ``4`` vs
``%e`` `` 4``), a month whose short and long names differ (not May), three different weekdays
including a Sunday (``%u`` 7 vs ``%w`` 0), a 1st of January whose ISO year is the previous year
(``%G`` vs ``%Y``, ``%U`` vs ``%W`` vs ``%V``) in a year with a single-digit ``%y``.  ``tests/convert/test_dates.py`` proves it.

A time of day is not a date: a template whose render changes between two times of the same day
(``%H:%M:%S``, ``%p``, ``%I``...) is refused; the format would otherwise freeze one time.
"""

from __future__ import annotations

import datetime as _dt
import itertools

#: the probe days (rendered at midnight, as the reference renders ``{DATE=...}``)
DATE_1 = _dt.date(2026, 2, 5)    # Thursday: single-digit day, month and ISO week (%V 06), day != month
DATE_2 = _dt.date(1999, 12, 31)  # Friday: two-digit day and month, another century
DATE_3 = _dt.date(2006, 1, 1)    # Sunday: %u 7 / %w 0, ISO year 2005 (%G), %U 01 / %W 00, %y 06
PROBE_DATES = (DATE_1, DATE_2, DATE_3)
#: the first probe day at another time: a render that differs from DATE_1's shows a time of day
DATE_1_AFTERNOON = _dt.datetime(2026, 2, 5, 15, 47, 23, 123456)

_BASE_FORMATS = ("%A, %B %d, %Y", "%A %d %B %Y", "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%Y-%m-%d",
                 "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%d.%m.%y", "%Y%m%d", "%B %Y", "%b %Y",
                 "%a, %d %b %Y", "%a %b %d %Y", "%A", "%a", "%Y")


def _variants(fmt: str) -> list[str]:
    """``fmt`` with each ``%d``/``%m`` also unpadded (``%-d``, ``%-m``) and ``%d`` space-padded (``%e``)."""
    days = ("%d", "%-d", "%e") if "%d" in fmt else ("%d",)
    months = ("%m", "%-m") if "%m" in fmt else ("%m",)
    return [fmt.replace("%d", d).replace("%m", m) for d, m in itertools.product(days, months)]


#: the formats the converter recognises, most specific first
DATE_FORMATS = tuple(dict.fromkeys(v for f in _BASE_FORMATS for v in _variants(f)))

#: days on which two candidate formats must render alike to count as the same (a leap year and
#: the turns of two years)
_CHECK_DAYS = tuple(_dt.date(2024, 1, 1) + _dt.timedelta(days=k) for k in range(366)) + tuple(
    _dt.date(y, m, d) for y in (1999, 2000, 2023, 2027) for m, d in ((1, 1), (12, 31), (2, 28)))


def same_format(a: str, b: str) -> bool:
    """Whether two strftime formats render alike on every checked day."""
    return all(d.strftime(a) == d.strftime(b) for d in _CHECK_DAYS)


def find_date_format(renders: list[tuple[str, _dt.date]]) -> str | None:
    """The strftime format under which the texts (each rendered on its date) are the same text
    with the date in it, or None (no candidate, or two that render differently on some day)."""
    from tmplc.convert.common import DATE_SENT

    (text1, date1), rest = renders[0], renders[1:]
    found = []
    for f in DATE_FORMATS:
        stamp = date1.strftime(f)
        if stamp not in text1:
            continue
        base = text1.replace(stamp, DATE_SENT)
        if all(t.replace(d.strftime(f), DATE_SENT) == base for t, d in rest):
            found.append(f)
    if not found or any(not same_format(found[0], f) for f in found[1:]):
        return None
    return found[0]


__all__ = ["DATE_1", "DATE_2", "DATE_3", "DATE_1_AFTERNOON", "DATE_FORMATS", "PROBE_DATES", "find_date_format",
           "same_format"]
