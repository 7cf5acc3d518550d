"""月报 (monthly report) as CSV and XLSX, in the layout county offices file them.

A title line, a line with the period and the time of generation, one header row in Chinese,
then one row per unit — each town followed by its villages (indented) — and the 合计 row of the
reporting node last, then the notes defining each rate. Every rate sits next to its numerator;
the denominator is the 受理数 or 办结数 column. CSV is UTF-8 with a byte-order mark so Excel
opens it in Chinese; in XLSX the rates are numbers formatted as percentages.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from fengqiao.clock import CHINA_TZ
from fengqiao.divisions import Tier, tier_of
from services.federation import figures
from services.federation.rules import Period

HEADERS = (
    "序号", "行政区划代码", "单位", "层级", "受理数", "办结数", "办结率", "按期办结数", "按期办结率",
    "调解成功数", "调解成功率", "回访数", "回访率", "平均满意度", "平均办理时长（小时）",
    "村级化解数", "小事不出村率", "镇级及以下化解数", "大事不出镇率", "上交县级数", "上交县级率",
    "超期件数", "督办件数", "数据状态",
)  # fmt: skip
_RATE_COLUMNS = {6, 8, 10, 12, 16, 18, 20}  # 0-based positions of rates in HEADERS
NOTES = (
    "说明：统计对象为统计周期内受理的案件；办结、回访等为生成时的状态。",
    "办结率=办结数/受理数；按期办结率=按期办结数/办结数；调解成功率=调解成功数/办结数；回访率=回访数/办结数；",
    "平均满意度为已回访案件满意度（1–5分）的平均值；平均办理时长为受理至办结的平均小时数；",
    "小事不出村率=村级化解数/办结数；大事不出镇率=镇级及以下化解数/办结数；上交县级率=上交县级数/受理数；",
    "“数据滞后”表示该单位超过规定时限未收到新数据，其数字可能偏低。",
)
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclasses.dataclass(frozen=True)
class Unit:
    """One row: a node and its rolled-up tally."""

    code: str
    name: str
    tally: figures.Tally
    stale: bool


def _row(number: str, unit: Unit, label: str) -> list[object]:
    t = unit.tally
    r = {name: value for name, (_, _, value) in figures.rates(t).items()}
    m = {name: value for name, (_, _, value) in figures.means(t).items()}
    return [
        number, unit.code, label, tier_of(unit.code).label, t.received, t.closed, r["closure_rate"],
        t.on_time, r["on_time_rate"], t.mediated, r["mediation_success_rate"], t.followed_up,
        r["follow_up_rate"], round(m["satisfaction"], 2), round(m["handling_hours"], 1),
        t.at_village, r["resolved_at_village"], t.at_or_below_town, r["resolved_at_or_below_town"],
        t.at_county, r["escalated_to_county"], t.overdue, t.supervised, "数据滞后" if unit.stale else "正常",
    ]  # fmt: skip


def rows(total: Unit, units: Sequence[Unit]) -> list[list[object]]:
    """The table body: the units (villages indented), then 合计."""
    body = []
    for number, unit in enumerate(units, start=1):
        label = ("　　" if tier_of(unit.code) is Tier.VILLAGE else "") + unit.name
        body.append(_row(str(number), unit, label))
    body.append(_row("", total, f"合计（{total.name}）"))
    return body


def _title(total: Unit, period: Period) -> str:
    return f"{total.name}矛盾纠纷多元化解工作月报（{period.label}）"


def _subtitle(period: Period, generated_at: dt.datetime) -> str:
    last = period.end - dt.timedelta(days=1)
    made = generated_at.astimezone(CHINA_TZ)
    return f"统计周期：{period.start:%Y-%m-%d} 至 {last:%Y-%m-%d}　生成时间：{made:%Y-%m-%d %H:%M}　单位：件、%、小时"


def _percent(value: object) -> str:
    return f"{float(value) * 100:.1f}%" if isinstance(value, int | float) else str(value)


def to_csv(total: Unit, units: Sequence[Unit], *, period: Period, generated_at: dt.datetime) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_title(total, period)])
    writer.writerow([_subtitle(period, generated_at)])
    writer.writerow(HEADERS)
    for row in rows(total, units):
        writer.writerow([_percent(v) if i in _RATE_COLUMNS else v for i, v in enumerate(row)])
    for note in NOTES:
        writer.writerow([note])
    return out.getvalue().encode("utf-8-sig")


def to_xlsx(total: Unit, units: Sequence[Unit], *, period: Period, generated_at: dt.datetime) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = f"月报{period.label}"
    width = len(HEADERS)
    sheet.append([_title(total, period)])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet["A1"].font = Font(bold=True, size=16)
    sheet["A1"].alignment = Alignment(horizontal="center")
    sheet.append([_subtitle(period, generated_at)])
    sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=width)
    sheet.append(list(HEADERS))
    for cell in sheet[3]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    body = rows(total, units)
    for row in body:
        sheet.append(row)
        for i in _RATE_COLUMNS:
            sheet.cell(row=sheet.max_row, column=i + 1).number_format = "0.0%"
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for note in NOTES:
        sheet.append([note])
    sheet.freeze_panes = "D4"
    for column in range(1, width + 1):
        sheet.column_dimensions[get_column_letter(column)].width = 22 if column == 3 else 11
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
