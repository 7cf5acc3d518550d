"""The error hierarchy every service raises; mapped once at the gRPC and HTTP edges.

Messages are meant for operators and are in Simplified Chinese.
"""

from __future__ import annotations


class FengqiaoError(Exception):
    """Base of every domain error. ``message`` is shown to the caller as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(FengqiaoError):
    """A field of a request is missing or malformed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"字段 {field}：{message}")
        self.field = field


class NotFound(FengqiaoError):
    """The thing asked for does not exist (here)."""


class AlreadyExists(FengqiaoError):
    """A thing with that identity exists already."""


class IllegalTransition(FengqiaoError):
    """A step the case's current state does not allow (FAILED_PRECONDITION / 409)."""


class PermissionDenied(FengqiaoError):
    """The caller may not see or do this."""


class Unauthenticated(FengqiaoError):
    """The caller did not prove who it is."""


class Unavailable(FengqiaoError):
    """A dependency (broker, database, another node) cannot be reached now."""
