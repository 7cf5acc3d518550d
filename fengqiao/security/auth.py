"""Operator accounts and signed, expiring tokens (OAuth2 password flow at the HTTP edge)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import jwt
from sqlmodel import Session, select

from fengqiao.errors import InvalidArgument, Unauthenticated
from fengqiao.security.records import ApiKey, User
from fengqiao.security.roles import LABELS, role_of

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """scrypt hash with a random salt, as ``scrypt$salt$hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


@dataclass(frozen=True)
class Principal:
    """Who is calling: an operator with a role at a node."""

    username: str
    role: str
    node_code: str


def ensure_user(
    session: Session, *, username: str, password: str, role: str, node_code: str, display_name: str = ""
) -> None:
    """Create the account, or reset its password, role and node if it exists."""
    if role_of(role) is None:
        raise InvalidArgument(
            "role", f"未知的角色“{role}”，可选：{'、'.join(f'{r.value}（{n}）' for r, n in LABELS.items())}"
        )
    if not username or len(username) > 64:
        raise InvalidArgument("username", "用户名须为 1–64 个字符")
    user = session.get(User, username)
    if user is None:
        user = User(username=username, password_hash="", role=role, node_code=node_code)
    if not verify_password(password, user.password_hash):
        user.password_hash = hash_password(password)
    user.role, user.node_code = role, node_code
    user.display_name = display_name or user.display_name
    session.add(user)


def check_new_password(password: str) -> None:
    """Refuse a weak password for a new operator account."""
    if len(password) < 10 or password.isdigit() or password.isalpha():
        raise InvalidArgument("password", "密码至少 10 位，且不能全是数字或全是字母")


def list_users(session: Session, *, within: str) -> list[User]:
    """The accounts of this node whose scope lies within ``within``, by username."""
    users = session.exec(select(User).order_by(User.username)).all()
    return [u for u in users if u.node_code.startswith(within)]


def authenticate(session: Session, *, username: str, password: str) -> Principal:
    user = session.get(User, username)
    if user is None or not verify_password(password, user.password_hash):
        raise Unauthenticated("用户名或密码错误")
    return Principal(username=user.username, role=user.role, node_code=user.node_code)


def issue_token(principal: Principal, *, secret: str, ttl: dt.timedelta, now: dt.datetime) -> str:
    claims = {
        "sub": principal.username,
        "role": principal.role,
        "node": principal.node_code,
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
    return Principal(username=claims["sub"], role=claims["role"], node_code=claims["node"])


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
