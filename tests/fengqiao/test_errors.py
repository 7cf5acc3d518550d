"""The one table of errors at the edges: every domain error is mapped, gRPC and HTTP agree."""

from __future__ import annotations

import gc
import importlib
import pkgutil

import grpc
import pytest

import fengqiao
import gateway
import host
import services
from fengqiao import errors


def _every_module() -> None:
    """Import every module of the production packages, so every error class is defined."""
    for package in (fengqiao, services, host, gateway):
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if not info.name.startswith("fengqiao.v1"):
                importlib.import_module(info.name)


def _subclasses(cls: type[errors.FengqiaoError]) -> set[type[errors.FengqiaoError]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_domain_error_class_has_an_edge_status() -> None:
    _every_module()
    classes = _subclasses(errors.FengqiaoError)
    assert len(classes) >= 9  # the seven request errors and the two consumer errors, at least
    unmapped = sorted(c.__qualname__ for c in classes if errors.status_of(c) is errors.INTERNAL)
    assert unmapped == [], f"errors without an entry in fengqiao.errors.EDGE: {unmapped}"


@pytest.mark.parametrize(
    ("kind", "code", "http"),
    [
        (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, 400),
        (errors.NotFound, grpc.StatusCode.NOT_FOUND, 404),
        (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS, 409),
        (errors.IllegalTransition, grpc.StatusCode.FAILED_PRECONDITION, 409),
        (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, 403),
        (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, 401),
        (errors.Unavailable, grpc.StatusCode.UNAVAILABLE, 503),
        (errors.Undecryptable, grpc.StatusCode.DATA_LOSS, 500),
    ],
)
def test_request_errors_map_to_the_documented_statuses(
    kind: type[errors.FengqiaoError], code: grpc.StatusCode, http: int
) -> None:
    assert errors.status_of(kind) == errors.Status(code, http)


def test_a_subclass_takes_its_nearest_ancestors_status() -> None:
    from fengqiao.security.sealing import SealError

    assert errors.status_of(SealError) == errors.EDGE[errors.Undecryptable]  # never UNAVAILABLE: not retryable


def test_errors_sharing_a_grpc_status_share_the_http_status() -> None:
    """The gateway sees a service's error only as a gRPC status: it must map back unambiguously."""
    http_by_code: dict[grpc.StatusCode, set[int]] = {}
    for status in errors.EDGE.values():
        http_by_code.setdefault(status.grpc, set()).add(status.http)
    assert {code: https for code, https in http_by_code.items() if len(https) > 1} == {}
    for status in errors.EDGE.values():
        assert errors.HTTP_OF_GRPC[status.grpc] == status.http
    assert errors.HTTP_OF_GRPC[grpc.StatusCode.DEADLINE_EXCEEDED] == 504


def test_an_unknown_error_class_is_internal() -> None:
    class Odd(errors.FengqiaoError):
        pass

    try:
        assert errors.status_of(Odd) == errors.Status(grpc.StatusCode.INTERNAL, 500)
    finally:
        del Odd
        gc.collect()  # leave no stray subclass behind for the other tests
