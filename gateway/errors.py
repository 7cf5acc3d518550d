"""The one mapping of errors to HTTP responses ``{"detail": …}`` (Chinese messages)."""

from __future__ import annotations

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from fengqiao import errors

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_DOMAIN_STATUS: dict[type[errors.FengqiaoError], int] = {
    errors.InvalidArgument: 400,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.IllegalTransition: 409,
    errors.PermissionDenied: 403,
    errors.Unauthenticated: 401,
    errors.Unavailable: 503,
}


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _rpc_error(_request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        status = _HTTP_STATUS.get(exc.code(), 502)
        detail = exc.details() if exc.code() in _HTTP_STATUS else f"内部服务错误：{exc.details()}"
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(errors.FengqiaoError)
    async def _domain_error(_request: Request, exc: errors.FengqiaoError) -> JSONResponse:
        status = next((s for k, s in _DOMAIN_STATUS.items() if isinstance(exc, k)), 500)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"字段 {where or '请求体'}：{err.get('msg', '格式错误')}")
        return JSONResponse({"detail": "请求格式错误。" + "；".join(parts)}, status_code=422)
