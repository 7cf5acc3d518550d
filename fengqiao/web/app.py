"""The FastAPI application of a node."""

from __future__ import annotations

import html

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from fengqiao.node import NodeContext
from fengqiao.web import api, dispatch, errors, projects, steps


def create_app(ctx: NodeContext, *, grpc_address: str) -> FastAPI:
    """The node's HTTP app; it reaches the services through their gRPC address."""
    app = FastAPI(
        title=f"枫桥 · {ctx.spec.name}",
        description='综治中心县、乡镇、村三级协同与统计接口。错误以 {"detail": …} 返回中文说明。',
        version="0.1.0",
    )
    app.state.ctx = ctx
    app.state.grpc_address = grpc_address
    app.state.stubs = None
    errors.install(app)
    app.include_router(api.router)
    app.include_router(steps.router)
    app.include_router(dispatch.router)
    app.include_router(projects.router)

    @app.get("/healthz", summary="健康检查（无需登录）")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "node": ctx.spec.code, "name": ctx.spec.name}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def console() -> str:
        name = html.escape(ctx.spec.name)
        return (
            "<!doctype html><html lang='zh-CN'><meta charset='utf-8'>"
            f"<title>枫桥 · {name}</title><h1>{name}</h1>"
            "<p>操作台正在建设中。接口文档见 <a href='/docs'>/docs</a>；"
            "登录接口 <code>POST /api/v1/auth/token</code>。</p></html>"
        )

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz")
    return app
