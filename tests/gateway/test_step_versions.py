"""Every case step over HTTP takes ``expected_version``, whichever service takes the step: a stale
one answers 409 with the reason in Chinese and changes nothing; the current one goes through."""

from __future__ import annotations

from typing import Any

import httpx

from harness.county import LocalCounty
from tests.gateway.test_api import CASE
from tests.gateway.test_dispatch_api import operator

VILLAGE, TOWN = "371702101001", "371702101"


def stale_reason(current: int, given: int) -> str:
    return f"案件已被他人更新（当前版本 {current}，请求版本 {given}），请刷新后重试"


async def step(client: httpx.AsyncClient, case_id: str, name: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(f"/api/v1/cases/{case_id}/{name}", json=body)


async def history(client: httpx.AsyncClient, case_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    case = (await client.get(f"/api/v1/cases/{case_id}")).json()
    events = (await client.get(f"/api/v1/cases/{case_id}/events")).json()["items"]
    return case, events


async def refused_as_stale(client: httpx.AsyncClient, case_id: str, name: str, body: dict[str, Any]) -> int:
    """Take the step at the version before the case's current one; check it changed nothing."""
    before = await history(client, case_id)
    current = int(before[0]["version"])
    reply = await step(client, case_id, name, {**body, "expected_version": current - 1})
    assert reply.status_code == 409, reply.text
    assert reply.json()["detail"] == stale_reason(current, current - 1)
    assert await history(client, case_id) == before
    return current


async def test_town_steps_of_both_services_refuse_a_stale_version_and_take_the_current_one(
    chain: LocalCounty,
) -> None:
    async with operator(chain, TOWN) as town:
        created = await town.post("/api/v1/cases", json=dict(CASE, category="劳动争议"))
        case_id = created.json()["case"]["id"]
        triaged = await step(
            town, case_id, "triage", {"category": "劳动争议", "response_class": 2, "expected_version": 1}
        )
        assert triaged.status_code == 200 and triaged.json()["version"] == "2", triaged.text

        current = await refused_as_stale(town, case_id, "dispatch", {"requirement": "核实欠薪情况"})
        dispatched = await step(town, case_id, "dispatch", {"requirement": "核实欠薪情况", "expected_version": current})
        assert dispatched.status_code == 200, dispatched.text
        assert dispatched.json()["assignment"]["department"] == "人社所"

        current = await refused_as_stale(town, case_id, "whistle", {"reason": "欠薪群体讨薪"})
        whistled = await step(town, case_id, "whistle", {"reason": "欠薪群体讨薪", "expected_version": str(current)})
        assert whistled.status_code == 200, whistled.text
        assert [s["department"] for s in whistled.json()["summons"]] == ["人社所", "司法所"]

        current = await refused_as_stale(town, case_id, "acknowledge", {})
        acknowledged = await step(town, case_id, "acknowledge", {"expected_version": current})
        assert acknowledged.status_code == 200 and acknowledged.json()["acknowledged"] is True, acknowledged.text

        for field in ("actor", "case_id"):  # the login and the path name these, for every step alike
            for name, body in (("start", {}), ("report", {"department": "司法所"})):
                reply = await step(town, case_id, name, {**body, field: "冒名"})
                assert reply.status_code == 400 and f"{field} 由路径和登录用户决定" in reply.json()["detail"]
        malformed = await step(town, case_id, "report", {"department": "司法所", "expected_version": "二"})
        assert malformed.status_code == 400 and "单据格式错误" in malformed.json()["detail"]


async def test_a_village_escalation_refuses_a_stale_version_and_takes_the_current_one(chain: LocalCounty) -> None:
    async with operator(chain, VILLAGE) as village:
        case_id = (await village.post("/api/v1/cases", json=CASE)).json()["case"]["id"]
        triaged = await step(village, case_id, "triage", {"category": "房屋宅基地", "response_class": 1})
        assert triaged.status_code == 200, triaged.text

        current = await refused_as_stale(village, case_id, "escalate", {"reason": "涉及两村宅基地界线"})
        escalated = await step(
            village, case_id, "escalate", {"reason": "涉及两村宅基地界线", "expected_version": current}
        )
        assert escalated.status_code == 200, escalated.text
        assert escalated.json()["escalation_to"] == TOWN and escalated.json()["version"] == str(current + 1)
