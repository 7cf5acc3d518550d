"""The FastAPI application of a node: the JSON API, Open311 and the operator console."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
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
# Swagger UI and ReDoc start from an inline script and ReDoc runs a worker from a blob; still
# nothing from outside the node.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'self'"
)
VENDOR = "/console/vendor"


def create_app(ctx: NodeContext, *, grpc_address: str) -> FastAPI:
    """The node's HTTP app; it reaches the services through their gRPC address."""

    app = FastAPI(
        title=f"枫桥 · {ctx.spec.name}",
        description='综治中心县、乡镇、村三级协同与统计接口。错误以 {"detail": …} 返回中文说明；'
        "Open311 GeoReport v2 接口在 /open311/v2/ 下，错误按其规范返回。操作台在 /。",
        version="0.1.0",
        docs_url=None,  # served below from the node's own copies, not a CDN
        redoc_url=None,
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

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} · 接口文档",
            swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui.css",
            swagger_favicon_url="data:,",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} · 接口说明",
            redoc_js_url=f"{VENDOR}/redoc.standalone.js",
            redoc_favicon_url="data:,",
            with_google_fonts=False,
        )

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        docs = request.url.path.startswith(("/docs", "/redoc"))
        response.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    app.add_middleware(RequestObserver, metrics=ctx.metrics)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz")
    return app
