"""The error hierarchy every service raises, and the one table mapping it to the edges.

Messages are meant for operators and are in Simplified Chinese. ``EDGE`` gives each error class
its gRPC status and HTTP status; ``grpcutil`` (servers) and ``gateway.errors`` (HTTP) both read it,
and a test checks that every subclass of ``FengqiaoError`` has an entry.
"""

from __future__ import annotations

import dataclasses

import grpc


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


class Undecryptable(FengqiaoError):
    """Stored data this node cannot open (sealed under a key it does not hold, or tampered):
    retrying does not help, so it is never reported as UNAVAILABLE."""


class BadMessage(FengqiaoError):
    """A received message that can never be processed; it goes to the dead-letter table."""


class NotYet(FengqiaoError):
    """A received message that cannot be processed until something else has arrived; redeliver it later."""


@dataclasses.dataclass(frozen=True)
class Status:
    """How an error shows at the edges: a gRPC status code and an HTTP status."""

    grpc: grpc.StatusCode
    http: int


EDGE: dict[type[FengqiaoError], Status] = {
    InvalidArgument: Status(grpc.StatusCode.INVALID_ARGUMENT, 400),
    NotFound: Status(grpc.StatusCode.NOT_FOUND, 404),
    AlreadyExists: Status(grpc.StatusCode.ALREADY_EXISTS, 409),
    IllegalTransition: Status(grpc.StatusCode.FAILED_PRECONDITION, 409),
    PermissionDenied: Status(grpc.StatusCode.PERMISSION_DENIED, 403),
    Unauthenticated: Status(grpc.StatusCode.UNAUTHENTICATED, 401),
    Unavailable: Status(grpc.StatusCode.UNAVAILABLE, 503),
    Undecryptable: Status(grpc.StatusCode.DATA_LOSS, 500),
    # Raised inside bus consumers, never by a request; mapped all the same so that nothing is unmapped.
    BadMessage: Status(grpc.StatusCode.INVALID_ARGUMENT, 400),
    NotYet: Status(grpc.StatusCode.UNAVAILABLE, 503),
}
"""The one mapping of domain errors to gRPC and HTTP; a subclass takes its nearest ancestor's entry."""

INTERNAL = Status(grpc.StatusCode.INTERNAL, 500)

HTTP_OF_GRPC: dict[grpc.StatusCode, int] = {s.grpc: s.http for s in EDGE.values()} | {
    grpc.StatusCode.DEADLINE_EXCEEDED: 504
}
"""What a gRPC status from a service becomes over HTTP (the gateway calls services over gRPC);
derived from ``EDGE`` so the two edges cannot disagree."""


def status_of(kind: type[FengqiaoError]) -> Status:
    """The edge status of an error class: its own entry or its nearest mapped ancestor's."""
    for cls in kind.__mro__:
        if cls in EDGE:
            return EDGE[cls]
    return INTERNAL
