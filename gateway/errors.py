"""Errors as HTTP responses ``{"detail": …}`` (Chinese messages), by the one table ``fengqiao.errors.EDGE``."""

from __future__ import annotations

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from fengqiao import errors


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _rpc_error(_request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        status = errors.HTTP_OF_GRPC.get(exc.code(), 502)
        detail = exc.details() if exc.code() in errors.HTTP_OF_GRPC else f"内部服务错误：{exc.details()}"
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(errors.FengqiaoError)
    async def _domain_error(_request: Request, exc: errors.FengqiaoError) -> JSONResponse:
        status = errors.status_of(type(exc)).http
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"字段 {where or '请求体'}：{err.get('msg', '格式错误')}")
        return JSONResponse({"detail": "请求格式错误。" + "；".join(parts)}, status_code=422)
