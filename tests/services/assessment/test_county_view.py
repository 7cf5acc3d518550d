"""四必评 over HTTP: a hazard found at 决策 is tracked to resolution, and a dispute the project bred
shows at the county under that project."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx

from fengqiao.grpcutil import channel
from fengqiao.v1 import intake_pb2_grpc
from harness.county import ADMIN_PASSWORD, LocalCounty, submit_request
from services.assessment import store
from tests.system.test_county_sync import eventually

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"


async def login(local: LocalCounty, code: str, stack: list[httpx.AsyncClient]) -> httpx.AsyncClient:
    base = f"http://127.0.0.1:{local[code].http_port}"
    async with httpx.AsyncClient(base_url=base) as anonymous:
        reply = await anonymous.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert reply.status_code == 200, reply.text
    client = httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {reply.json()['access_token']}"})
    stack.append(client)
    return client


def assessment(stage: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "stage": stage,
        "dimensions": {"legality": 92, "reasonableness": 85, "feasibility": 88, "controllability": 82},
        "survey": {"respondents": 150, "supporters": 140},
        "risk_points": [],
        "measures": [],
        "assessor": "县社会稳定风险评估中心",
    }
    body.update(overrides)
    return body


async def ok(reply: Awaitable[httpx.Response], status: int = 200) -> dict[str, Any]:
    response = await reply
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


@contextlib.asynccontextmanager
async def clients(chain: LocalCounty) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Operators logged in at the town and at the county."""
    opened: list[httpx.AsyncClient] = []
    try:
        yield await login(chain, TOWN, opened), await login(chain, COUNTY, opened)
    finally:
        for client in opened:
            await client.aclose()


async def test_a_hazard_found_at_decision_is_resolved_and_a_linked_dispute_shows_at_the_county(
    chain: LocalCounty,
) -> None:
    async with clients(chain) as (town, county):
        project = await ok(
            town.post(
                "/api/v1/projects",
                json={"name": "河东片区拆迁安置", "kind": "拆迁", "villages": [VILLAGE], "people_affected": 86},
            ),
            201,
        )
        pid = project["id"]
        skipped = await town.post(f"/api/v1/projects/{pid}/assess", json=assessment("决策"))
        assert skipped.status_code == 409 and "不能跳过“立项”环节" in skipped.json()["detail"]
        await ok(town.post(f"/api/v1/projects/{pid}/assess", json=assessment("立项")))
        await ok(town.post(f"/api/v1/projects/{pid}/pass", json={"stage": "立项"}))

        decision = assessment(
            "决策",
            survey={"respondents": 150, "supporters": 110},
            risk_points=[{"description": "部分住户对安置房面积有异议，可能集体上访", "likelihood": 3, "impact": 3}],
            measures=[
                {"description": "一户一策入户协商", "responsible_unit": "镇征迁办", "deadline": "2026-12-31T00:00:00Z"}
            ],
        )
        assessed = await ok(town.post(f"/api/v1/projects/{pid}/assess", json=decision))
        assert assessed["level"] == "medium" and assessed["blocked"] is False
        [hazard] = assessed["project"]["hazards"]
        assert hazard["stage"] == "决策" and hazard["resolved"] is False
        await ok(town.post(f"/api/v1/projects/{pid}/pass", json={"stage": "决策"}))
        no_reason = await town.post(f"/api/v1/projects/{pid}/hazards/{hazard['id']}/resolve", json={"resolution": ""})
        assert no_reason.status_code == 400
        resolved = await ok(
            town.post(
                f"/api/v1/projects/{pid}/hazards/{hazard['id']}/resolve",
                json={"resolution": "安置房面积按实测补差，住户签字确认"},
            )
        )
        assert resolved["hazards"][0]["resolved"] is True

        # A dispute arises in the village; once the town holds its copy, the town links it.
        async with channel(chain[VILLAGE].grpc_address) as ch:
            reply = await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE, category="征地拆迁"))
        case = reply.case

        async def town_knows_the_case() -> bool:
            db = chain[TOWN].ctx.db  # type: ignore[union-attr]
            return await db.read(lambda s: store.find_case(s, case_id=case.id)) is not None

        await eventually(town_knows_the_case, within_s=10, what="the village's case reaches the town")
        linked = await ok(town.post(f"/api/v1/projects/{pid}/cases", json={"case_id": case.id, "note": "安置面积争议"}))
        assert [c["case_id"] for c in linked["cases"]] == [case.id]
        twice = await town.post(f"/api/v1/projects/{pid}/cases", json={"case_id": case.id})
        assert twice.status_code == 409
        unknown = await town.post(f"/api/v1/projects/{pid}/cases", json={"case_id": "no-such-case"})
        assert unknown.status_code == 404

        async def county_lists_it() -> bool:
            reply = await county.get("/api/v1/projects", params={"with_cases": "true"})
            return reply.status_code == 200 and [p["id"] for p in reply.json()["items"]] == [pid]

        await eventually(county_lists_it, within_s=10, what="the county lists the project with its dispute")
        at_county = await ok(county.get(f"/api/v1/projects/{pid}"))
        assert at_county["node"] == TOWN and at_county["stage"] == "实施"
        [link] = at_county["cases"]
        assert link["case_id"] == case.id and link["receipt_no"] == case.receipt_no and link["category"] == "征地拆迁"
        assert [(h["stage"], h["resolved"]) for h in at_county["hazards"]] == [("决策", True)]
        assert [m["responsible_unit"] for m in at_county["measures"]] == ["镇征迁办"]

        filtered = await ok(county.get("/api/v1/projects", params={"node": TOWN, "stage": "实施", "kind": "拆迁"}))
        assert [p["id"] for p in filtered["items"]] == [pid]
        assert (await ok(county.get("/api/v1/projects", params={"status": "suspended"})))["items"] == []
        not_here = await county.post(f"/api/v1/projects/{pid}/pass", json={"stage": "实施"})
        assert not_here.status_code == 409 and "只能由该中心办理" in not_here.json()["detail"]
        out_of_scope = await town.get("/api/v1/projects", params={"node": COUNTY})
        assert out_of_scope.status_code == 403
