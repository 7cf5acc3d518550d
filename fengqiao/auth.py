"""Operator accounts and signed, expiring tokens (OAuth2 password flow at the HTTP edge)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import jwt
from sqlmodel import Session

from fengqiao.errors import Unauthenticated
from fengqiao.models import User

ROLES = {
    "grid_worker": "网格员",
    "department": "部门/调解员",
    "duty_officer": "中心值班员",
    "county_admin": "县级管理员",
    "province_reader": "省级只读",
}
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


def ensure_user(session: Session, *, username: str, password: str, role: str, node_code: str) -> None:
    """Create the account, or reset its password if it exists."""
    user = session.get(User, username)
    if user is None:
        user = User(username=username, password_hash="", role=role, node_code=node_code)
    if not verify_password(password, user.password_hash):
        user.password_hash = hash_password(password)
    user.role, user.node_code = role, node_code
    session.add(user)


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


def read_token(token: str, *, secret: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("登录已过期，请重新登录") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated("令牌无效") from exc
    return Principal(username=claims["sub"], role=claims["role"], node_code=claims["node"])
