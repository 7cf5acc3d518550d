"""三联 joint cases and 联防 alerts over HTTP, on three running towns (C borders B, not A) and the
county: each town's operator works at their own center; the others' HTTP refuses them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from devtools.natsserver import NatsServer
from tests.gateway.test_dispatch_api import operator
from tests.services.routing.joint.test_joint import COUNTY, A, B, C, three_towns
from tests.system.test_county_sync import eventually


async def test_towns_run_a_joint_case_and_a_risk_alert_over_http_and_a_third_town_is_refused(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    async with (
        three_towns(tmp_path, nats_server.url, database_url) as local,
        operator(local, A) as a,
        operator(local, B) as b,
        operator(local, C) as c,
        operator(local, COUNTY) as county,
    ):
        stranger = await a.post("/api/v1/joint-cases", json={"title": "越界", "invited": [C]})
        assert stranger.status_code == 400 and "不是本镇的相邻乡镇" in stranger.json()["detail"]
        opened = await a.post(
            "/api/v1/joint-cases",
            json={"title": "甲乙两镇交界林地纠纷", "category": "山林土地", "invited": [B]},
        )
        assert opened.status_code == 201, opened.text
        jid = opened.json()["id"]

        async def b_lists_it() -> bool:
            items = (await b.get("/api/v1/joint-cases")).json()["items"]
            return [i["id"] for i in items] == [jid]

        await eventually(b_lists_it, within_s=10, what="B lists the joint case it is invited to")
        no_reason = await b.post(f"/api/v1/joint-cases/{jid}/answer", json={"accept": False})
        assert no_reason.status_code == 400 and "理由" in no_reason.json()["detail"]
        accepted = await b.post(f"/api/v1/joint-cases/{jid}/answer", json={"accept": True, "reason": "同意联调"})
        assert (
            accepted.status_code == 200
            and accepted.json()["participants"][1]["status"] == "JOINT_PARTICIPANT_STATUS_ACCEPTED"
        )
        assert (
            await b.post(f"/api/v1/joint-cases/{jid}/members", json={"name": "赵警官", "unit": "派出所"})
        ).status_code == 200
        assert (await b.post(f"/api/v1/joint-cases/{jid}/notes", json={"text": "已走访乙镇当事人"})).status_code == 200

        async def a_sees_b_accepted() -> bool:
            parts = (await a.get(f"/api/v1/joint-cases/{jid}")).json()["participants"]
            return parts[1]["status"] == "JOINT_PARTICIPANT_STATUS_ACCEPTED"

        await eventually(a_sees_b_accepted, within_s=10, what="B's acceptance reaches A")
        deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
        task = await a.post(
            f"/api/v1/joint-cases/{jid}/tasks", json={"node": B, "title": "调取界桩档案", "deadline": deadline}
        )
        assert task.status_code == 200, task.text
        assert task.json()["tasks"][0]["node"] == B

        # C's operator: refused at A and at the county, and holds nothing of its own.
        assert (await c.get(f"/api/v1/joint-cases/{jid}")).status_code == 404
        assert (await c.get("/api/v1/joint-cases")).json()["items"] == []
        for other in (a, county):
            c_token = c.headers["Authorization"]
            refused = await other.get(f"/api/v1/joint-cases/{jid}", headers={"Authorization": c_token})
            assert refused.status_code == 403 and "无权" in refused.json()["detail"]

        async def b_has_task() -> bool:
            return bool((await b.get(f"/api/v1/joint-cases/{jid}")).json()["tasks"])

        await eventually(b_has_task, within_s=10, what="A's task reaches B")
        done = await b.post(f"/api/v1/joint-cases/{jid}/tasks/T1/complete", json={"result": "档案已调取"})
        assert done.status_code == 200 and done.json()["tasks"][0]["done"]
        early = await b.post(f"/api/v1/joint-cases/{jid}/sign-off", json={})
        assert early.status_code == 200 and early.json()["status"] == "JOINT_CASE_STATUS_OPEN"

        async def a_sees_everything() -> bool:
            return (await a.get(f"/api/v1/joint-cases/{jid}")).json()["event_count"] == 7

        await eventually(a_sees_everything, within_s=10, what="B's events reach A")
        closed = await a.post(f"/api/v1/joint-cases/{jid}/sign-off", json={"comment": "同意办结"})
        assert closed.json()["status"] == "JOINT_CASE_STATUS_CLOSED"

        async def same_timeline() -> bool:
            hashes = set()
            for client in (a, b, county):
                reply = await client.get(f"/api/v1/joint-cases/{jid}/timeline")
                if reply.status_code != 200 or len(reply.json()["entries"]) != 8:
                    return False
                hashes.add(reply.json()["hash"])
            return len(hashes) == 1

        await eventually(same_timeline, within_s=10, what="A, B and the county show one timeline")
        listed = (await county.get("/api/v1/joint-cases", params={"status": "closed"})).json()["items"]
        assert [i["id"] for i in listed] == [jid]

        raised = await a.post(
            "/api/v1/risk-alerts", json={"kind": "boundary_dispute", "title": "交界处两村因放牧起争执", "level": "high"}
        )
        assert raised.status_code == 201 and raised.json()["to_nodes"] == [B]
        assert (await a.post("/api/v1/risk-alerts", json={"kind": "rumour", "title": "x"})).status_code == 422
        alert_id = raised.json()["id"]

        async def b_received() -> bool:
            items = (await b.get("/api/v1/risk-alerts", params={"direction": "in"})).json()["items"]
            return [i["id"] for i in items] == [alert_id]

        await eventually(b_received, within_s=10, what="the risk alert reaches B")
        acked = await b.post(f"/api/v1/risk-alerts/{alert_id}/acknowledge", json={"note": "已安排巡查"})
        assert acked.status_code == 200 and acked.json()["fully_acknowledged"]

        async def a_sees_ack() -> bool:
            items = (await a.get("/api/v1/risk-alerts", params={"direction": "out"})).json()["items"]
            return bool(items) and items[0]["fully_acknowledged"]

        await eventually(a_sees_ack, within_s=10, what="B's acknowledgement reaches A")
        assert (await c.get("/api/v1/risk-alerts")).json()["items"] == []
