"""Roles and scope at a running node: every endpoint refuses a caller outside its node's subtree and
a role without the permission it needs; personal data is masked for the roles that must not see it."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from fengqiao.db import Database
from fengqiao.security import auth
from fengqiao.security.roles import GRANTS, STEP_PERMISSIONS, Permission, Role
from gateway.routes.steps import STEPS
from harness.county import ADMIN_PASSWORD, TOKEN_SECRET, LocalCounty
from host import cli

VILLAGE = "371702101001"
SIBLING = "371702101002"  # the next village: outside this node's subtree
PASSWORD = "Role-test-pw-01"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# For every authenticated endpoint: a role refused for want of permission (None: every role may call it).
REFUSED: dict[tuple[str, str], Role | None] = {
    ("GET", "/api/v1/auth/me"): None,
    ("GET", "/api/v1/roles"): None,
    ("GET", "/api/v1/users"): Role.DUTY_OFFICER,
    ("POST", "/api/v1/users"): Role.DUTY_OFFICER,
    ("POST", "/api/v1/users/{username}/disable"): Role.DUTY_OFFICER,
    ("POST", "/api/v1/users/{username}/enable"): Role.DUTY_OFFICER,
    ("GET", "/api/v1/nodes"): None,
    ("GET", "/api/v1/vocabulary"): None,
    ("POST", "/api/v1/cases"): Role.MEDIATOR,
    ("GET", "/api/v1/cases"): Role.PROVINCE_READONLY,
    ("GET", "/api/v1/cases/{case_id}"): Role.PROVINCE_READONLY,
    ("GET", "/api/v1/cases/{case_id}/events"): Role.PROVINCE_READONLY,
    ("POST", "/api/v1/cases/{case_id}/{step}"): Role.GRID_WORKER,
    ("POST", "/api/v1/attachments"): Role.PROVINCE_READONLY,
    ("GET", "/api/v1/attachments/{sha256}"): Role.PROVINCE_READONLY,
    ("GET", "/api/v1/departments"): Role.GRID_WORKER,
    ("GET", "/api/v1/directives"): Role.MEDIATOR,
    ("POST", "/api/v1/directives"): Role.GRID_WORKER,
    ("POST", "/api/v1/directives/{directive_id}/{action}"): Role.MEDIATOR,
    ("GET", "/api/v1/nodes/{code}/stats"): None,
    ("GET", "/api/v1/rankings/departments"): None,
    ("GET", "/api/v1/rankings/grid-workers"): None,
    ("GET", "/api/v1/alerts"): None,
    ("GET", "/api/v1/feed/provincial"): None,
    ("GET", "/api/v1/reports/monthly"): None,
    ("GET", "/api/v1/projects"): Role.MEDIATOR,
    ("POST", "/api/v1/projects"): Role.GRID_WORKER,
    ("GET", "/api/v1/projects/{project_id}"): Role.PROVINCE_READONLY,
    ("POST", "/api/v1/projects/{project_id}/assess"): Role.MEDIATOR,
    ("POST", "/api/v1/projects/{project_id}/pass"): Role.MEDIATOR,
    ("POST", "/api/v1/projects/{project_id}/measures/{measure_id}/complete"): Role.MEDIATOR,
    ("POST", "/api/v1/projects/{project_id}/hazards/{hazard_id}/resolve"): Role.MEDIATOR,
    ("POST", "/api/v1/projects/{project_id}/cases"): Role.GRID_WORKER,
    ("GET", "/api/v1/joint-cases"): Role.GRID_WORKER,
    ("POST", "/api/v1/joint-cases"): Role.MEDIATOR,
    ("GET", "/api/v1/joint-cases/{joint_id}"): Role.PROVINCE_READONLY,
    ("GET", "/api/v1/joint-cases/{joint_id}/timeline"): Role.GRID_WORKER,
    ("POST", "/api/v1/joint-cases/{joint_id}/answer"): Role.MEDIATOR,
    ("POST", "/api/v1/joint-cases/{joint_id}/notes"): Role.GRID_WORKER,
    ("POST", "/api/v1/joint-cases/{joint_id}/members"): Role.MEDIATOR,
    ("POST", "/api/v1/joint-cases/{joint_id}/tasks"): Role.MEDIATOR,
    ("POST", "/api/v1/joint-cases/{joint_id}/tasks/{task_id}/complete"): Role.PROVINCE_READONLY,
    ("POST", "/api/v1/joint-cases/{joint_id}/sign-off"): Role.MEDIATOR,
    ("GET", "/api/v1/risk-alerts"): Role.PROVINCE_READONLY,
    ("POST", "/api/v1/risk-alerts"): Role.MEDIATOR,
    ("POST", "/api/v1/risk-alerts/{alert_id}/acknowledge"): Role.GRID_WORKER,
}
PUBLIC = {("POST", "/api/v1/auth/token"), ("GET", "/healthz"), ("GET", "/api/v1/feed/provincial/key")}
CASE = {
    "client_request_id": "roles-0001",
    "channel": "网格员上报",
    "category": "邻里",
    "description": "邻居堆放柴草占用通道，双方争执。",
    "parties": [{"name": "赵六", "id_number": "37170219850312004X", "phone": "13912345678", "role": "申请人"}],
}


def test_the_roles_grant_what_the_design_says() -> None:
    assert GRANTS[Role.PROVINCE_READONLY] == {Permission.FIGURES_READ}
    assert GRANTS[Role.COUNTY_ADMIN] == set(Permission)
    assert Permission.CASES_DIRECT not in GRANTS[Role.MEDIATOR] | GRANTS[Role.GRID_WORKER]
    assert all(Permission.PII_IN_LISTS not in GRANTS[r] for r in Role if r is not Role.COUNTY_ADMIN)
    assert set(STEP_PERMISSIONS) == set(STEPS)


def _url(path: str) -> str:
    fill = {"step": "triage", "action": "acknowledge", "code": VILLAGE, "sha256": "0" * 64}
    return re.sub(r"{(\w+)}", lambda m: fill.get(m.group(1), "x"), path)


async def _login(client: httpx.AsyncClient, username: str, password: str) -> str:
    reply = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["access_token"]
    return token


@pytest.fixture
async def tokens(village: LocalCounty) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A client of the village node and a token per role (and one for a sibling village's admin)."""
    node = village[VILLAGE]
    assert node.ctx is not None
    users = [(r.value, r.value, VILLAGE) for r in Role if r is not Role.PROVINCE_READONLY]
    users += [("province_readonly", "province_readonly", "37"), ("sibling", "county_admin", SIBLING)]
    for username, role, code in users:
        department = "司法所" if role == Role.MEDIATOR else ""
        await node.ctx.db.run(
            lambda s, u=username, r=role, c=code, d=department: auth.ensure_user(
                s, username=u, password=PASSWORD, role=r, node_code=c, department=d
            )
        )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http_port}") as client:
        found = {u: await _login(client, u, PASSWORD) for u, _, _ in users}
        found["admin"] = await _login(client, "admin", ADMIN_PASSWORD)
        yield client, found


@sqlite_only
async def test_every_endpoint_refuses_other_subtrees_and_roles_without_the_permission(
    tokens: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, token = tokens
    schema = (await client.get("/openapi.json")).json()
    operations = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops if p.startswith(("/api/", "/h"))}
    assert operations - PUBLIC == set(REFUSED), "add new endpoints to REFUSED"
    for method, path in sorted(REFUSED):
        sibling = await client.request(
            method, _url(path), json={}, headers={"Authorization": f"Bearer {token['sibling']}"}
        )
        assert sibling.status_code == 403, (method, path, sibling.text)
        assert "无权访问本中心" in sibling.json()["detail"]
        role = REFUSED[(method, path)]
        if role is not None:
            bearer = {"Authorization": f"Bearer {token[role.value]}"}
            refused = await client.request(method, _url(path), json={}, headers=bearer)
            assert refused.status_code == 403, (method, path, role, refused.text)
            assert "无权" in refused.json()["detail"]


@sqlite_only
async def test_each_role_does_its_own_work_and_sees_personal_data_only_as_allowed(
    tokens: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, token = tokens

    def as_(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token[who]}"}

    created = await client.post("/api/v1/cases", json=CASE, headers=as_("grid_worker"))
    assert created.status_code == 201, created.text
    case_id = created.json()["case"]["id"]
    listed = (await client.get("/api/v1/cases", headers=as_("grid_worker"))).json()["items"]
    assert listed[0]["parties"][0] == {"name": "赵*", "id_number": "371702********004X", "phone": "139****5678",
                                       "role": "申请人"}  # fmt: skip
    admin_list = (await client.get("/api/v1/cases", headers=as_("admin"))).json()["items"]
    assert admin_list[0]["parties"][0]["phone"] == "13912345678"
    detail = (await client.get(f"/api/v1/cases/{case_id}", headers=as_("grid_worker"))).json()
    assert detail["parties"][0]["phone"] == "13912345678"  # the reporter may call the parties

    refused = await client.post(
        f"/api/v1/cases/{case_id}/triage", json={"category": "邻里"}, headers=as_("grid_worker")
    )
    assert (
        refused.status_code == 403
        and refused.json()["detail"] == "账号 grid_worker（网格员）无权研判、交办、审核、办结、上报案件"
    )
    triaged = await client.post(
        f"/api/v1/cases/{case_id}/triage", json={"category": "邻里", "response_class": 1}, headers=as_("duty_officer")
    )
    assert triaged.status_code == 200, triaged.text
    slip = {"slip": {"department": "司法所", "requirement": "入户调解"}}
    assert (await client.post(f"/api/v1/cases/{case_id}/assign", json=slip, headers=as_("mediator"))).status_code == 403
    assert (await client.post(f"/api/v1/cases/{case_id}/assign", json=slip, headers=as_("duty_officer"))).is_success
    signed = await client.post(
        f"/api/v1/cases/{case_id}/acknowledge", json={"department": "司法所"}, headers=as_("mediator")
    )
    assert signed.status_code == 200 and signed.json()["status"] == "CASE_STATUS_ACKNOWLEDGED"

    assert (await client.get(f"/api/v1/nodes/{VILLAGE}/stats", headers=as_("province_readonly"))).status_code == 200
    assert (await client.get(f"/api/v1/cases/{case_id}", headers=as_("province_readonly"))).status_code == 403
    me = (await client.get("/api/v1/auth/me", headers=as_("mediator"))).json()
    assert me["role_label"] == "部门/调解员" and "cases.handle" in me["permissions"] and me["here"] == VILLAGE


@sqlite_only
async def test_the_administrator_manages_accounts_within_its_subtree(
    tokens: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, token = tokens
    admin = {"Authorization": f"Bearer {token['admin']}"}
    body = {"username": "wangfang", "password": "Grid-worker-01", "role": "grid_worker", "node_code": VILLAGE,
            "display_name": "王芳"}  # fmt: skip
    created = await client.post("/api/v1/users", json=body, headers=admin)
    assert created.status_code == 201 and created.json()["role_label"] == "网格员"
    assert await _login(client, "wangfang", "Grid-worker-01")
    weak = await client.post("/api/v1/users", json={**body, "password": "12345678901"}, headers=admin)
    assert weak.status_code == 400 and "密码" in weak.json()["detail"]
    elsewhere = await client.post("/api/v1/users", json={**body, "node_code": SIBLING}, headers=admin)
    assert elsewhere.status_code == 400
    unknown = await client.post("/api/v1/users", json={**body, "role": "boss"}, headers=admin)
    assert unknown.status_code == 422
    taken = await client.post("/api/v1/users", json={**body, "username": "sibling"}, headers=admin)
    assert taken.status_code == 403  # an account of another subtree is not this administrator's to reset
    names = {u["username"] for u in (await client.get("/api/v1/users", headers=admin)).json()}
    assert "wangfang" in names and "sibling" not in names


@sqlite_only
async def test_the_administrator_disables_and_enables_accounts_and_a_disabled_one_is_refused_at_once(
    tokens: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, token = tokens
    admin = {"Authorization": f"Bearer {token['admin']}"}
    grid = {"Authorization": f"Bearer {token['grid_worker']}"}
    assert (await client.get("/api/v1/auth/me", headers=grid)).status_code == 200
    disabled = await client.post("/api/v1/users/grid_worker/disable", headers=admin)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    message = "账号 grid_worker 已停用，请联系管理员"
    earlier = await client.get("/api/v1/auth/me", headers=grid)  # its token from before
    assert earlier.status_code == 401 and earlier.json()["detail"] == message
    login = await client.post("/api/v1/auth/token", data={"username": "grid_worker", "password": PASSWORD})
    assert login.status_code == 401 and login.json()["detail"] == message
    wrong = await client.post("/api/v1/auth/token", data={"username": "grid_worker", "password": "Wrong-pw-0001"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "用户名或密码错误"  # nothing told without it
    enabled = await client.post("/api/v1/users/grid_worker/enable", headers=admin)
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    assert await _login(client, "grid_worker", PASSWORD)

    unknown = await client.post("/api/v1/users/nobody/disable", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["detail"] == "账号 nobody 不存在"
    itself = await client.post("/api/v1/users/admin/disable", headers=admin)
    assert itself.status_code == 400 and "不能停用或启用自己的账号" in itself.json()["detail"]
    elsewhere = await client.post("/api/v1/users/sibling/disable", headers=admin)
    assert elsewhere.status_code == 403 and "只能查看 371702101001 及其下级" in elsewhere.json()["detail"]


@sqlite_only
async def test_a_token_of_an_earlier_role_is_refused(tokens: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    client, token = tokens
    admin = {"Authorization": f"Bearer {token['admin']}"}
    body = {"username": "duty_officer", "password": PASSWORD, "role": "grid_worker", "node_code": VILLAGE}
    assert (await client.post("/api/v1/users", json=body, headers=admin)).status_code == 201
    stale = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token['duty_officer']}"})
    assert stale.status_code == 401
    assert stale.json()["detail"] == "账号 duty_officer 的角色、所属中心或部门已变更，请重新登录"


@sqlite_only
async def test_an_expired_token_is_refused(village: LocalCounty) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=9)
    principal = auth.Principal("admin", "county_admin", VILLAGE)
    stale = auth.issue_token(principal, secret=TOKEN_SECRET, ttl=dt.timedelta(hours=8), now=old)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{village[VILLAGE].http_port}") as client:
        reply = await client.get("/api/v1/cases", headers={"Authorization": f"Bearer {stale}"})
    assert reply.status_code == 401 and reply.json()["detail"] == "登录已过期，请重新登录"


def test_the_cli_adds_an_operator_with_a_hashed_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FQ_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("FQ_DATABASE_URL", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("Duty-officer-01\n"))
    argv = ["user", "add", "--code", "371702101", "--username", "li", "--role", "duty_officer", "--password-stdin"]
    assert cli.main(argv) == 0
    db = Database(f"sqlite:///{tmp_path / '371702101.db'}")
    try:
        who = db.transaction(lambda s: auth.authenticate(s, username="li", password="Duty-officer-01"))
    finally:
        db.close()
    assert who == auth.Principal("li", "duty_officer", "371702101")
