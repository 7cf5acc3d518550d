"""Operator accounts and signed, expiring tokens (OAuth2 password flow at the HTTP edge)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import jwt
from sqlmodel import Session, col, select

from fengqiao.errors import InvalidArgument, Unauthenticated
from fengqiao.security import passwords
from fengqiao.security.records import AccountState, ApiKey, User, UserDepartment
from fengqiao.security.roles import LABELS, Role, role_of

WRONG_LOGIN = "用户名或密码错误"


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is calling: an operator with a role at a node (and, for 部门/调解员, a department)."""

    username: str
    role: str
    node_code: str
    department: str = ""
    issuer: str = dataclasses.field(default="", compare=False)  # the node whose login issued the token


@dataclasses.dataclass(frozen=True)
class Account:
    """An operator account as stored: the user row and its department."""

    username: str
    role: str
    node_code: str
    display_name: str
    department: str
    password_hash: str = dataclasses.field(repr=False)
    disabled: bool = False
    managed_by: str = ""  # the node that manages it, when it was sent here from above ("" : this node)

    @property
    def principal(self) -> Principal:
        """Who this account is once logged in."""
        return Principal(self.username, self.role, self.node_code, self.department)


def load_account(session: Session, username: str) -> Account | None:
    """The account named ``username``, if any."""
    user = session.get(User, username)
    if user is None:
        return None
    row = session.get(UserDepartment, username)
    state = session.get(AccountState, username)
    return Account(
        user.username, user.role, user.node_code, user.display_name, row.department if row else "", user.password_hash,
        disabled=state is not None and state.disabled, managed_by=state.managed_by if state else "",
    )  # fmt: skip


def disabled_message(username: str) -> str:
    """What a disabled account is told at login and on every request with an earlier token."""
    return f"账号 {username} 已停用，请联系管理员"


def check_current(account: Account | None, who: Principal, *, here: str) -> None:
    """Refuse a token whose account was disabled, or changed role, center or department, after it
    was issued — the account as this node ``here`` now holds it, when the token names that same
    account: issued here (or before tokens named their issuer), at the node that manages this
    copy, or at the node this one manages the account for. Every node has an ``admin`` of its own:
    a token of another node's account of the same name is left to the scope checks."""
    if account is None:
        return
    manager = account.managed_by or here
    same = who.issuer in ("", here, manager) or (manager == here and account.node_code == who.issuer)
    if not same:
        return
    if account.disabled:
        raise Unauthenticated(disabled_message(account.username))
    if account.principal != who:
        raise Unauthenticated(f"账号 {account.username} 的角色、所属中心或部门已变更，请重新登录")


def check_login(account: Account | None, password: str) -> tuple[Principal, str | None]:
    """The principal when ``password`` is the account's, and a new hash to store when the stored
    one is of an older scheme (CPU-bound: call it off the event loop and off the database's
    writer thread)."""
    if account is None:
        passwords.spend_like_a_check(password)
        raise Unauthenticated(WRONG_LOGIN)
    ok, rehashed = passwords.verify_password(password, account.password_hash)
    if not ok:
        raise Unauthenticated(WRONG_LOGIN)
    if account.disabled:  # told only to whoever knows the password
        raise Unauthenticated(disabled_message(account.username))
    return account.principal, rehashed


def store_rehash(session: Session, *, username: str, old: str, new: str) -> None:
    """Replace the account's password hash with ``new`` unless it changed since ``old`` was read."""
    user = session.get(User, username)
    if user is not None and user.password_hash == old:
        user.password_hash = new
        session.add(user)


def authenticate(session: Session, *, username: str, password: str) -> Principal:
    """Check a login in one transaction, rehashing an old-scheme password (command-line use)."""
    account = load_account(session, username)
    who, rehashed = check_login(account, password)
    if account is not None and rehashed is not None:
        store_rehash(session, username=username, old=account.password_hash, new=rehashed)
    return who


def ensure_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    node_code: str,
    display_name: str = "",
    department: str = "",
) -> None:
    """Create the account, or reset its password, role, node and department if it exists.

    A 部门/调解员 account belongs to exactly one department; no other role has one."""
    if role_of(role) is None:
        raise InvalidArgument(
            "role", f"未知的角色“{role}”，可选：{'、'.join(f'{r.value}（{n}）' for r, n in LABELS.items())}"
        )
    if not username or len(username) > 64:
        raise InvalidArgument("username", "用户名须为 1–64 个字符")
    department = check_department(role, department)
    user = session.get(User, username)
    if user is None:
        user = User(username=username, password_hash="", role=role, node_code=node_code)
    ok, rehashed = passwords.verify_password(password, user.password_hash)
    if not ok or rehashed is not None:
        user.password_hash = passwords.hash_password(password)
    user.role, user.node_code = role, node_code
    user.display_name = display_name or user.display_name
    session.add(user)
    row = session.get(UserDepartment, username)
    if department and row is None:
        session.add(UserDepartment(username=username, department=department))
    elif department and row is not None:
        row.department = department
        session.add(row)
    elif row is not None:
        session.delete(row)


def check_department(role: str, department: str) -> str:
    """The account's department, trimmed: required for 部门/调解员, refused for other roles."""
    department = department.strip()
    if role == Role.MEDIATOR and not department:
        raise InvalidArgument("department", "部门/调解员账号须指定所属部门（如 司法所、派出所）")
    if role != Role.MEDIATOR and department:
        raise InvalidArgument("department", f"只有部门/调解员账号属于部门，{LABELS[Role(role)]}账号不设部门")
    if len(department) > 40:
        raise InvalidArgument("department", "部门名称不超过 40 个字符")
    return department


def check_new_password(password: str) -> None:
    """Refuse a weak password for a new operator account."""
    if len(password) < 10 or password.isdigit() or password.isalpha():
        raise InvalidArgument("password", "密码至少 10 位，且不能全是数字或全是字母")


def list_users(session: Session, *, within: str) -> list[Account]:
    """The accounts of this node whose scope lies within ``within``, by username."""
    users = session.exec(select(User).where(col(User.node_code).startswith(within)).order_by(User.username)).all()
    departments = {row.username: row.department for row in session.exec(select(UserDepartment)).all()}
    states = {row.username: row for row in session.exec(select(AccountState)).all()}
    return [
        Account(
            u.username,
            u.role,
            u.node_code,
            u.display_name,
            departments.get(u.username, ""),
            u.password_hash,
            disabled=u.username in states and states[u.username].disabled,
            managed_by=states[u.username].managed_by if u.username in states else "",
        )
        for u in users
    ]


def issue_token(principal: Principal, *, secret: str, ttl: dt.timedelta, now: dt.datetime, issuer: str = "") -> str:
    """A signed token of ``principal`` for ``ttl``, naming the node ``issuer`` whose login issued it."""
    claims = {
        **({"iss": issuer} if issuer else {}),
        "sub": principal.username,
        "role": principal.role,
        "node": principal.node_code,
        **({"dept": principal.department} if principal.department else {}),
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def read_token(token: str, *, secret: str, now: dt.datetime) -> Principal:
    """The principal of a valid token; expiry is judged by the node's clock, which issued it."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"], "verify_exp": False}
        )
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated("令牌无效") from exc
    if not isinstance(claims["exp"], int | float) or claims["exp"] <= now.timestamp():
        raise Unauthenticated("登录已过期，请重新登录")
    return Principal(
        username=claims["sub"],
        role=claims["role"],
        node_code=claims["node"],
        department=str(claims.get("dept", "")),
        issuer=str(claims.get("iss", "")),
    )


def _key_digest(key: str) -> str:
    # API keys are long random strings: a plain SHA-256 is enough (no dictionary to guess from).
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_api_key(session: Session, *, key: str, label: str, node_code: str, now: dt.datetime) -> None:
    """Register an Open311 API key (idempotent); only its SHA-256 is stored."""
    if len(key) < 16:
        raise InvalidArgument("api_key", "API key 至少 16 个字符")
    digest = _key_digest(key)
    if session.get(ApiKey, digest) is None:
        session.add(ApiKey(key_sha256=digest, label=label, node_code=node_code, created_at=now))


def find_api_key(session: Session, key: str) -> ApiKey | None:
    """The registered key matching ``key``, if any."""
    return session.get(ApiKey, _key_digest(key)) if key else None
