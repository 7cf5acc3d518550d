"""Departments of the centers (常驻/轮驻/随驻) and which of them a case concerns (pure but the
file loading): 交办 to the first concerned department a center has, 中心吹哨 to all of them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fengqiao.divisions import Tier, tier_of
from fengqiao.errors import InvalidArgument
from fengqiao.rulefile import ReloadingFile, read_yaml
from fengqiao.v1 import case_pb2 as pb

_TIER_NAMES = {"village": Tier.VILLAGE, "town": Tier.TOWN, "county": Tier.COUNTY}


@dataclasses.dataclass(frozen=True)
class Presence:
    """How a department sits in a center (常驻, 轮驻, 随驻) and its 报到 time when called."""

    key: str
    label: str
    report_minutes: int


@dataclasses.dataclass(frozen=True)
class Department:
    name: str
    presence: Presence


@dataclasses.dataclass(frozen=True)
class DepartmentBook:
    """The departments of every center of a county and the category → department mapping."""

    name: str
    tiers: Mapping[Tier, tuple[Department, ...]]
    nodes: Mapping[str, tuple[Department, ...]]
    categories: Mapping[str, tuple[str, ...]]

    def at(self, node_code: str) -> tuple[Department, ...]:
        """The departments of a center: its own list, else its tier's."""
        return self.nodes.get(node_code) or self.tiers.get(tier_of(node_code), ())

    def concerned(self, node_code: str, category: str) -> list[Department]:
        """The departments of the center that ``category`` concerns, in the mapping's order;
        the center's first 常驻 department when it has none of them."""
        here = {d.name: d for d in self.at(node_code)}
        found = [here[name] for name in self.categories.get(category, ()) if name in here]
        if found:
            return found
        resident = [d for d in self.at(node_code) if d.presence.key == "resident"]
        if not resident:
            raise InvalidArgument("departments", f"中心 {node_code} 没有配置常驻部门，无法派单")
        return resident[:1]

    def summons(self, node_code: str, category: str, now: dt.datetime) -> list[pb.Summons]:
        """中心吹哨: every concerned department, each with its 报到 deadline from ``now``."""
        return [s for d in self.concerned(node_code, category) for s in self.summons_of(d, now)]

    @staticmethod
    def summons_of(department: Department, now: dt.datetime) -> list[pb.Summons]:
        """The call of one department, due to 报到 within its presence's time."""
        summons = pb.Summons(department=department.name, presence=department.presence.key)
        summons.report_by.FromDatetime(now + dt.timedelta(minutes=department.presence.report_minutes))
        return [summons]

    def department(self, node_code: str, name: str) -> Department:
        """A department of the center by name, or ``InvalidArgument``."""
        for department in self.at(node_code):
            if department.name == name:
                return department
        known = "、".join(d.name for d in self.at(node_code))
        raise InvalidArgument("department", f"本中心没有“{name}”，可选：{known}")


def _departments(raw: Any, where: str, presence: Mapping[str, Presence]) -> tuple[Department, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument(where, f"{where} 须为非空的部门列表")
    found: list[Department] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not str(item.get("name") or "").strip():
            raise InvalidArgument(f"{where}[{i}]", "部门须有 name")
        key = str(item.get("presence") or "")
        if key not in presence:
            raise InvalidArgument(f"{where}[{i}].presence", f"驻点方式须为 {'、'.join(presence)} 之一")
        if any(d.name == item["name"] for d in found):
            raise InvalidArgument(f"{where}[{i}].name", f"部门“{item['name']}”重复")
        found.append(Department(str(item["name"]).strip(), presence[key]))
    return tuple(found)


def book_from_dict(raw: Any) -> DepartmentBook:
    """Validate a parsed departments file; an error names the field."""
    if not isinstance(raw, dict):
        raise InvalidArgument("departments", "部门配置文件须为映射，含 presence、tiers、categories")
    presence: dict[str, Presence] = {}
    for key, item in (raw.get("presence") or {}).items():
        minutes = item.get("report_minutes") if isinstance(item, dict) else None
        if not isinstance(minutes, int) or minutes <= 0:
            raise InvalidArgument(f"presence.{key}.report_minutes", "报到时限须为正整数（分钟）")
        presence[str(key)] = Presence(str(key), str(item.get("label") or key), minutes)
    if not presence:
        raise InvalidArgument("presence", "须配置驻点方式（常驻、轮驻、随驻）")
    tiers = {}
    for key, items in (raw.get("tiers") or {}).items():
        if key not in _TIER_NAMES:
            raise InvalidArgument(f"tiers.{key}", f"层级须为 {'、'.join(_TIER_NAMES)} 之一")
        tiers[_TIER_NAMES[key]] = _departments(items, f"tiers.{key}", presence)
    nodes = {}
    for code, items in (raw.get("nodes") or {}).items():
        tier_of(str(code), field=f"nodes.{code}")
        nodes[str(code)] = _departments(items, f"nodes.{code}", presence)
    known = {d.name for group in [*tiers.values(), *nodes.values()] for d in group}
    categories: dict[str, tuple[str, ...]] = {}
    for category, names in (raw.get("categories") or {}).items():
        if not isinstance(names, list) or not names:
            raise InvalidArgument(f"categories.{category}", "类别须对应非空的部门列表")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidArgument(f"categories.{category}", f"未配置的部门：{'、'.join(map(str, unknown))}")
        categories[str(category)] = tuple(map(str, names))
    return DepartmentBook(str(raw.get("name") or "部门配置"), tiers, nodes, categories)


def load_book(path: Path) -> DepartmentBook:
    """Read and validate a departments file."""
    return book_from_dict(read_yaml(path, field="departments_file"))


class DepartmentFile(ReloadingFile[DepartmentBook]):
    """The county's departments file, reloaded when it changes; never broken."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, load_book, what="departments")
