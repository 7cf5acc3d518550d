"""Request dependencies: the caller's identity and the node's gRPC stubs."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

import grpc
from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer

from fengqiao.divisions import is_within
from fengqiao.errors import PermissionDenied
from fengqiao.grpcutil import channel
from fengqiao.security import auth
from fengqiao.security.roles import PERMISSION_LABELS, Permission, allows, role_of
from fengqiao.service import NodeContext
from fengqiao.v1 import assessment_pb2_grpc, common_pb2, federation_pb2_grpc, intake_pb2_grpc, routing_pb2_grpc

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=True)


@dataclasses.dataclass
class Stubs:
    """Stubs to this node's services (which may run in other processes)."""

    channels: list[grpc.aio.Channel]
    intake: intake_pb2_grpc.IntakeAsyncStub
    routing: routing_pb2_grpc.RoutingAsyncStub
    federation: federation_pb2_grpc.FederationAsyncStub
    assessment: assessment_pb2_grpc.AssessmentAsyncStub

    @classmethod
    def connect(cls, own: str, *, elsewhere: dict[str, str], timeout_s: float) -> Stubs:
        """Stubs to this process's gRPC server, or to the process named per service."""
        channels: dict[str, grpc.aio.Channel] = {}

        def to(service: str) -> grpc.aio.Channel:
            address = elsewhere.get(service, own)
            if address not in channels:
                channels[address] = channel(address, timeout_s=timeout_s)
            return channels[address]

        intake = intake_pb2_grpc.IntakeStub(to("intake"))
        routing = routing_pb2_grpc.RoutingStub(to("routing"))
        federation = federation_pb2_grpc.FederationStub(to("federation"))
        assessment = assessment_pb2_grpc.AssessmentStub(to("assessment"))
        return cls(list(channels.values()), intake, routing, federation, assessment)


async def node_context(request: Request) -> NodeContext:
    ctx: NodeContext = request.app.state.ctx
    return ctx


async def stubs(request: Request) -> Stubs:
    state = request.app.state
    if state.stubs is None:  # created lazily, inside the server's event loop
        settings = state.ctx.settings
        state.stubs = Stubs.connect(
            state.grpc_address, elsewhere=settings.service_addresses, timeout_s=settings.grpc_call_timeout_s
        )
    result: Stubs = state.stubs
    return result


async def principal(request: Request, token: Annotated[str, Depends(oauth2)]) -> auth.Principal:
    """The caller, from the bearer token; refused unless its scope and this node's overlap."""
    ctx: NodeContext = request.app.state.ctx
    who = auth.read_token(token, secret=ctx.settings.token_secret.get_secret_value(), now=ctx.clock.now())
    # A token outlives neither its account's disabling nor a change of its role or center (a
    # change the managing node sent down counts as soon as it arrived).
    auth.check_current(await ctx.db.read(lambda s: auth.load_account(s, who.username)), who, here=ctx.spec.code)
    here = ctx.spec.code
    if not (is_within(who.node_code, here) or is_within(here, who.node_code)):
        raise PermissionDenied(f"无权访问本中心（{here}）：账号 {who.username} 只能访问 {who.node_code} 及其下级")
    return who


def require_scope(who: auth.Principal, code: str) -> None:
    """Operators see their own node and what lies below it (docs/ARCHITECTURE.md, *Security*)."""
    if not is_within(code, who.node_code):
        raise PermissionDenied(f"无权访问 {code}：账号 {who.username} 只能查看 {who.node_code} 及其下级")


def scope_of(who: auth.Principal, ctx: NodeContext, code: str = "") -> str:
    """The node a read is about: the one named, else the caller's own node (this node, for a caller
    from above it); refused unless it lies in the caller's subtree."""
    target = code or (who.node_code if who.node_code.startswith(ctx.spec.code) else ctx.spec.code)
    require_scope(who, target)
    return target


def require(who: auth.Principal, permission: Permission) -> None:
    """Refuse unless the caller's role grants ``permission``."""
    if not allows(who.role, permission):
        role = role_of(who.role)
        label = role.label if role else who.role
        raise PermissionDenied(f"账号 {who.username}（{label}）无权{PERMISSION_LABELS[permission]}")


def permitted(permission: Permission) -> Callable[[auth.Principal], Awaitable[auth.Principal]]:
    """A dependency: the caller, refused unless its role grants ``permission``."""

    async def check(who: Annotated[auth.Principal, Depends(principal)]) -> auth.Principal:
        require(who, permission)
        return who

    return check


Caller = Annotated[auth.Principal, Depends(principal)]
Services = Annotated[Stubs, Depends(stubs)]
Context = Annotated[NodeContext, Depends(node_context)]
# One alias per permission, so each endpoint states what it needs in its signature.
ReadsCases = Annotated[auth.Principal, Depends(permitted(Permission.CASES_READ))]
SubmitsCases = Annotated[auth.Principal, Depends(permitted(Permission.CASES_SUBMIT))]
UploadsAttachments = Annotated[auth.Principal, Depends(permitted(Permission.ATTACHMENTS_UPLOAD))]
ReadsFigures = Annotated[auth.Principal, Depends(permitted(Permission.FIGURES_READ))]
ReadsDepartments = Annotated[auth.Principal, Depends(permitted(Permission.DEPARTMENTS_READ))]
Directs = Annotated[auth.Principal, Depends(permitted(Permission.DIRECTIVES))]
ReadsJoint = Annotated[auth.Principal, Depends(permitted(Permission.JOINT_READ))]
WorksJoint = Annotated[auth.Principal, Depends(permitted(Permission.JOINT_WORK))]
ManagesJoint = Annotated[auth.Principal, Depends(permitted(Permission.JOINT_MANAGE))]
ReadsProjects = Annotated[auth.Principal, Depends(permitted(Permission.PROJECTS_READ))]
ManagesProjects = Annotated[auth.Principal, Depends(permitted(Permission.PROJECTS_MANAGE))]
ManagesUsers = Annotated[auth.Principal, Depends(permitted(Permission.USERS_MANAGE))]


def page_request(
    page_size: Annotated[int, Query(ge=1, le=500, description="每页条数，1–500")] = 50,
    page_token: Annotated[str, Query(description="上一页返回的 next_page_token，首页留空")] = "",
) -> common_pb2.PageRequest:
    """A list's page as its query asks for it."""
    return common_pb2.PageRequest(page_size=page_size, page_token=page_token)


Page = Annotated[common_pb2.PageRequest, Depends(page_request)]
Direction = Annotated[Literal["in", "out", ""], Query(description="in 收到的、out 发出的，留空为全部")]
