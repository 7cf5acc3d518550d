"""Federation rules (pure): reporting periods and rates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from fengqiao.clock import CHINA_TZ
from fengqiao.errors import InvalidArgument

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclasses.dataclass(frozen=True)
class Period:
    """A reporting period in local (China) time: [start, end)."""

    label: str
    start: dt.datetime
    end: dt.datetime


def _month_start(year: int, month: int) -> dt.datetime:
    return dt.datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=CHINA_TZ)


def parse_period(text: str) -> Period:
    """``2026-11-22``, ``2026-11``, ``2026Q4``, ``2026``; empty means all time."""
    text = text.strip()
    try:
        if not text:
            return Period("全部", dt.datetime(1970, 1, 1, tzinfo=CHINA_TZ), dt.datetime(9999, 1, 1, tzinfo=CHINA_TZ))
        if m := _DAY.match(text):
            start = dt.datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=CHINA_TZ)
            return Period(text, start, start + dt.timedelta(days=1))
        if m := _MONTH.match(text):
            year, month = int(m[1]), int(m[2])
            if not 1 <= month <= 12:
                raise ValueError(text)
            return Period(text, _month_start(year, month), _month_start(year, month + 1))
        if m := _QUARTER.match(text):
            year, first = int(m[1]), (int(m[2]) - 1) * 3 + 1
            return Period(text, _month_start(year, first), _month_start(year, first + 3))
        if m := _YEAR.match(text):
            year = int(m[1])
            return Period(text, _month_start(year, 1), _month_start(year + 1, 1))
    except ValueError as exc:
        raise InvalidArgument("period", f"统计周期“{text}”无效") from exc
    raise InvalidArgument("period", f"统计周期“{text}”格式不对，应为 2026-11-22、2026-11、2026Q4 或 2026")
