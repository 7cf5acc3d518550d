"""Operator accounts where they are used (docs/ARCHITECTURE.md, *Security*).

An account belongs to a center (its ``node_code``) and is **managed** by the node where it was
created: the county's administrator may create a town operator at the county. That node alone
changes the account — create, change role, department or name, reset the password, disable,
enable — and each change, in the same transaction, bumps the account's ``version``, is chained
in the audit trail and, when the account belongs to a node below, queued in the outbox as an
``AccountEvent`` on the managing node's down subject of kind ``account`` addressed to the
account's node. The event carries the whole account after the change with its password hash
(never the password), so the receiving node keeps the highest version it has seen: a change
arriving late, twice or out of order never overwrites a later one. So a town operator created at
the county logs in at the town's console while the WAN is down, and disabling the account at the
county takes effect at the town as soon as the link carries it.

Who may send an account down is checked in the receiver's decode step (federation's
``consumers``); here are the writes on both sides.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from sqlmodel import Session

from fengqiao import outbox
from fengqiao.divisions import down_subject, is_within, tier_of
from fengqiao.errors import FengqiaoError, NotFound, PermissionDenied
from fengqiao.security import audit, auth
from fengqiao.security.records import AccountState, User, UserDepartment
from fengqiao.v1 import account_pb2

KIND = "account"
"""The subject kind of account events (``fq.<publisher>.down.<town>.<village>.account.<change>``)."""

Change = Literal["created", "changed", "password_reset", "disabled", "enabled"]
CHANGES: tuple[Change, ...] = ("created", "changed", "password_reset", "disabled", "enabled")
LABELS: dict[str, str] = {
    "created": "新建",
    "changed": "变更角色或信息",
    "password_reset": "重置密码",
    "disabled": "停用",
    "enabled": "启用",
}


def aggregate(username: str) -> str:
    """What the audit trail and the outbox name an account by (its changes go out in order)."""
    return f"account:{username}"


def state_of(session: Session, username: str) -> AccountState | None:
    """The account's managing node, version and disabled flag (None: made here, version 0)."""
    return session.get(AccountState, username)


def managed_here(state: AccountState | None, here: str) -> bool:
    """True when ``here`` manages the account (accounts without a state row are this node's own)."""
    return state is None or state.managed_by == here


def _refuse_unless_managed_here(state: AccountState | None, *, username: str, here: str) -> None:
    if not managed_here(state, here):
        assert state is not None
        raise PermissionDenied(f"账号 {username} 由上级中心 {state.managed_by} 管理，请在该中心修改或停用")


def save(
    session: Session,
    *,
    here: str,
    actor: str,
    username: str,
    password: str,
    role: str,
    node_code: str,
    display_name: str = "",
    department: str = "",
    now: dt.datetime,
) -> Change | None:
    """Create the account or change it (``auth.ensure_user``) at the node ``here`` that manages
    it; record the change and send it down to the account's node. Returns what changed (None when
    nothing did). Refused for an account managed by another node."""
    state = state_of(session, username)
    if session.get(User, username) is not None:
        _refuse_unless_managed_here(state, username=username, here=here)
    before = auth.load_account(session, username)
    auth.ensure_user(
        session, username=username, password=password, role=role, node_code=node_code,
        display_name=display_name, department=department,
    )  # fmt: skip
    session.flush()
    after = auth.load_account(session, username)
    assert after is not None
    change: Change | None
    if before is None:
        change = "created"
    elif before.password_hash != after.password_hash:
        change = "password_reset"
    elif (before.role, before.node_code, before.department, before.display_name) != (
        after.role, after.node_code, after.department, after.display_name,
    ):  # fmt: skip
        change = "changed"
    else:
        change = None
    if change is None:
        return None
    state = _bump(session, state, username=username, here=here, now=now)
    _record(session, here=here, actor=actor, change=change, account=after, state=state, now=now)
    if before is not None and before.node_code != after.node_code:
        # It moved to another center: the one it leaves gets it disabled, under the same version.
        gone = _snapshot(before, state, disabled=True)
        _send(session, here=here, actor=actor, change="disabled", account=gone, now=now)
    return change


def set_disabled(session: Session, *, here: str, actor: str, username: str, disabled: bool, now: dt.datetime) -> bool:
    """Disable (or enable) the account at the node that manages it, and send that down; False
    when it already was. Refused for an unknown account or one managed by another node."""
    account = auth.load_account(session, username)
    if account is None:
        raise NotFound(f"账号 {username} 不存在")
    state = state_of(session, username)
    _refuse_unless_managed_here(state, username=username, here=here)
    if state is not None and state.disabled == disabled:
        return False
    if state is None and not disabled:
        return False
    state = _bump(session, state, username=username, here=here, now=now)
    state.disabled = disabled
    session.add(state)
    _record(
        session, here=here, actor=actor, change="disabled" if disabled else "enabled", account=account, state=state,
        now=now,
    )  # fmt: skip
    return True


def _bump(session: Session, state: AccountState | None, *, username: str, here: str, now: dt.datetime) -> AccountState:
    if state is None:
        state = AccountState(username=username, managed_by=here, version=0, disabled=False, changed_at=now)
    state.version += 1
    state.changed_at = now
    session.add(state)
    return state


def _snapshot(
    account: auth.Account, state: AccountState, *, disabled: bool | None = None
) -> account_pb2.OperatorAccount:
    return account_pb2.OperatorAccount(
        username=account.username,
        role=account.role,
        node_code=account.node_code,
        display_name=account.display_name,
        department=account.department,
        password_hash=account.password_hash,
        disabled=state.disabled if disabled is None else disabled,
        version=state.version,
    )


def _record(
    session: Session, *, here: str, actor: str, change: Change, account: auth.Account, state: AccountState,
    now: dt.datetime,
) -> None:  # fmt: skip
    """Chain the change in the audit trail and send the account down to its node."""
    detail: dict[str, object] = {"node_code": account.node_code, "role": account.role, "version": state.version}
    audit.record(session, [audit.Entry(now, here, actor, f"{KIND}.{change}", aggregate(account.username), detail)])
    _send(session, here=here, actor=actor, change=change, account=_snapshot(account, state), now=now)


def below(here: str, code: str) -> bool:
    """True when ``code`` is a center strictly below ``here`` (where an account is sent down to)."""
    try:
        tier_of(code)
    except FengqiaoError:
        return False
    return is_within(code, here) and code != here


def _send(
    session: Session, *, here: str, actor: str, change: Change, account: account_pb2.OperatorAccount, now: dt.datetime
) -> None:
    if not below(here, account.node_code):
        return  # the account belongs here (or outside the tree, e.g. the province): nothing to send
    event = account_pb2.AccountEvent(id=str(uuid.uuid4()), node=here, actor=actor)
    event.at.FromDatetime(now.astimezone(dt.UTC))
    getattr(event, change).CopyFrom(account)
    subject = down_subject(here, account.node_code, KIND, change)
    message = outbox.Message(subject, event.id, event.SerializeToString(), {}, aggregate(account.username))
    outbox.enqueue_many(session, messages=[message], now=now)


def received(session: Session, *, event: account_pb2.AccountEvent, now: dt.datetime) -> bool:
    """Keep an account a node above sent down here (its sender checked by the decode step): the
    account as sent, unless this node already holds that version or a later one. True when it
    changed something. ``PermissionDenied`` when another node manages the account."""
    change = event.WhichOneof("payload")
    account: account_pb2.OperatorAccount = getattr(event, change or "created")
    username, sender = account.username, event.node
    state = state_of(session, username)
    if session.get(User, username) is not None and (state is None or state.managed_by != sender):
        mine = state is None or state.managed_by == account.node_code
        manager = "本中心" if state is None or mine else f"中心 {state.managed_by} "
        raise PermissionDenied(
            f"账号 {username} 由{manager}管理，{sender} 下发的{LABELS.get(change or '', '变更')}未采用"
        )
    if state is not None and state.version >= account.version:
        return False  # a duplicate, or an earlier change arriving after a later one
    user = session.get(User, username) or User(
        username=username, password_hash="", role=account.role, node_code=account.node_code
    )
    user.password_hash, user.role, user.node_code = account.password_hash, account.role, account.node_code
    user.display_name = account.display_name
    session.add(user)
    row = session.get(UserDepartment, username)
    if account.department:
        row = row or UserDepartment(username=username, department=account.department)
        row.department = account.department
        session.add(row)
    elif row is not None:
        session.delete(row)
    if state is None:
        state = AccountState(username=username, managed_by=sender, version=0, disabled=False, changed_at=now)
    state.version, state.disabled, state.changed_at = account.version, account.disabled, now
    session.add(state)
    detail: dict[str, object] = {"node_code": account.node_code, "role": account.role, "version": account.version}
    audit.record(session, [audit.Entry(now, sender, event.actor, f"{KIND}.{change}", aggregate(username), detail)])
    return True
