"""Accounts: operators and Open311 API keys."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel


class User(SQLModel, table=True):
    """An operator account of this node."""

    __tablename__ = "app_user"

    username: str = Field(primary_key=True, max_length=64)
    password_hash: str
    role: str = Field(max_length=32)
    node_code: str = Field(max_length=12)
    display_name: str = ""


class ApiKey(SQLModel, table=True):
    """An Open311 client's API key (``api_key`` of GeoReport v2), stored as its SHA-256 only."""

    __tablename__ = "api_key"

    key_sha256: str = Field(primary_key=True, max_length=64)
    label: str = Field(max_length=100)
    node_code: str = Field(max_length=12)  # requests may be made at this node and below
    created_at: dt.datetime


class UserDepartment(SQLModel, table=True):
    """The department an operator account belongs to (部门/调解员 accounts only); added by
    migration 0002."""

    __tablename__ = "user_department"

    username: str = Field(primary_key=True, max_length=64)
    department: str = Field(max_length=40)


class AccountState(SQLModel, table=True):
    """Which node manages an operator account, how far its changes have come and whether it is
    disabled (migration 0004). No row: an account made here, managed here, enabled, version 0.

    The managing node is where the account was created; it alone changes the account and sends
    each change down to the account's node, which keeps the highest ``version`` it received."""

    __tablename__ = "account_state"

    username: str = Field(primary_key=True, max_length=64)
    managed_by: str = Field(max_length=12)
    version: int = 0
    disabled: bool = False
    changed_at: dt.datetime
