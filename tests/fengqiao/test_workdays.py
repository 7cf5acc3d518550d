"""The county's working-day calendar (pure): 法定节假日, 调休, clocks in working days, and a broken
calendar file refused in Chinese while the last good one stays in force."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from fengqiao import workdays
from fengqiao.clock import CHINA_TZ
from fengqiao.errors import InvalidArgument
from fengqiao.rulefile import ReloadingFile

CALENDAR_FILE = Path(__file__).resolve().parents[2] / "deploy" / "policy" / "calendar.yaml"
CALENDAR = workdays.load(CALENDAR_FILE)


def china(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CHINA_TZ)  # type: ignore[misc]


def test_the_2026_national_day_arrangement() -> None:
    assert not any(CALENDAR.is_working_day(dt.date(2026, 10, d)) for d in range(1, 8))
    assert CALENDAR.is_working_day(dt.date(2026, 10, 10)), "Saturday 10 October is worked (调休)"
    assert CALENDAR.is_working_day(dt.date(2026, 9, 30)) and CALENDAR.is_working_day(dt.date(2026, 10, 8))
    assert not CALENDAR.is_working_day(dt.date(2026, 10, 11)), "an ordinary Sunday"


def test_a_matter_taken_in_on_the_last_working_day_before_national_day_is_due_after_the_holiday() -> None:
    taken = china(2026, 9, 30, 16, 30)
    assert CALENDAR.after_working_days(taken, 1) == china(2026, 10, 9)  # the end of Thursday 8 October
    assert CALENDAR.after_working_days(taken, 3) == china(2026, 10, 11)  # 8, 9 and the worked Saturday 10
    assert CALENDAR.after_working_days(taken, 13) == china(2026, 10, 24)  # 12345 投诉: the end of Fri 23 Oct


def test_the_warning_comes_at_the_share_of_the_working_time() -> None:
    start, end = china(2026, 9, 30, 0, 0), china(2026, 10, 11)  # 30 Sep, 8, 9, 10 Oct: four working days
    assert CALENDAR.working_time(start, end) == dt.timedelta(days=4)
    assert CALENDAR.share_of(start, end, 0.8) == china(2026, 10, 10, 4, 48)  # 3.2 working days in
    holiday = china(2026, 10, 2), china(2026, 10, 4)  # no working time at all: the wall clock's share
    assert CALENDAR.share_of(*holiday, 0.5) == china(2026, 10, 3)


def test_a_year_not_yet_published_counts_monday_to_friday_and_is_named() -> None:
    assert CALENDAR.unpublished([2026, 2027]) == [2027]
    assert CALENDAR.after_working_days(china(2027, 9, 30, 10), 3) == china(2027, 10, 6)  # Fri; Mon, Tue, Wed


def test_a_county_entering_next_years_arrangement_moves_the_deadlines() -> None:
    """Once the State Council publishes 2027, the county regenerates or enters it; this section is
    illustrative test data in the file's form, not the official arrangement."""
    text = CALENDAR_FILE.read_text(encoding="utf-8").replace(
        "  2027: null",
        "  2027:\n    holidays:\n"
        + "".join(f"      2027-10-0{d}: 国庆节\n" for d in range(1, 8))
        + "    workdays:\n      2027-10-09: 国庆节调休上班\n",
    )
    county = workdays.parse(yaml.safe_load(text))
    assert county.unpublished([2026, 2027]) == []
    assert county.after_working_days(china(2027, 9, 30, 10), 3) == china(2027, 10, 12)  # 8, 9 (Sat), 11
    assert not county.is_working_day(dt.date(2027, 10, 4))


def test_the_shipped_calendar_is_what_the_pinned_package_generates() -> None:
    assert workdays.parse(workdays.generate([2026, 2027])) == CALENDAR


@pytest.mark.parametrize(
    ("years", "words"),
    [
        ({"2026": None}, "年份"),
        ({2026: {"holidays": {"十月一日": "国庆节"}}}, "不是日期"),
        ({2026: {"holidays": {dt.date(2025, 10, 1): "国庆节"}}}, "不在 2026 年之下"),
        ({2026: {"workdays": {dt.date(2026, 10, 9): "调休"}}}, "不是周末"),
        ({2026: {"holidays": {dt.date(2026, 10, 10): "x"}, "workdays": {dt.date(2026, 10, 10): "y"}}}, "既是"),
        ({2026: ["2026-10-01"]}, "holidays 和 workdays"),
    ],
)
def test_a_broken_calendar_is_refused_in_chinese(years: object, words: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        workdays.parse({"years": years})
    assert words in refused.value.message


def test_a_broken_edit_keeps_the_last_good_calendar(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text(CALENDAR_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    current = ReloadingFile(path, workdays.load, what="工作日历")
    path.write_text("years:\n  2026:\n    workdays:\n      2026-10-09: 调休\n", encoding="utf-8")  # a Friday
    assert current.current() == CALENDAR
