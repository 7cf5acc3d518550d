"""Dispatch, 吹哨报到, 上报 and directives over HTTP, on a running village–town–county chain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx

from harness.county import ADMIN_PASSWORD, LocalCounty
from tests.gateway.test_api import CASE
from tests.system.test_county_sync import eventually

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"


@asynccontextmanager
async def operator(local: LocalCounty, code: str) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{local[code].http_port}"
    async with httpx.AsyncClient(base_url=base) as anonymous:
        login = await anonymous.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        token = login.json()["access_token"]
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


async def test_a_town_operator_dispatches_whistles_and_departments_report_over_http(chain: LocalCounty) -> None:
    async with operator(chain, TOWN) as town:
        case_id = (await town.post("/api/v1/cases", json=dict(CASE, category="劳动争议"))).json()["case"]["id"]
        await town.post(f"/api/v1/cases/{case_id}/triage", json={"category": "劳动争议", "response_class": 2})
        concerned = (await town.get("/api/v1/departments", params={"category": "劳动争议"})).json()["items"]
        assert [d["name"] for d in concerned] == ["人社所", "司法所"]

        dispatched = await town.post(f"/api/v1/cases/{case_id}/dispatch", json={"requirement": "核实欠薪情况"})
        assert dispatched.status_code == 200, dispatched.text
        assert dispatched.json()["assignment"]["department"] == "人社所"
        whistled = await town.post(f"/api/v1/cases/{case_id}/whistle", json={"reason": "欠薪群体讨薪"})
        assert [s["department"] for s in whistled.json()["summons"]] == ["人社所", "司法所"]
        reported = await town.post(f"/api/v1/cases/{case_id}/report", json={"department": "司法所"})
        assert reported.status_code == 200 and reported.json()["summons"][1]["reported_at"]
        unknown = await town.post(f"/api/v1/cases/{case_id}/report", json={"department": "妇联"})
        assert unknown.status_code == 409 and "未被吹哨召集" in unknown.json()["detail"]
        bad = await town.post(f"/api/v1/cases/{case_id}/whistle", json={"reason": "x", "departments": "司法所"})
        assert bad.status_code == 400 and "单据格式错误" in bad.json()["detail"]
        not_task_force = await town.post(f"/api/v1/cases/{case_id}/task-force", json={"lead_department": "人社所"})
        assert not_task_force.status_code == 409 and "只有攻坚案件" in not_task_force.json()["detail"]


async def test_a_village_escalates_over_http_and_the_county_sends_a_directive_the_town_answers(
    chain: LocalCounty,
) -> None:
    async with operator(chain, VILLAGE) as village:
        case_id = (await village.post("/api/v1/cases", json=CASE)).json()["case"]["id"]
        escalated = await village.post(f"/api/v1/cases/{case_id}/escalate", json={"reason": "涉及两村宅基地界线"})
        assert escalated.status_code == 200 and escalated.json()["escalation_to"] == TOWN

    async def held_by(client: httpx.AsyncClient, code: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            reply = await client.get(f"/api/v1/cases/{case_id}")
            return reply.status_code == 200 and reply.json()["holder_node"] == code

        return check

    async with operator(chain, TOWN) as town:
        await eventually(await held_by(town, TOWN), within_s=10, what="the town holds the escalated case")

    async with operator(chain, COUNTY) as county:
        sent = await county.post(
            "/api/v1/directives",
            json={"to_node": TOWN, "kind": "assignment", "title": "督促化解宅基地纠纷", "case_id": case_id},
        )
        assert sent.status_code == 201, sent.text
        directive_id = sent.json()["id"]
        wrong = await county.post("/api/v1/directives", json={"to_node": "440303", "title": "越界"})
        assert wrong.status_code == 400

    async with operator(chain, TOWN) as town:

        async def received() -> bool:
            items = (await town.get("/api/v1/directives", params={"direction": "in"})).json()["items"]
            return [d["id"] for d in items] == [directive_id]

        await eventually(received, within_s=10, what="the directive reaches the town")
        early = await town.post(f"/api/v1/directives/{directive_id}/complete", json={"text": "已化解"})
        assert early.status_code == 409
        assert (await town.post(f"/api/v1/directives/{directive_id}/acknowledge", json={})).status_code == 200
        done = await town.post(f"/api/v1/directives/{directive_id}/complete", json={"text": "已化解"})
        assert done.json()["status"] == "DIRECTIVE_STATUS_COMPLETED"
