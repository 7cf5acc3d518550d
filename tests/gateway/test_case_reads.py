"""Who reads which cases, and how much of them, at a running town: a 部门/调解员 sees and acts on
only its department's cases; every case list is masked (address to the village, phones and ID
numbers nowhere); every read of personal data in full is in the audit trail."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, select

from devtools.natsserver import NatsServer
from fengqiao.db import Database
from fengqiao.security import auth
from fengqiao.security.audit import AuditRecord
from harness.county import ADMIN_PASSWORD, TOKEN_SECRET
from host import cli
from tests.conftest import running_county

TOWN = "371702101"
VILLAGE = "371702101001"
PASSWORD = "Case-reads-pw-01"
PHONE, ID_NUMBER, LANDLINE = "13912345678", "37170219850312004X", "0530-5551234"
ADDRESS = "山东省菏泽市测试1镇前王村三组12号"
STREET = "三组12号"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

USERS = {  # username: (role, department)
    "duty": ("duty_officer", ""),
    "grid": ("grid_worker", ""),
    "sifa": ("mediator", "司法所"),
    "paichu": ("mediator", "派出所"),
}


def _case(n: int) -> dict[str, object]:
    return {
        "client_request_id": f"case-reads-{n}",
        "division_code": VILLAGE,
        "channel": "群众来访",
        "category": "邻里",
        "parties": [{"name": "赵六", "id_number": ID_NUMBER, "phone": PHONE, "role": "申请人"}],
        "location": {"address": ADDRESS, "latitude": 35.23456, "longitude": 115.44321},
        "description": f"赵六（电话 {PHONE}，身份证 {ID_NUMBER}）反映邻居占道，另可拨 {LANDLINE}。",
    }


class Town:
    """A client of the running town with a token per operator."""

    def __init__(self, client: httpx.AsyncClient, tokens: dict[str, str], db: Database) -> None:
        self.client, self.tokens, self.db = client, tokens, db

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def get(self, who: str, path: str) -> httpx.Response:
        return await self.client.get(path, headers=self.as_(who))

    async def step(self, who: str, case_id: str, step: str, body: dict[str, object]) -> httpx.Response:
        return await self.client.post(f"/api/v1/cases/{case_id}/{step}", json=body, headers=self.as_(who))

    async def pii_reads(self) -> list[tuple[str, str, str]]:
        """(actor, case id, view) of every ``pii.read`` in the audit trail."""

        def read(s: Session) -> list[tuple[str, str, str]]:
            rows = s.exec(select(AuditRecord).where(col(AuditRecord.action) == "pii.read")).all()
            return [(r.actor, r.subject, r.detail) for r in rows]

        return await self.db.read(read)


async def _login(client: httpx.AsyncClient, username: str, password: str) -> str:
    reply = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["access_token"]
    return token


@pytest.fixture
async def town(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> AsyncIterator[tuple[Town, dict[str, str]]]:
    """The town 371702101 running alone, its operators logged in, and three cases taken in there:
    ``sifa1`` and ``sifa2`` assigned to 司法所, ``paichu`` to 派出所 (taken in between them)."""
    async with running_county(tmp_path, nats_server.url, database_url, TOWN, towns=1, villages=1) as county:
        node = county[TOWN]
        assert node.ctx is not None
        for username, (role, department) in USERS.items():
            await node.ctx.db.run(
                lambda s, u=username, r=role, d=department: auth.ensure_user(
                    s, username=u, password=PASSWORD, role=r, node_code=TOWN, department=d
                )
            )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http_port}") as client:
            tokens = {u: await _login(client, u, PASSWORD) for u in USERS}
            tokens["admin"] = await _login(client, "admin", ADMIN_PASSWORD)
            town = Town(client, tokens, node.ctx.db)
            cases = {}
            for n, department in enumerate(("司法所", "派出所", "司法所")):
                created = await client.post("/api/v1/cases", json=_case(n), headers=town.as_("duty"))
                assert created.status_code == 201 and PHONE not in created.text, created.text
                case_id = created.json()["case"]["id"]
                triaged = await town.step("duty", case_id, "triage", {"category": "邻里", "response_class": 1})
                assert triaged.status_code == 200, triaged.text
                slip = {"slip": {"department": department, "requirement": f"联系申请人 {PHONE} 上门调解"}}
                assert (await town.step("duty", case_id, "assign", slip)).status_code == 200
                cases[("sifa1", "paichu", "sifa2")[n]] = case_id
            yield town, cases


@sqlite_only
async def test_a_mediator_of_the_judicial_office_cannot_see_or_sign_a_case_assigned_to_the_police(
    town: tuple[Town, dict[str, str]],
) -> None:
    t, cases = town
    listed = (await t.get("sifa", "/api/v1/cases")).json()
    assert [c["id"] for c in listed["items"]] == [cases["sifa2"], cases["sifa1"]]
    assert [c["id"] for c in (await t.get("paichu", "/api/v1/cases")).json()["items"]] == [cases["paichu"]]

    for path in (f"/api/v1/cases/{cases['paichu']}", f"/api/v1/cases/{cases['paichu']}/events"):
        refused = await t.get("sifa", path)
        assert refused.status_code == 403
        assert (
            "只能查看和办理本部门承办的案件" in refused.json()["detail"] and "交办给派出所" in refused.json()["detail"]
        )
    signed = await t.step("sifa", cases["paichu"], "acknowledge", {"department": "司法所"})
    assert signed.status_code == 403 and "交办给派出所" in signed.json()["detail"]
    on_behalf = await t.step("sifa", cases["sifa1"], "acknowledge", {"department": "派出所"})
    assert (
        on_behalf.status_code == 403
        and on_behalf.json()["detail"] == "账号 sifa（司法所）只能以本部门名义签收，不能代派出所签收"
    )

    assert (await t.get("sifa", f"/api/v1/cases/{cases['sifa1']}")).status_code == 200
    own = await t.step("sifa", cases["sifa1"], "acknowledge", {})
    assert own.status_code == 200 and own.json()["status"] == "CASE_STATUS_ACKNOWLEDGED"
    history = (await t.get("sifa", f"/api/v1/cases/{cases['sifa1']}/events")).json()["items"]
    assert history[-1]["acknowledged"] == {"department": "司法所"}
    started = await t.step("paichu", cases["sifa1"], "start", {})
    assert started.status_code == 403  # the police may not act on the judicial office's case
    assert (await t.get("paichu", f"/api/v1/cases/{cases['paichu']}")).status_code == 200
    everything = (await t.get("duty", "/api/v1/cases")).json()["items"]
    assert len(everything) == 3  # the duty officer is not limited to a department


@sqlite_only
async def test_a_department_list_pages_through_the_centers_cases_without_skipping_any(
    town: tuple[Town, dict[str, str]],
) -> None:
    t, cases = town
    first = (await t.get("sifa", "/api/v1/cases?page_size=1")).json()
    assert [c["id"] for c in first["items"]] == [cases["sifa2"]] and first["next_page_token"]
    second = (await t.get("sifa", f"/api/v1/cases?page_size=1&page_token={first['next_page_token']}")).json()
    assert [c["id"] for c in second["items"]] == [cases["sifa1"]]
    if second["next_page_token"]:
        rest = await t.get("sifa", f"/api/v1/cases?page_size=1&page_token={second['next_page_token']}")
        assert rest.json()["items"] == []


@sqlite_only
async def test_a_mediator_account_needs_a_department(town: tuple[Town, dict[str, str]]) -> None:
    t, _ = town
    body = {"username": "tiaojie", "password": "Mediator-pw-01", "role": "mediator", "node_code": TOWN}
    missing = await t.client.post("/api/v1/users", json=body, headers=t.as_("admin"))
    assert missing.status_code == 400 and "须指定所属部门" in missing.json()["detail"]
    stray = await t.client.post(
        "/api/v1/users", json={**body, "role": "duty_officer", "department": "司法所"}, headers=t.as_("admin")
    )
    assert stray.status_code == 400 and "只有部门/调解员账号属于部门" in stray.json()["detail"]
    created = await t.client.post("/api/v1/users", json={**body, "department": "综治办"}, headers=t.as_("admin"))
    assert created.status_code == 201 and created.json()["department"] == "综治办"
    token = await _login(t.client, "tiaojie", "Mediator-pw-01")
    me = (await t.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert me["department"] == "综治办"
    listed = (await t.client.get("/api/v1/users", headers=t.as_("admin"))).json()
    assert {u["username"]: u["department"] for u in listed}["sifa"] == "司法所"
    # A token issued before the account had a department sees nothing, and says why: it no longer
    # matches the account (fengqiao.security.auth.check_current).
    old = auth.issue_token(
        auth.Principal("sifa", "mediator", TOWN),
        secret=TOKEN_SECRET,
        ttl=dt.timedelta(hours=1),
        now=dt.datetime.now(dt.UTC),
    )
    refused = await t.client.get("/api/v1/cases", headers={"Authorization": f"Bearer {old}"})
    assert refused.status_code == 401
    assert refused.json()["detail"] == "账号 sifa 的角色、所属中心或部门已变更，请重新登录"


async def test_case_lists_show_no_full_address_phone_or_id_number_and_full_reads_are_audited(
    town: tuple[Town, dict[str, str]],
) -> None:
    t, cases = town
    secrets = (PHONE, ID_NUMBER, LANDLINE.split("-")[1], STREET, "赵六")
    for who in ("duty", "grid", "sifa"):
        reply = await t.get(who, "/api/v1/cases")
        assert reply.status_code == 200 and reply.json()["items"], reply.text
        leaked = [s for s in secrets if s in reply.text]
        assert not leaked, (who, leaked)
        first = reply.json()["items"][0]
        assert first["location"]["address"] == "山东省菏泽市测试1镇前王村***"
        assert first["location"]["latitude"] == 35.23 and "139****5678" in first["description"]
    assert await t.pii_reads() == []  # masked lists are no reads of personal data

    full_list = await t.get("admin", "/api/v1/cases")  # the county administrator sees lists in full
    assert PHONE in full_list.text and ADDRESS in full_list.text
    detail = await t.get("duty", f"/api/v1/cases/{cases['paichu']}")
    assert detail.json()["parties"][0]["phone"] == PHONE
    timeline = await t.get("sifa", f"/api/v1/cases/{cases['sifa1']}/events")
    assert timeline.status_code == 200

    reads = await t.pii_reads()
    assert sorted((actor, subject) for actor, subject, detail in reads if '"list"' in detail) == sorted(
        ("admin", case_id) for case_id in cases.values()
    )
    assert ("duty", cases["paichu"], '{"view":"case"}') in reads
    assert ("sifa", cases["sifa1"], '{"view":"timeline"}') in reads
    assert len(reads) == 5

    again = await t.client.post("/api/v1/cases", json=_case(0), headers=t.as_("grid"))  # a retried intake
    assert again.json()["duplicate"] and again.json()["case"]["id"] == cases["sifa1"] and PHONE not in again.text
    answered = await t.step("sifa", cases["sifa2"], "acknowledge", {})
    assert answered.status_code == 200 and PHONE not in answered.text and STREET not in answered.text


def test_the_cli_adds_a_mediator_with_its_department(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FQ_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("FQ_DATABASE_URL", raising=False)
    argv = ["user", "add", "--code", TOWN, "--username", "wang", "--role", "mediator", "--password-stdin"]
    monkeypatch.setattr("sys.stdin", io.StringIO("Mediator-pw-01\n"))
    assert cli.main(argv) == 1  # a mediator without a department is refused
    monkeypatch.setattr("sys.stdin", io.StringIO("Mediator-pw-01\n"))
    assert cli.main([*argv, "--department", "司法所"]) == 0
    db = Database(f"sqlite:///{tmp_path / f'{TOWN}.db'}")
    try:
        who = db.transaction(lambda s: auth.authenticate(s, username="wang", password="Mediator-pw-01"))
    finally:
        db.close()
    assert who == auth.Principal("wang", "mediator", TOWN, "司法所")
