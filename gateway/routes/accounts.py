"""Operator accounts over HTTP: who am I (``GET /api/v1/auth/me``), the roles, and the
administrator's ``GET``/``POST /api/v1/users`` and ``POST /api/v1/users/{username}/disable|enable``
(accounts of this node's subtree; an account of a node below is sent down to it,
``fengqiao.security.accounts``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlmodel import Session

from fengqiao.errors import InvalidArgument, NotFound, PermissionDenied
from fengqiao.security import accounts, auth
from fengqiao.security.records import User
from fengqiao.security.roles import GRANTS, LABELS, PERMISSION_LABELS, Role, role_of
from fengqiao.service import NodeContext
from gateway.deps import Caller, Context, ManagesUsers, require_scope

router = APIRouter(prefix="/api/v1", tags=["账号与角色"])

RoleName = Literal["grid_worker", "mediator", "duty_officer", "county_admin", "province_readonly"]


class Me(BaseModel):
    username: str
    role: str = Field(description="角色代码")
    role_label: str = Field(description="角色名称")
    node_code: str = Field(description="账号所属中心（可访问该中心及其下级）")
    department: str = Field("", description="所属部门（部门/调解员：只见本部门承办的案件）")
    here: str = Field(description="本节点行政区划代码")
    here_name: str = Field(description="本节点名称")
    permissions: list[str] = Field(description="本角色的权限")


class UserIn(BaseModel):
    """新建或重置操作员账号。"""

    username: str = Field(min_length=1, max_length=64, description="用户名")
    password: str = Field(min_length=1, max_length=200, description="初始密码（至少 10 位）")
    role: RoleName = Field(description="grid_worker 网格员、mediator 部门/调解员、duty_officer 中心值班员、"
                           "county_admin 县级管理员、province_readonly 省级只读")  # fmt: skip
    node_code: str = Field(description="所属中心的行政区划代码（本节点或其下级）")
    display_name: str = Field("", max_length=100, description="姓名")
    department: str = Field("", max_length=40, description="所属部门（部门/调解员必填，如 司法所；其他角色不填）")


class UserOut(BaseModel):
    username: str
    role: str
    role_label: str
    node_code: str
    display_name: str
    department: str = ""
    disabled: bool = Field(False, description="已停用：不能登录，已签发的令牌也不再有效")
    managed_by: str = Field(description="管理该账号的中心：只有该中心能修改、停用它（上级下发的账号为上级）")


@router.get("/auth/me", response_model=Me, summary="当前登录账号：角色、所属中心与权限")
async def me(who: Caller, ctx: Context) -> Me:
    role = role_of(who.role)
    return Me(
        username=who.username,
        role=who.role,
        role_label=role.label if role else who.role,
        node_code=who.node_code,
        department=who.department,
        here=ctx.spec.code,
        here_name=ctx.spec.name,
        permissions=sorted(GRANTS[role]) if role else [],
    )


@router.get("/roles", summary="角色及其权限一览")
async def roles(who: Caller) -> dict[str, Any]:
    return {
        "items": [
            {"role": r.value, "label": LABELS[r], "permissions": [PERMISSION_LABELS[p] for p in sorted(GRANTS[r])]}
            for r in Role
        ]
    }


def _out(user: auth.Account, here: str) -> UserOut:
    role = role_of(user.role)
    return UserOut(
        username=user.username,
        role=user.role,
        role_label=role.label if role else user.role,
        node_code=user.node_code,
        display_name=user.display_name,
        department=user.department,
        disabled=user.disabled,
        managed_by=user.managed_by or here,
    )


@router.get("/users", response_model=list[UserOut], summary="本节点的操作员账号（管理员）")
async def list_users(who: ManagesUsers, ctx: Context) -> list[UserOut]:
    users = await ctx.db.run(lambda s: auth.list_users(s, within=who.node_code))
    return [_out(u, ctx.spec.code) for u in users]


@router.post("/users", status_code=201, response_model=UserOut, summary="新建或重置操作员账号（管理员，限本辖区）")
async def add_user(body: UserIn, who: ManagesUsers, ctx: Context) -> UserOut:
    if not ctx.topology.knows(body.node_code) or not body.node_code.startswith(ctx.spec.code):
        raise InvalidArgument("node_code", f"{body.node_code} 不是本节点（{ctx.spec.code}）或其下级中心")
    require_scope(who, body.node_code)
    auth.check_new_password(body.password)

    def save(session: Session) -> UserOut:
        existing = session.get(User, body.username)
        if existing is not None and not existing.node_code.startswith(who.node_code):
            raise PermissionDenied(f"账号 {body.username} 不在您的辖区内，不能修改")
        accounts.save(
            session,
            here=ctx.spec.code,
            actor=who.username,
            username=body.username,
            password=body.password,
            role=body.role,
            node_code=body.node_code,
            display_name=body.display_name,
            department=body.department,
            now=ctx.clock.now(),
        )
        account = auth.load_account(session, body.username)
        assert account is not None
        return _out(account, ctx.spec.code)

    result: UserOut = await ctx.db.run(save)
    ctx.outbox_written()  # an account of a node below goes down to it now
    return result


Username = Annotated[str, Path(min_length=1, max_length=64, description="用户名")]


@router.post("/users/{username}/disable", response_model=UserOut, summary="停用操作员账号（管理员，限本辖区）")
async def disable_user(username: Username, who: ManagesUsers, ctx: Context) -> UserOut:
    return await _set_disabled(username, who, ctx, disabled=True)


@router.post("/users/{username}/enable", response_model=UserOut, summary="启用已停用的操作员账号（管理员，限本辖区）")
async def enable_user(username: Username, who: ManagesUsers, ctx: Context) -> UserOut:
    return await _set_disabled(username, who, ctx, disabled=False)


async def _set_disabled(username: str, who: auth.Principal, ctx: NodeContext, *, disabled: bool) -> UserOut:
    def save(session: Session) -> UserOut:
        account = auth.load_account(session, username)
        if account is None:
            raise NotFound(f"账号 {username} 不存在")
        require_scope(who, account.node_code)
        if account.username == who.username:
            raise InvalidArgument("username", "不能停用或启用自己的账号")
        accounts.set_disabled(
            session, here=ctx.spec.code, actor=who.username, username=username, disabled=disabled, now=ctx.clock.now()
        )
        changed = auth.load_account(session, username)
        assert changed is not None
        return _out(changed, ctx.spec.code)

    result: UserOut = await ctx.db.run(save)
    ctx.outbox_written()
    return result
