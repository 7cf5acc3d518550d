"""The FastAPI application of a node: the JSON API, Open311 and the operator console."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from fengqiao.service import NodeContext
from gateway import errors
from gateway.observe import RequestObserver
from gateway.open311 import routes as open311
from gateway.routes import accounts, dispatch, joint, projects, reports, steps
from gateway.routes import cases as api

CONSOLE = Path(__file__).parent / "console"
# Every asset is served by the node itself: government intranets reach nothing outside.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def create_app(ctx: NodeContext, *, grpc_address: str) -> FastAPI:
    """The node's HTTP app; it reaches the services through their gRPC address."""

    app = FastAPI(
        title=f"枫桥 · {ctx.spec.name}",
        description='综治中心县、乡镇、村三级协同与统计接口。错误以 {"detail": …} 返回中文说明；'
        "Open311 GeoReport v2 接口在 /open311/v2/ 下，错误按其规范返回。操作台在 /。",
        version="0.1.0",
    )
    app.state.ctx = ctx
    app.state.grpc_address = grpc_address
    app.state.stubs = None
    errors.install(app)
    open311.install(app)
    for router in (accounts, api, steps, dispatch, reports, projects, joint, open311):
        app.include_router(router.router)

    @app.get("/healthz", summary="健康检查（无需登录）")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "node": ctx.spec.code, "name": ctx.spec.name}

    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(CONSOLE / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/console", StaticFiles(directory=CONSOLE), name="console")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if not request.url.path.startswith(("/docs", "/redoc")):  # Swagger UI loads its own assets
            response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    app.add_middleware(RequestObserver, metrics=ctx.metrics)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz")
    return app
