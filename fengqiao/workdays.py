"""Working days (工作日): a county's calendar of 法定节假日 and 调休, and clocks that count in it.

The 12345 practice counts its deadlines in working days (咨询 3, 投诉 13); a matter taken in on the
last working day before 国庆 is due after the holiday, on the calendar's adjusted days. The
calendar is county data (``deploy/policy/calendar.yaml``), generated from the State Council's
published arrangements (``fengqiao calendar generate``, from the pinned ``chinesecalendar``
package) and editable: a year not yet published counts Monday to Friday until the county adds it.

Days are China's calendar days (UTC+8). All pure but ``load`` and ``generate``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fengqiao.clock import CHINA_TZ
from fengqiao.errors import InvalidArgument
from fengqiao.rulefile import read_yaml

_DAY = dt.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class WorkCalendar:
    """Which days are worked: Monday to Friday, less the holidays, plus the 调休 weekends."""

    holidays: Mapping[dt.date, str] = dataclasses.field(default_factory=dict)  # weekday → festival
    workdays: Mapping[dt.date, str] = dataclasses.field(default_factory=dict)  # weekend worked → why
    published: frozenset[int] = frozenset()  # years whose arrangement the calendar holds

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def after_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The end (24:00, China time) of the ``days``-th working day after ``start``'s own day."""
        if days < 1:
            raise InvalidArgument("working_days", "工作日数须为正整数")
        day = start.astimezone(CHINA_TZ).date()
        while days:
            day += _DAY
            days -= self.is_working_day(day)
        return dt.datetime.combine(day + _DAY, dt.time(), CHINA_TZ).astimezone(dt.UTC)

    def working_time(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """How much of ``start``–``end`` falls on working days."""
        total = dt.timedelta()
        at = start.astimezone(CHINA_TZ)
        end = end.astimezone(CHINA_TZ)
        while at < end:
            midnight = dt.datetime.combine(at.date() + _DAY, dt.time(), CHINA_TZ)
            if self.is_working_day(at.date()):
                total += min(midnight, end) - at
            at = midnight
        return total

    def share_of(self, start: dt.datetime, end: dt.datetime, share: float) -> dt.datetime:
        """The moment ``share`` of the working time from ``start`` to ``end`` has passed (the wall
        clock's share where the span holds no working time)."""
        whole = self.working_time(start, end)
        if whole <= dt.timedelta():
            return start + (end - start) * share
        left = whole * share
        at = start.astimezone(CHINA_TZ)
        while True:
            midnight = dt.datetime.combine(at.date() + _DAY, dt.time(), CHINA_TZ)
            if self.is_working_day(at.date()):
                span = min(midnight, end.astimezone(CHINA_TZ)) - at
                if span >= left:
                    return (at + left).astimezone(dt.UTC)
                left -= span
            at = midnight

    def unpublished(self, years: Iterable[int]) -> list[int]:
        """Those of ``years`` whose arrangement the calendar does not hold yet."""
        return sorted(set(years) - self.published)


def _dates(value: Any, *, where: str) -> dict[dt.date, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(where, f"{where} 须为“日期: 说明”的映射")
    dates: dict[dt.date, str] = {}
    for day, why in value.items():
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise InvalidArgument(where, f"{where} 中的“{day}”不是日期（应写作 2026-10-01）")
        dates[day] = str(why or "")
    return dates


def parse(data: Any, *, source: str = "工作日历") -> WorkCalendar:
    """A calendar from its YAML form: ``years: {2026: {holidays: {date: 名称}, workdays: {date: 说明}}}``;
    a year given as ``null`` is one whose arrangement is not published yet."""
    if not isinstance(data, dict) or not isinstance(data.get("years"), dict):
        raise InvalidArgument("calendar", f"{source} 须有 years（按年份列出放假和调休上班的日期）")
    holidays: dict[dt.date, str] = {}
    workdays: dict[dt.date, str] = {}
    published: set[int] = set()
    for year, days in data["years"].items():
        if not isinstance(year, int) or not 2000 <= year <= 2100:
            raise InvalidArgument("calendar", f"{source} 中的年份“{year}”无效")
        if days is None:
            continue
        if not isinstance(days, dict):
            raise InvalidArgument("calendar", f"{source} 中 {year} 年须列出 holidays 和 workdays")
        off = _dates(days.get("holidays"), where=f"{year} 年 holidays")
        on = _dates(days.get("workdays"), where=f"{year} 年 workdays")
        for day in [*off, *on]:
            if day.year != year:
                raise InvalidArgument("calendar", f"{source} 中 {day} 不在 {year} 年之下")
        for day in off.keys() & on.keys():
            raise InvalidArgument("calendar", f"{source} 中 {day} 既是放假日又是调休上班日")
        for day in on:
            if day.weekday() < 5:
                raise InvalidArgument("calendar", f"{source} 中调休上班日 {day} 不是周末")
        holidays.update({d: why for d, why in off.items() if d.weekday() < 5})
        workdays.update(on)
        published.add(year)
    return WorkCalendar(holidays=holidays, workdays=workdays, published=frozenset(published))


def load(path: Path) -> WorkCalendar:
    """The calendar in ``path`` (``FQ_INTAKE_CALENDAR_FILE``); a broken file is an ``InvalidArgument``."""
    return parse(read_yaml(path, field="calendar_file"), source=f"工作日历 {path}")


def generate(years: Iterable[int]) -> dict[str, Any]:
    """The YAML form of the published arrangements of ``years`` (from ``chinesecalendar``); a year
    it has no data for is written as not yet published (``null``)."""
    import chinese_calendar  # only this command needs it

    out: dict[int, dict[str, dict[dt.date, str]] | None] = {}
    for year in sorted(set(years)):
        first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
        try:
            off = chinese_calendar.get_holidays(first, last, include_weekends=False)
            on = [d for d in chinese_calendar.get_workdays(first, last, include_weekends=True) if d.weekday() >= 5]
        except NotImplementedError:
            out[year] = None
            continue
        names = {d: chinese_calendar.get_holiday_detail(d)[1] for d in [*off, *on]}
        out[year] = {
            "holidays": {d: _festival(names[d]) for d in off},
            "workdays": {d: f"{_festival(names[d])}调休上班" for d in on},
        }
    return {"years": out}


_FESTIVALS = {
    "New Year's Day": "元旦", "Spring Festival": "春节", "Tomb-sweeping Day": "清明节", "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节", "Mid-autumn Festival": "中秋节", "National Day": "国庆节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}  # fmt: skip


def _festival(name: str | None) -> str:
    return _FESTIVALS.get(name or "", name or "")
