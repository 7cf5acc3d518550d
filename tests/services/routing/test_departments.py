"""The departments file: who sits in which center, and which departments a category concerns."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from fengqiao.cases.vocabulary import DEFAULT_CATEGORIES
from fengqiao.errors import InvalidArgument
from services.routing import departments
from services.routing.config import RoutingSettings

BOOK = departments.load_book(RoutingSettings().departments_file)
TOWN, VILLAGE, COUNTY = "371702101", "371702101001", "371702"
NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


def test_the_shipped_file_maps_every_default_category() -> None:
    assert set(DEFAULT_CATEGORIES) <= set(BOOK.categories)


def test_a_land_acquisition_dispute_concerns_the_towns_land_office_first() -> None:
    names = [d.name for d in BOOK.concerned(TOWN, "征地拆迁")]
    assert names[0] == "自然资源所"
    assert {"信访办", "司法所", "派出所"} <= set(names)
    assert not any(n.startswith("县") for n in names)  # the county's bureaus are not the town's


def test_a_village_without_the_mapped_departments_falls_back_to_its_first_resident_one() -> None:
    assert [d.name for d in BOOK.concerned(VILLAGE, "消费")] == ["村调委会"]


def test_summons_deadlines_follow_presence_resident_before_rotating_before_on_call() -> None:
    called = {s.department: s for s in BOOK.summons(TOWN, "征地拆迁", NOW)}
    minutes = {
        name: (s.report_by.ToDatetime(tzinfo=dt.UTC) - NOW) / dt.timedelta(minutes=1) for name, s in called.items()
    }
    assert minutes["司法所"] == 30 and called["司法所"].presence == "resident"
    assert minutes["自然资源所"] == 120 and called["自然资源所"].presence == "on_call"


def test_a_centers_own_list_replaces_its_tiers(tmp_path: Path) -> None:
    raw = yaml.safe_load(RoutingSettings().departments_file.read_text(encoding="utf-8"))
    raw["nodes"] = {TOWN: [{"name": "司法所", "presence": "resident"}, {"name": "矛调中心", "presence": "resident"}]}
    book = departments.book_from_dict(raw)
    assert [d.name for d in book.at(TOWN)] == ["司法所", "矛调中心"]
    assert len(book.at("371702102")) > 2
    with pytest.raises(InvalidArgument, match="派出所"):
        book.department(TOWN, "派出所")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda raw: raw.update(presence={}), "presence"),
        (lambda raw: raw["tiers"]["town"].append({"name": "司法所", "presence": "resident"}), "tiers.town[13].name"),
        (
            lambda raw: raw["tiers"]["town"].append({"name": "新部门", "presence": "sometimes"}),
            "tiers.town[13].presence",
        ),
        (lambda raw: raw["categories"].update({"邻里": ["不存在的部门"]}), "categories.邻里"),
        (lambda raw: raw["tiers"].update({"province": []}), "tiers.province"),
        (lambda raw: raw.update(nodes={"12345": []}), "nodes.12345"),
    ],
)
def test_a_broken_file_is_refused_naming_the_field(change: Any, field: str) -> None:
    raw = yaml.safe_load(RoutingSettings().departments_file.read_text(encoding="utf-8"))
    change(raw)
    with pytest.raises(InvalidArgument) as caught:
        departments.book_from_dict(raw)
    assert caught.value.field == field


def test_a_broken_edit_keeps_the_previous_departments(tmp_path: Path) -> None:
    path = tmp_path / "departments.yaml"
    path.write_text(RoutingSettings().departments_file.read_text(encoding="utf-8"), encoding="utf-8")
    watched = departments.DepartmentFile(path)
    first = watched.current()
    path.write_text("presence: [", encoding="utf-8")
    assert watched.current() is first
