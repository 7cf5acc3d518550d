"""Errors as HTTP responses ``{"detail": …}`` (Chinese messages), by the one table ``fengqiao.errors.EDGE``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
        return JSONResponse({"detail": invalid_request(exc.errors())}, status_code=422)


_PROBLEMS: dict[str, str] = {
    "missing": "必填",
    "extra_forbidden": "不是可用的字段",
    "json_invalid": "不是有效的 JSON",
    "string_type": "应为文字",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_from_float": "应为整数",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "list_type": "应为列表",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "datetime_type": "应为时间（如 2026-11-22T08:00:00+08:00）",
    "datetime_parsing": "应为时间（如 2026-11-22T08:00:00+08:00）",
    "datetime_from_date_parsing": "应为时间（如 2026-11-22T08:00:00+08:00）",
    "date_parsing": "应为日期（如 2026-11-22）",
    "date_from_datetime_parsing": "应为日期（如 2026-11-22）",
    "string_too_short": "不能少于 {min_length} 字",
    "string_too_long": "不能超过 {max_length} 字",
    "too_short": "不能少于 {min_length} 项",
    "too_long": "不能超过 {max_length} 项",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应不小于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "应不大于 {le}",
    "literal_error": "应为 {expected} 之一",
    "enum": "应为 {expected} 之一",
    "string_pattern_mismatch": "格式不正确",
}
"""What each kind of validation failure means, in Chinese (pydantic's error types; its English
messages never reach an operator)."""


def invalid_request(problems: Sequence[Any]) -> str:
    """One Chinese sentence naming every field of a request that failed validation, and why."""
    parts = []
    for err in problems:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        kind, context = err.get("type", ""), dict(err.get("ctx") or {})
        if kind == "value_error":  # our own validators raise ValueError with a Chinese message
            problem = str(context.get("error", "")) or "格式不正确"
        else:
            if "expected" in context:  # "'in', 'out' or ''" → in、out、（空）
                words = str(context["expected"]).replace(" or ", ", ").split(", ")
                context["expected"] = "、".join(w.strip("'") or "（空）" for w in words)
            try:
                problem = _PROBLEMS.get(kind, "格式不正确").format(**context)
            except (KeyError, IndexError):
                problem = "格式不正确"
        parts.append(f"字段 {where or '请求体'}：{problem}")
    return "请求格式错误。" + "；".join(parts)
