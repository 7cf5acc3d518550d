"""Accounts where they are used, with real nats-servers leaf-linked through cuttable proxies and
each node's HTTP: a town operator created at the county logs in at the town's console while the
town's upstream link is cut; disabling the account at the county takes effect at the town within
seconds of the link carrying it (login and earlier tokens refused); account events a village
forges on its own subjects change nothing anywhere and are dead-lettered where they are read."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import nats
from sqlmodel import select

from fengqiao.divisions import down_subject
from fengqiao.models import DeadLetter
from fengqiao.security import auth, passwords
from fengqiao.v1 import account_pb2
from harness.county import ADMIN_PASSWORD, LeafCounty
from tests.system.leaf_support import COUNTY, TOWN, VILLAGE, leaf_county
from tests.system.test_county_sync import eventually
from tests.system.test_leaf_permissions import tls_county

SIBLING = "371702101002"
PASSWORD = "Town-operator-01"


def base(local: LeafCounty, code: str) -> str:
    return f"http://127.0.0.1:{local[code].http_port}"


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": username, "password": password})


async def token(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    reply = await login(client, username, password)
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


async def holds(local: LeafCounty, code: str, username: str) -> auth.Account | None:
    db = local[code].ctx.db  # type: ignore[union-attr]
    return await db.read(lambda s: auth.load_account(s, username))


async def test_a_town_operator_made_at_the_county_logs_in_at_the_town_with_the_wan_cut_and_disabling_follows(
    tmp_path: Path,
) -> None:
    async with leaf_county(tmp_path) as local:
        async with httpx.AsyncClient(base_url=base(local, COUNTY), timeout=30) as county:
            admin = await token(county, "admin", ADMIN_PASSWORD)
            body = {"username": "zhoujie", "password": PASSWORD, "role": "duty_officer", "node_code": TOWN,
                    "display_name": "周杰"}  # fmt: skip
            created = await county.post("/api/v1/users", json=body, headers=admin)
            assert created.status_code == 201 and created.json()["disabled"] is False
            sent_at = time.monotonic()

            async def arrived() -> bool:
                return await holds(local, TOWN, "zhoujie") is not None

            await eventually(arrived, within_s=30, what="the account at the town")
            print(f"\naccount created at the county, at the town after {time.monotonic() - sent_at:.2f} s")
            at_town = await holds(local, TOWN, "zhoujie")
            assert at_town is not None and (at_town.role, at_town.node_code, at_town.display_name) == (
                "duty_officer", TOWN, "周杰",
            )  # fmt: skip

            await local.cut(TOWN)
            async with httpx.AsyncClient(base_url=base(local, TOWN), timeout=30) as town:
                operator = await token(town, "zhoujie", PASSWORD)  # the WAN is down: the town's own console
                me = await town.get("/api/v1/auth/me", headers=operator)
                assert me.status_code == 200 and (me.json()["here"], me.json()["node_code"]) == (TOWN, TOWN)
                # the town's administrator sees the account and may not change what the county manages
                town_admin = await token(town, "admin", ADMIN_PASSWORD)
                listed = {u["username"]: u for u in (await town.get("/api/v1/users", headers=town_admin)).json()}
                assert listed["zhoujie"]["managed_by"] == COUNTY and listed["admin"]["managed_by"] == TOWN
                refused = await town.post("/api/v1/users/zhoujie/disable", headers=town_admin)
                assert refused.status_code == 403 and "由上级中心 371702 管理" in refused.json()["detail"]
                local.restore(TOWN)

                disabled = await county.post("/api/v1/users/zhoujie/disable", headers=admin)
                assert disabled.status_code == 200 and disabled.json()["disabled"] is True
                disabled_at = time.monotonic()
                message = "账号 zhoujie 已停用，请联系管理员"

                async def refused_at_town() -> bool:
                    reply = await login(town, "zhoujie", PASSWORD)
                    return reply.status_code == 401 and reply.json()["detail"] == message

                await eventually(refused_at_town, within_s=60, what="the disabling at the town")
                print(f"disabled at the county, refused at the town after {time.monotonic() - disabled_at:.2f} s")
                earlier = await town.get("/api/v1/auth/me", headers=operator)  # a token from before
                assert earlier.status_code == 401 and earlier.json()["detail"] == message
                wrong = await login(town, "zhoujie", "Not-the-password-1")
                assert wrong.status_code == 401 and wrong.json()["detail"] == "用户名或密码错误"

            listed = {u["username"]: u for u in (await county.get("/api/v1/users", headers=admin)).json()}
            assert listed["zhoujie"]["disabled"] is True and listed["zhoujie"]["node_code"] == TOWN
            assert listed["zhoujie"]["managed_by"] == COUNTY


def forged(username: str, node_code: str, *, claimed: str) -> bytes:
    """An account event in the name of ``claimed``: an administrator account at ``node_code``."""
    account = account_pb2.OperatorAccount(
        username=username,
        role="county_admin",
        node_code=node_code,
        password_hash=passwords.hash_password("Forged-password-1"),
        version=99,
    )
    return account_pb2.AccountEvent(
        id=str(uuid.uuid4()), node=claimed, actor="admin", created=account
    ).SerializeToString()


async def test_account_events_a_village_forges_change_nothing_and_are_dead_lettered(tmp_path: Path) -> None:
    """As deployed: mTLS leaf links, each child a user allowed only its own subtree's subjects."""
    async with tls_county(tmp_path) as local:
        nc = await nats.connect(local.client_url(VILLAGE))  # on the village's own server
        try:
            js = nc.jetstream()
            own = down_subject(VILLAGE, VILLAGE, "account", "created")
            for subject, data in (
                (own, forged("mole1", VILLAGE, claimed=COUNTY)),  # to itself, as if from the county
                (own, forged("mole2", VILLAGE, claimed=VILLAGE)),  # to itself, in its own name
                (down_subject(VILLAGE, TOWN, "account", "created"), forged("mole3", TOWN, claimed=COUNTY)),  # up
                (down_subject(VILLAGE, SIBLING, "account", "created"), forged("mole4", SIBLING, claimed=COUNTY)),
            ):
                await js.publish(subject, data, headers={"Nats-Msg-Id": str(uuid.uuid4())})
            # On the county's own subject, to reach the county's down stream: the town's server
            # refuses it from the village's leaf connection.
            await nc.publish(down_subject(COUNTY, TOWN, "account", "created"), forged("mole5", TOWN, claimed=COUNTY))
            await nc.flush()
        finally:
            await nc.close()
        db = local[VILLAGE].ctx.db  # type: ignore[union-attr]

        async def letters() -> dict[str, str]:
            rows = await db.read(lambda s: list(s.exec(select(DeadLetter)).all()))
            return {account_pb2.AccountEvent.FromString(r.data).created.username: r.reason for r in rows}

        async def both_dead() -> bool:
            return {"mole1", "mole2"} <= set(await letters())

        await eventually(both_dead, within_s=30, what="dead letters for the forged accounts at the village")
        reasons = await letters()
        assert (
            reasons["mole1"] == f"伪造或越权：账号事件自称由 {COUNTY} 发出，实际发送中心为 {VILLAGE}"
        )  # the decode step
        assert reasons["mole2"] == f"伪造或越权：{VILLAGE} 不是本中心 {VILLAGE} 的上级，不能向本中心下发账号"

        # Genuine accounts sent down from the county afterwards arrive, two hops included; the
        # forged ones are nowhere.
        async with httpx.AsyncClient(base_url=base(local, COUNTY), timeout=30) as county:
            admin = await token(county, "admin", ADMIN_PASSWORD)
            for username, code in (("real-town", TOWN), ("real-village", VILLAGE), ("real-sibling", SIBLING)):
                body = {"username": username, "password": PASSWORD, "role": "grid_worker", "node_code": code}
                assert (await county.post("/api/v1/users", json=body, headers=admin)).status_code == 201

        async def genuine_arrived() -> bool:
            found = [await holds(local, c, u) for u, c in (("real-town", TOWN), ("real-village", VILLAGE),
                                                           ("real-sibling", SIBLING))]  # fmt: skip
            return all(found)

        await eventually(genuine_arrived, within_s=30, what="the genuine accounts at the town and both villages")
        for code in (COUNTY, TOWN, VILLAGE, SIBLING):
            for username in ("mole1", "mole2", "mole3", "mole4", "mole5"):
                assert await holds(local, code, username) is None, (code, username)
        async with httpx.AsyncClient(base_url=base(local, VILLAGE), timeout=30) as village:
            refused = await login(village, "mole1", "Forged-password-1")
            assert refused.status_code == 401 and refused.json()["detail"] == "用户名或密码错误"
            assert (await login(village, "real-village", PASSWORD)).status_code == 200
