from __future__ import annotations

import datetime as dt

import pytest

from fengqiao.clock import CHINA_TZ
from fengqiao.errors import InvalidArgument
from services.federation.rules import parse_period


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CHINA_TZ)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11-22", local(2026, 11, 22), local(2026, 11, 23)),
        ("2026-11", local(2026, 11, 1), local(2026, 12, 1)),
        ("2026-12", local(2026, 12, 1), local(2027, 1, 1)),
        ("2026Q4", local(2026, 10, 1), local(2027, 1, 1)),
        ("2026Q1", local(2026, 1, 1), local(2026, 4, 1)),
        ("2026", local(2026, 1, 1), local(2027, 1, 1)),
    ],
)
def test_periods_are_local_calendar_ranges(text: str, start: dt.datetime, end: dt.datetime) -> None:
    period = parse_period(text)
    assert (period.start, period.end, period.label) == (start, end, text)


@pytest.mark.parametrize("text", ["2026-13", "2026Q5", "26-11", "2026-02-30", "last month"])
def test_malformed_periods_name_the_field(text: str) -> None:
    with pytest.raises(InvalidArgument, match="period"):
        parse_period(text)


def test_empty_period_means_all_time() -> None:
    period = parse_period("")
    assert period.start.year == 1970 and period.end.year == 9999
