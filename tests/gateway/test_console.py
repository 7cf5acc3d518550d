"""The operator console in a real browser (Debian's chromium driven by Playwright) at a running
county: log in, the overview with its charts drawn, a case page with its timeline and three slips,
the joint cases and the 四必评 board — in Chinese, with no request leaving 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import federation_pb2, federation_pb2_grpc, intake_pb2, intake_pb2_grpc
from harness.county import ADMIN_PASSWORD, LocalCounty, submit_request

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
# Quiet start: no background traffic to the vendor's services (this machine reaches none).
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
COUNTY = "371702"
VILLAGES = ("371702101001", "371702101002", "371702102001", "371702102002")
CATEGORIES = ("邻里", "婚姻家庭", "山林土地", "邻里", "物业")
CHARTS = ("chart-map", "chart-levels", "chart-trend", "chart-categories")
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is required in CI (make browser installs it)")
        pytest.skip("chromium not installed (make browser)")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def loopback_only(target: Page | BrowserContext) -> list[str]:
    """Abort every request of ``target`` that would leave 127.0.0.1 (a government intranet
    reaches nothing outside); the list the aborted ones are written to."""
    outside: list[str] = []

    async def guard(route: Route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            outside.append(url)
            await route.abort()

    await target.route("**/*", guard)
    return outside


async def seed(county: LocalCounty) -> None:
    """Five cases at each village, of several categories, the first three closed by 司法所; then
    wait until the county has enough of them to draw."""
    for village in VILLAGES:
        async with channel(county[village].grpc_address) as ch:
            api = intake_pb2_grpc.IntakeStub(ch)
            for i, category in enumerate(CATEGORIES):
                case = (await api.SubmitCase(submit_request(village, category=category))).case
                if i < 3:
                    await close(api, case.id, category)
    async with channel(county[COUNTY].grpc_address) as ch:
        federation = federation_pb2_grpc.FederationStub(ch)
        for _ in range(300):
            stats = await federation.GetNodeStats(federation_pb2.GetNodeStatsRequest(code=COUNTY))
            if stats.received >= 4:  # enough to draw; the rest may still be on its way up
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the county has {stats.received} cases after 30 s")


async def close(api: intake_pb2_grpc.IntakeAsyncStub, case_id: str, category: str) -> None:
    """Triage, assign to 司法所, and on round the closed loop to 办结."""
    who, dept = "值班员", "司法所"
    await api.Triage(
        intake_pb2.TriageRequest(case_id=case_id, actor=who, step=pb.Triaged(category=category, response_class=1))
    )
    slip = pb.AssignmentSlip(department=dept, requirement="依法调处")
    await api.Assign(intake_pb2.AssignRequest(case_id=case_id, actor=who, step=pb.Assigned(slip=slip)))
    await api.Acknowledge(intake_pb2.AcknowledgeRequest(case_id=case_id, actor=dept))
    await api.Start(intake_pb2.StartRequest(case_id=case_id, actor=dept))
    feedback = pb.FeedbackSlip(result="已调解，双方签字", mediated=True, mediation_level="网格员现场调解")
    step = pb.FeedbackGiven(slip=feedback)
    await api.SubmitFeedback(intake_pb2.SubmitFeedbackRequest(case_id=case_id, actor=dept, step=step))
    await api.Review(intake_pb2.ReviewRequest(case_id=case_id, actor=who, step=pb.Reviewed(approved=True)))
    await api.Close(intake_pb2.CloseRequest(case_id=case_id, actor=who, step=pb.Closed(summary="已化解")))
    evaluation = pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=5, method="电话回访", comment="满意"))
    await api.FollowUp(intake_pb2.FollowUpRequest(case_id=case_id, actor=who, step=evaluation))


async def log_in(page: Page, base: str) -> None:
    await page.goto(base + "/")
    await page.get_by_label("用户名").fill("admin")
    await page.get_by_label("密码").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_selector("main[data-ready=overview]", timeout=30_000)


async def painted_pixels(page: Page, element_id: str) -> int:
    """Non-transparent pixels on the chart's canvas (0: nothing drawn)."""
    count: int = await page.evaluate(
        """(id) => {
            const canvas = document.querySelector('#' + id + ' canvas');
            if (!canvas) return 0;
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
            return painted;
        }""",
        element_id,
    )
    return count


async def test_the_console_shows_the_county_overview_and_a_case_in_chinese(
    county: LocalCounty, browser: Browser, tmp_path: Path
) -> None:
    await seed(county)
    base = f"http://127.0.0.1:{county[COUNTY].http_port}"
    page = await browser.new_page(viewport={"width": 1600, "height": 1300}, locale="zh-CN")
    outside = await loopback_only(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    await log_in(page, base)
    text = await page.inner_text("main")
    for words in (
        "测试县综治中心",
        "一屏统览",
        "小事不出村",
        "部门红黑榜",
        "各中心链路状态",
        "超期案件与督办",
        "办结率",
    ):
        assert words in text, words
    for chart in CHARTS:
        assert await painted_pixels(page, chart) > 500, f"{chart} is blank"
    overview = tmp_path / "console-overview.png"
    await page.screenshot(path=str(overview), full_page=True)

    # A case page at the village that holds it (its own data, no wait for replication).
    base = f"http://127.0.0.1:{county[VILLAGES[0]].http_port}"
    await log_in(page, base)
    await page.goto(base + "/#/cases?category=婚姻家庭")
    await page.wait_for_selector("main[data-ready=cases]")
    await page.locator("table.cases tbody a").first.click()
    await page.wait_for_selector("main[data-ready=case]")
    text = await page.inner_text("main")
    for words in ("交办单", "反馈单", "评价单", "时间线", "司法所", "已调解，双方签字", "受理", "办结", "回访", "满意"):
        assert words in text, words
    case_page = tmp_path / "console-case.png"
    await page.screenshot(path=str(case_page), full_page=True)

    for view, words in (("joint", "三联联合案件"), ("projects", "四必评看板")):
        await page.goto(f"{base}/#/{view}")
        await page.wait_for_selector(f"main[data-ready={view}]")
        assert words in await page.inner_text("main")
    await page.screenshot(path=str(tmp_path / "console-projects.png"), full_page=True)

    print(f"\nscreenshots: {overview} {case_page} {tmp_path / 'console-projects.png'}")
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    assert errors == [], f"script errors: {errors}"


async def test_the_api_docs_render_with_nothing_from_outside_the_node(village: LocalCounty, browser: Browser) -> None:
    """Swagger UI at /docs and ReDoc at /redoc come from the node's own copies (a government
    intranet reaches no CDN): both draw the API, and no request leaves 127.0.0.1."""
    base = f"http://127.0.0.1:{village[VILLAGES[0]].http_port}"
    page = await browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    outside = await loopback_only(page)
    await page.goto(base + "/docs")
    await page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=30_000)
    swagger = await page.inner_text(".swagger-ui")
    assert "枫桥" in swagger and "/api/v1/cases" in swagger, swagger[:300]
    await page.goto(base + "/redoc")
    await page.wait_for_selector("redoc .api-content h1", timeout=30_000)
    redoc = await page.inner_text("redoc")
    assert "枫桥" in redoc and "/api/v1/cases" in redoc, redoc[:300]
    assert outside == [], f"requests left 127.0.0.1: {outside}"
