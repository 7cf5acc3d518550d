"""The daily work done in the console, in a real browser (Debian's chromium driven by Playwright)
at a running county whose towns accept escalations by hand: each operator logs in at its own
center with its own role, does its step through the console's forms, and the state is checked
through the API afterwards. Screenshots of each role's main screens (1440×900) are written to
``tests/output/console/`` (not committed) for a reviewer to look at."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, FilePayload, Page

from fengqiao.security import auth
from harness.county import ADMIN_PASSWORD, LocalCounty
from tests.conftest import running_county
from tests.gateway.test_console import browser, loopback_only  # noqa: F401  (browser: the chromium fixture)
from tests.system.test_county_sync import eventually

COUNTY, TOWN, VILLAGE = "371702", "371702101", "371702101001"
PASSWORD = "Console-work-pw-01"
SHOTS = Path(__file__).resolve().parents[1] / "output" / "console"
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def county(
    tmp_path: Path, nats_server: Any, database_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LocalCounty]:
    """The whole sample county, its centers leaving escalations to their operators."""
    monkeypatch.setenv("FQ_ROUTING_AUTO_ACCEPT_ESCALATIONS", "false")
    async with running_county(tmp_path, nats_server.url, database_url) as local:
        yield local


def tiny_png() -> bytes:
    """A valid 2×2 PNG (a 现场照片)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def stored_status(case: dict[str, Any]) -> str:
    return str(case["status"])


class Api:
    """The HTTP API of the county's centers, as the admin of each."""

    def __init__(self, county: LocalCounty) -> None:
        self.county = county
        self.tokens: dict[str, str] = {}

    def base(self, code: str) -> str:
        return f"http://127.0.0.1:{self.county[code].http_port}"

    async def call(self, code: str, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.base(code), timeout=30) as client:
            if code not in self.tokens:
                form = {"username": "admin", "password": ADMIN_PASSWORD}
                self.tokens[code] = (await client.post("/api/v1/auth/token", data=form)).json()["access_token"]
            bearer = {"Authorization": f"Bearer {self.tokens[code]}"}
            reply = await client.request(method, path, headers=bearer, **kwargs)
            assert reply.status_code < 300, (path, reply.text)
            return reply.json()

    async def user(self, code: str, username: str, role: str, node: str, department: str = "") -> None:
        body = {"username": username, "password": PASSWORD, "role": role, "node_code": node, "department": department}
        await self.call(code, "POST", "/api/v1/users", json=body)

    async def case(self, code: str, case_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.call(code, "GET", f"/api/v1/cases/{case_id}")
        return found


class Console:
    """One operator's browser session at one center, every request held to 127.0.0.1."""

    def __init__(self, context: BrowserContext, page: Page, base: str, outside: list[str], errors: list[str]) -> None:
        self.context, self.page, self.base, self.outside, self.errors = context, page, base, outside, errors

    @classmethod
    async def open(cls, chromium: Browser, base: str, username: str, password: str = PASSWORD) -> Console:
        context = await chromium.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        outside = await loopback_only(context)
        errors: list[str] = []
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(base + "/")
        await page.get_by_label("用户名").fill(username)
        await page.get_by_label("密码").fill(password)
        await page.get_by_role("button", name="登录").click()
        await page.wait_for_selector("main[data-ready]", timeout=30_000)
        return cls(context, page, base, outside, errors)

    async def go(self, hash_: str, view: str) -> str:
        await self.page.evaluate(
            """(h) => {
                delete document.querySelector('main').dataset.ready;
                if (location.hash === h) FQ.route(); else location.hash = h;
            }""",
            "#/" + hash_,
        )
        await self.page.wait_for_selector(f"main[data-ready={view}]", timeout=30_000)
        return await self.page.inner_text("main")

    async def menu(self) -> list[str]:
        return [t.strip() for t in await self.page.locator("#nav a").all_inner_texts()]

    async def shot(self, name: str) -> None:
        """The screen as the operator sees it at 1440×900; the overview also whole, scrolled."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)
        if name.endswith("overview"):
            await self.page.screenshot(path=str(SHOTS / f"{name}-full.png"), full_page=True)

    async def until_listed(self, hash_: str, view: str, queue: str, receipt: str) -> None:
        """Reload the view until ``receipt`` is in ``queue`` (replication takes its time)."""
        for _ in range(120):
            await self.go(hash_, view)
            if await self.page.locator(f"[data-queue='{queue}'] a", has_text=receipt).count():
                return
            await self.page.wait_for_timeout(500)
        raise AssertionError(f"{receipt} never reached {queue} at {self.base}")

    async def step(
        self, step: str, fill: Callable[[Page], Awaitable[None]] | None = None, *, then: str, shows: str = ""
    ) -> None:
        """Open the step's slip on the case page, fill it, confirm, and wait for the status ``then``
        (and the words ``shows`` on the page, for a step that leaves the status as it was)."""
        page = self.page
        await page.locator(f"button.step[data-step='{step}']").click()
        form = page.locator(f"#step-{step}")
        if fill is not None:
            await fill(page)
        await form.locator("button[type=submit]").click()
        handle = await page.wait_for_function(
            """([status, id, words]) => {
                const error = document.querySelector('#' + id + ' .error');
                if (error && error.textContent) return 'error: ' + error.textContent;
                const shown = document.querySelector('main[data-ready=case] #case-status');
                const said = [...document.querySelectorAll('main section:not(#actions)')]
                    .some((e) => e.innerText.includes(words));
                return shown && shown.textContent === status && said ? 'ok' : false;
            }""",
            arg=[then, f"step-{step}", shows],
            timeout=30_000,
        )
        assert await handle.json_value() == "ok", f"{step}: {await handle.json_value()}"

    async def close(self) -> None:
        assert self.outside == [], f"requests left 127.0.0.1: {self.outside}"
        assert self.errors == [], f"script errors: {self.errors}"
        await self.context.close()


async def test_a_case_goes_round_the_closed_loop_in_the_console_at_village_and_town(
    county: LocalCounty,
    browser: Browser,  # noqa: F811
) -> None:
    api = Api(county)
    await api.user(VILLAGE, "cunzhiban", "duty_officer", VILLAGE)
    await api.user(TOWN, "zhenzhiban", "duty_officer", TOWN)
    node = county[COUNTY]  # the province's account is opened by the province, not by a county admin
    assert node.ctx is not None
    await node.ctx.db.run(
        lambda s: auth.ensure_user(s, username="shengji", password=PASSWORD, role="province_readonly", node_code="37")
    )

    # The town's admin opens the 司法所 mediator's account on the accounts screen.
    admin = await Console.open(browser, api.base(TOWN), "admin", ADMIN_PASSWORD)
    text = await admin.go("accounts", "accounts")
    assert "新建账号或重置密码" in text and "zhenzhiban" in text
    form = admin.page.locator("#user-form")
    await form.get_by_label("用户名").fill("sifasuo")
    await form.get_by_label("姓名").fill("司法所调解员")
    await form.get_by_label("角色").select_option("mediator")
    await form.get_by_label("密码（至少 10 位）").fill(PASSWORD)
    await form.locator("button[type=submit]").click()
    assert "部门/调解员须填写所属部门" in await form.locator(".error").inner_text()
    await form.get_by_label("所属部门（部门/调解员必填）").fill("司法所")
    await form.locator("button[type=submit]").click()
    await admin.page.wait_for_selector("#users td:text('sifasuo')")
    await admin.shot("town-admin-accounts")
    assert {u["username"]: u["department"] for u in await api.call(TOWN, "GET", "/api/v1/users")}["sifasuo"] == "司法所"

    async def disabled() -> bool:
        return {u["username"]: u["disabled"] for u in await api.call(TOWN, "GET", "/api/v1/users")}["sifasuo"]

    # Disabling (after a confirmation) and enabling again, from the same screen.
    admin.page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await admin.page.locator("button.toggle[data-user='sifasuo']").click()
    await admin.page.wait_for_selector("button.toggle[data-user='sifasuo'][data-action='enable']")
    assert await disabled()
    await admin.page.locator("button.toggle[data-user='sifasuo']").click()
    await admin.page.wait_for_selector("button.toggle[data-user='sifasuo'][data-action='disable']")
    assert not await disabled()
    await admin.close()

    # The village duty officer takes the case in through the form; a wrong ID number is refused in Chinese.
    village = await Console.open(browser, api.base(VILLAGE), "cunzhiban")
    menu = ["一屏统览", "待办", "受理", "案件", "工作指令", "预警", "三联联调", "四必评", "月报"]
    assert await village.menu() == menu  # no 账号: a duty officer manages none
    text = await village.go("intake", "intake")
    assert "受理登记" in text
    page = village.page
    await page.locator("#intake-form [name=channel]").select_option("群众来访")
    await page.locator("#intake-form [name=category]").select_option("房屋宅基地")
    await page.locator("#intake-form [name=grid]").fill("第3网格")
    await page.locator("#intake-form [name=address]").fill("三组7号")
    await page.locator("#intake-form [name=description]").fill("两户宅基地界址不清，砌墙时发生争执。")
    await page.locator("[name=party_name_0]").fill("张三")
    await page.locator("[name=party_id_0]").fill("371702198503120041")
    await page.locator("[name=party_phone_0]").fill("1381234567")
    await page.locator("[name=party_name_1]").fill("李四")
    await page.locator("[name=party_role_1]").select_option("被申请人")
    await village.shot("village-duty-intake")
    await page.locator("#intake-form button[type=submit]").click()
    error = await page.locator("#intake-form .error").inner_text()
    assert "第 1 位当事人：身份证号校验位不符" in error and "电话应为 11 位手机号" in error, error
    await page.locator("[name=party_id_0]").fill("37170219850312004X")
    await page.locator("[name=party_phone_0]").fill("13812345678")
    await page.locator("#intake-form button[type=submit]").click()
    link = page.locator("#intake-done a")
    await link.wait_for()
    receipt = (await link.inner_text()).strip()
    await link.click()
    await page.wait_for_selector("main[data-ready=case]")
    case_id = page.url.rsplit("/", 1)[-1]
    stored = await api.case(VILLAGE, case_id)
    assert stored["receipt_no"] == receipt and stored["category"] == "房屋宅基地" and stored["channel"] == "群众来访"
    first = stored["parties"][0]
    assert (first["name"], first["id_number"], first["phone"]) == (
        "张三", "37170219850312004X", "13812345678")  # fmt: skip

    async def reason(text: str) -> Callable[[Page], Awaitable[None]]:
        async def fill(p: Page) -> None:
            await p.locator("[id^=step-] [name=reason]").fill(text)

        return fill

    await village.step("escalate", await reason("宅基地权属需镇国土所确权"), then="上报中")
    await village.shot("village-duty-case-escalating")
    stored = await api.case(VILLAGE, case_id)
    assert stored["status"] == "CASE_STATUS_ESCALATING" and stored["escalation_to"] == TOWN

    # The town refuses it once, with its reason.
    town = await Console.open(browser, api.base(TOWN), "zhenzhiban")
    await town.until_listed("todo", "todo", "上报待接收", receipt)
    await town.shot("town-duty-todo")
    await town.page.locator("[data-queue='上报待接收'] a", has_text=receipt).click()
    await town.page.wait_for_selector("main[data-ready=case]")
    assert "测试1镇1村综治站" in await town.page.inner_text("main h2")  # the holder by name, not by code
    await town.step("refuse-escalation", await reason("请村里先组织调解"), then="受理")
    for _ in range(120):
        stored = await api.case(VILLAGE, case_id)
        if stored["status"] != "CASE_STATUS_ESCALATING":
            break
        await town.page.wait_for_timeout(250)
    assert stored["status"] == "CASE_STATUS_RECEIVED" and stored["holder_node"] == VILLAGE, stored["status"]

    # The village escalates again; the town accepts, triages and assigns it to 司法所.
    await village.go(f"case/{case_id}", "case")
    assert "请村里先组织调解" in await village.page.inner_text("main")
    await village.step("escalate", await reason("村调解未果，申请镇里处理"), then="上报中")
    await town.until_listed("todo", "todo", "上报待接收", receipt)
    await town.page.locator("[data-queue='上报待接收'] a", has_text=receipt).click()
    await town.page.wait_for_selector("main[data-ready=case]")
    await town.step("accept-escalation", then="受理")
    stored = await api.case(TOWN, case_id)
    assert stored["holder_node"] == TOWN and stored["escalations"] == 1

    async def triage(p: Page) -> None:
        await p.locator("#step-triage [name=response_class]").select_option("RESPONSE_CLASS_ROUTINE")

    await town.step("triage", triage, then="分类研判")

    async def assign(p: Page) -> None:
        await p.locator("#step-assign [name=department]").select_option("司法所")
        await p.locator("#step-assign [name=requirement]").fill("依法调处宅基地界址纠纷，五日内反馈")

    await town.step("assign", assign, then="交办")
    await town.shot("town-duty-case-assigned")
    stored = await api.case(TOWN, case_id)
    assert stored["assignment"]["department"] == "司法所" and stored["status"] == "CASE_STATUS_ASSIGNED"

    # The 司法所 mediator finds it in the inbox, 签收s, handles it and feeds back with a photo.
    mediator = await Console.open(browser, api.base(TOWN), "sifasuo")
    assert await mediator.menu() == ["一屏统览", "待办", "案件", "预警", "三联联调", "月报"]
    await mediator.until_listed("todo", "todo", "待签收", receipt)
    assert "司法所收件箱" in await mediator.page.inner_text("main h2")
    await mediator.shot("mediator-inbox")
    await mediator.page.locator("[data-queue='待签收'] a", has_text=receipt).click()
    await mediator.page.wait_for_selector("main[data-ready=case]")
    steps = await mediator.page.locator("button.step").all_inner_texts()
    assert steps == ["签收", "退单", "申请延期"], steps

    # It returns it once with a reason; the town assigns it again.
    await mediator.step("return", await reason("界址涉及土地确权，请先由国土所测量"), then="退单")
    await town.go(f"case/{case_id}", "case")
    assert "界址涉及土地确权" in await town.page.inner_text(".timeline")
    await town.step("assign", assign, then="交办")
    await mediator.go(f"case/{case_id}", "case")
    await mediator.step("acknowledge", then="签收")

    # It asks for more time on its basis; the town grants it and the deadline moves.
    async def extension(p: Page) -> None:
        await p.locator("#step-extension [name=reason]").fill("需等待国土所测量结果")
        await p.locator("#step-extension [name=new_deadline]").fill("2030-06-30T17:00")

    await mediator.step("extension", extension, then="签收", shows="需等待国土所测量结果（延至 2030-06-30 17:00）")
    await town.go(f"case/{case_id}", "case")
    await town.step("extension-decision", then="签收", shows="2030-06-30 17:00")

    async def extended() -> bool:  # the page also shows the date while the request is pending
        return (await api.case(TOWN, case_id))["deadline"] == "2030-06-30T09:00:00Z"

    await eventually(extended, within_s=15, what="the granted deadline stored at the town")
    assert (await api.case(TOWN, case_id))["returns"] == 1
    await mediator.go(f"case/{case_id}", "case")
    await mediator.step("start", then="处置")

    async def feedback(p: Page) -> None:
        slip = p.locator("#step-feedback")
        await slip.locator("[name=result]").fill("实地测量界址，双方签订调解协议")
        await slip.locator("[name=mediated]").check()
        await slip.locator("[name=mediation_level]").select_option("专业调解")
        photo: FilePayload = {"name": "现场.png", "mimeType": "image/png", "buffer": tiny_png()}
        await slip.locator("[name=photos]").set_input_files(files=[photo])

    await mediator.step("feedback", feedback, then="反馈")
    await mediator.shot("mediator-case-feedback")
    stored = await api.case(TOWN, case_id)
    slip = stored["feedback"]
    assert slip["mediated"] and slip["mediation_level"] == "专业调解" and len(slip["photos"]) == 1
    assert "本角色此刻没有可办理的步骤" in await mediator.page.inner_text("#actions")
    await mediator.go("overview", "overview")
    await mediator.shot("mediator-overview")
    await mediator.close()

    # The town reviews, closes, follows up and archives.
    await town.go(f"case/{case_id}", "case")
    await town.step("review", then="审核")

    async def close(p: Page) -> None:
        await p.locator("#step-close [name=summary]").fill("界址纠纷经司法所调解化解")

    await town.step("close", close, then="办结")

    async def follow_up(p: Page) -> None:
        await p.locator("#step-follow-up [name=satisfaction]").select_option("5")
        await p.locator("#step-follow-up [name=comment]").fill("满意，感谢司法所")

    await town.step("follow-up", follow_up, then="回访")
    await town.step("archive", then="归档")
    await town.shot("town-duty-case-archived")
    stored = await api.case(TOWN, case_id)
    assert stored["status"] == "CASE_STATUS_ARCHIVED"
    assert stored["evaluation"]["satisfaction"] == 5 and stored["evaluation"]["comment"] == "满意，感谢司法所"
    assert "案件已归档，闭环完成" in await town.page.inner_text("#actions")

    # A 工作指令 round trip: the town sends it down, the village 签收s and 办结s, the town sees it done.
    await town.go("directives", "directives")
    directive = town.page.locator("#directive-form")
    await directive.get_by_label("受令中心").select_option(VILLAGE)
    await directive.get_by_label("标题").fill("排查宅基地纠纷隐患")
    await directive.get_by_label("内容").fill("本周内完成全村排查并上报结果")
    await directive.locator("button[type=submit]").click()
    await town.page.wait_for_selector("#directives-out td:has-text('排查宅基地纠纷隐患')")
    for answer, text in (("签收", "已安排网格员排查"), ("办结", "排查完毕，发现隐患两处，已化解")):
        for _ in range(120):
            await village.go("directives", "directives")
            row = village.page.locator("#directives-in tr", has_text="排查宅基地纠纷隐患")
            if await row.locator("button", has_text=answer).count():
                break
            await village.page.wait_for_timeout(500)
        await row.locator("input[name=text]").fill(text)
        await row.locator("button", has_text=answer).click()
        await village.page.wait_for_selector(f"#directives-in tr:has-text('{text if answer == '办结' else '已签收'}')")
    await village.shot("village-duty-directives")
    for _ in range(120):
        sent = (await api.call(TOWN, "GET", "/api/v1/directives?direction=out"))["items"]
        if sent and sent[0]["status"] == "DIRECTIVE_STATUS_COMPLETED":
            break
        await town.page.wait_for_timeout(500)
    assert sent[0]["status"] == "DIRECTIVE_STATUS_COMPLETED" and sent[0]["result"] == "排查完毕，发现隐患两处，已化解"
    await town.go("directives", "directives")
    assert "已办结" in await town.page.inner_text("#directives-out")
    await town.shot("town-duty-directives")
    for view in ("overview", "alerts", "reports", "cases"):
        await town.go(view, view)
        await town.shot(f"town-duty-{view}")
    await village.close()
    await town.close()

    # A grid worker starts at 受理, and reads the case without being offered any step.
    await api.user(VILLAGE, "wanggeyuan", "grid_worker", VILLAGE)
    grid = await Console.open(browser, api.base(VILLAGE), "wanggeyuan")
    assert await grid.page.get_attribute("main", "data-ready") == "intake"
    assert await grid.menu() == ["一屏统览", "受理", "案件", "预警", "月报"]
    await grid.shot("grid-worker-intake")
    await grid.go(f"case/{case_id}", "case")
    assert await grid.page.inner_text("#no-steps") == "本角色只查看案件，不办理。"
    overdue = await grid.page.evaluate(
        """() => [FQ.overdue({deadline: '2020-01-01T00:00:00Z', status: 'CASE_STATUS_ASSIGNED'}),
                  FQ.overdue({deadline: '2020-01-01T00:00:00Z', status: 'CASE_STATUS_CLOSED'}),
                  FQ.overdue({deadline: '2999-01-01T00:00:00Z', status: 'CASE_STATUS_ASSIGNED'})]"""
    )
    assert overdue == [True, False, False]  # the 已超期 mark: past its deadline and not yet 办结
    await grid.close()

    # The province sees figures and feeds only, and every screen it is offered loads.
    province = await Console.open(browser, api.base(COUNTY), "shengji")
    menu = await province.menu()
    assert menu == ["一屏统览", "预警", "月报"], menu
    for view in ("overview", "alerts", "reports", "cases"):
        text = await province.go(view, "overview" if view == "cases" else view)
        assert "正在加载" not in text, view
        await province.shot(f"province-{view}")
    await province.go("reports", "reports")
    await province.page.locator("#report-form [name=format]").select_option("csv")
    async with province.page.expect_download() as started:
        await province.page.locator("#report-form button[type=submit]").click()
    download = await started.value
    assert download.suggested_filename.endswith(".csv"), download.suggested_filename
    saved = await download.path()
    report = (await asyncio.to_thread(saved.read_bytes)).decode("utf-8-sig")
    assert "受理数" in report and "测试县综治中心" in report, report[:200]
    async with province.page.expect_download() as started:
        await province.page.locator("#feed-form button[type=submit]").click()
    feed = await (await started.value).path()
    text = (await asyncio.to_thread(feed.read_bytes)).decode()
    assert json.loads(text) and "张三" not in text and "37170219850312004X" not in text  # figures, no parties
    await province.close()


@pytest.fixture
async def neighbours(
    tmp_path: Path, nats_server: Any, database_url: Callable[[str], str]
) -> AsyncIterator[LocalCounty]:
    """The sample county, its two towns neighbours of each other (三联)."""
    near = {"371702101": ["371702102"], "371702102": ["371702101"]}
    async with running_county(tmp_path, nats_server.url, database_url, neighbours=near) as local:  # type: ignore[arg-type]
        yield local


async def test_two_towns_run_a_joint_case_to_sign_off_and_a_project_passes_its_four_gates(
    neighbours: LocalCounty,
    browser: Browser,  # noqa: F811
) -> None:
    county, other = neighbours, "371702102"
    api = Api(county)
    await api.user(TOWN, "zhenzhiban", "duty_officer", TOWN)
    await api.user(other, "zhenzhiban2", "duty_officer", other)
    lead = await Console.open(browser, api.base(TOWN), "zhenzhiban")
    guest = await Console.open(browser, api.base(other), "zhenzhiban2")

    # The lead town opens the joint case, inviting its neighbour by name.
    await lead.go("joint", "joint")
    form = lead.page.locator("#joint-form")
    await form.locator("[name=title]").fill("两镇交界山林权属纠纷")
    await form.locator("[name=category]").select_option("山林土地")
    await form.locator("[name=description]").fill("两镇交界处山林界址争议，村民聚集。")
    await form.get_by_label("测试2镇综治中心").check()
    await form.locator("button[type=submit]").click()
    await lead.page.wait_for_selector("main[data-ready=joint-case]")
    joint_id = lead.page.url.rsplit("/", 1)[-1]
    await lead.shot("town-duty-joint-opened")

    async def submit(console: Console, form_id: str, fields: dict[str, str], then: str) -> None:
        for name, value in fields.items():
            field = console.page.locator(f"#{form_id} [name={name}]")
            if await field.evaluate("e => e.tagName") == "SELECT":
                await field.select_option(value)
            else:
                await field.fill(value)
        await console.page.locator(f"#{form_id} button[type=submit]").click()
        await console.page.wait_for_function(
            """([id, text]) => document.querySelector('main[data-ready=joint-case]') && (
                document.querySelector('main').innerText.includes(text)
                || document.querySelector('#' + id + ' .error')?.textContent)""",
            arg=[form_id, then],
            timeout=30_000,
        )
        assert then in await console.page.inner_text("main"), await console.page.inner_text("main")

    # The neighbour answers the invitation once it arrives, and takes part.
    for _ in range(120):
        await guest.go(f"joint-case/{joint_id}", "joint-case")
        if await guest.page.locator("#joint-answer").count():
            break
        await guest.page.wait_for_timeout(500)
    await submit(guest, "joint-answer", {"accept": "true"}, "已接受")
    await submit(guest, "joint-member", {"name": "王调解", "unit": "司法所", "role": "组长"}, "王调解")
    await lead.go(f"joint-case/{joint_id}", "joint-case")
    for _ in range(120):
        if "已接受" in await lead.page.inner_text("#participants"):
            break
        await lead.page.wait_for_timeout(500)
        await lead.go(f"joint-case/{joint_id}", "joint-case")
    await submit(lead, "joint-task", {"node": other, "title": "核实本镇一侧山林证", "deadline": "2030-01-10T17:00"},
                 "核实本镇一侧山林证")  # fmt: skip
    for _ in range(120):
        await guest.go(f"joint-case/{joint_id}", "joint-case")
        if await guest.page.locator("#joint-done").count():
            break
        await guest.page.wait_for_timeout(500)
    await submit(guest, "joint-done", {"result": "林权证已核实，界址清楚"}, "林权证已核实")
    await submit(guest, "joint-note", {"text": "两镇联合调解会定于周五"}, "两镇联合调解会定于周五")
    await submit(guest, "joint-sign", {"comment": "同意调解方案"}, "已签字（zhenzhiban2）")
    await guest.shot("neighbour-duty-joint-signed")
    for _ in range(120):
        await lead.go(f"joint-case/{joint_id}", "joint-case")
        if "已签字（zhenzhiban2）" in await lead.page.inner_text("#participants"):
            break
        await lead.page.wait_for_timeout(500)
    await submit(lead, "joint-sign", {"comment": "纠纷化解，联合办结"}, "已签字（zhenzhiban）")
    assert await lead.page.inner_text("#joint-status") == "联合办结"
    await lead.shot("town-duty-joint-closed")
    joint = await api.call(TOWN, "GET", f"/api/v1/joint-cases/{joint_id}")
    assert joint["status"] == "JOINT_CASE_STATUS_CLOSED"
    assert [p["signed_off"] for p in joint["participants"]] == [True, True]
    assert [(t["node"], t["done"]) for t in joint["tasks"]] == [(other, True)]

    # A 联防预警 from the lead town reaches its neighbour's 预警 screen with its reason.
    alert = {"kind": "boundary_dispute", "title": "交界山林聚集风险", "body": "两村村民可能聚集", "level": "high"}
    await api.call(TOWN, "POST", "/api/v1/risk-alerts", json=alert)
    for _ in range(120):
        await guest.go("alerts", "alerts")
        if "交界山林聚集风险" in await guest.page.inner_text("#risk-alerts"):
            break
        await guest.page.wait_for_timeout(500)
    row = await guest.page.locator("#risk-alerts tr", has_text="交界山林聚集风险").inner_text()
    assert "边界纠纷" in row and "高" in row and "测试1镇综治中心" in row and "两村村民可能聚集" in row, row
    await guest.shot("neighbour-duty-alerts")
    await guest.page.locator("#risk-alerts form.ack [name=note]").fill("已安排巡查")
    await guest.page.locator("#risk-alerts form.ack button").click()
    await guest.page.wait_for_selector("#risk-alerts td:has-text('均已确认')")
    raised = (await api.call(other, "GET", "/api/v1/risk-alerts"))["items"][0]
    assert [(a["node"], a["note"]) for a in raised["acks"]] == [(other, "已安排巡查")]
    await guest.close()

    # 吹哨 and 报到, a 攻坚专班 with a sub-task completed: all shown on the case.
    created = await api.call(TOWN, "POST", "/api/v1/cases", json={
        "client_request_id": "console-work-whistle", "channel": "群众来访", "category": "劳动争议",
        "division_code": TOWN, "description": "工地欠薪，二十余名工人聚集讨薪。"})  # fmt: skip
    case_id = created["case"]["id"]
    await lead.go(f"case/{case_id}", "case")
    await lead.page.locator("button.step[data-step=triage]").click()
    await lead.page.locator("#step-triage [name=response_class]").select_option("RESPONSE_CLASS_TASK_FORCE")
    await lead.page.locator("#step-triage button[type=submit]").click()
    refusal = lead.page.locator("#step-triage .error")
    await refusal.filter(has_text="时限").wait_for()  # the server's refusal, in its words
    assert stored_status(await api.case(TOWN, case_id)) == "CASE_STATUS_RECEIVED", await refusal.inner_text()

    async def triage(p: Page) -> None:
        await p.locator("#step-triage [name=response_class]").select_option("RESPONSE_CLASS_TASK_FORCE")
        await p.locator("#step-triage [name=deadline]").fill("2030-01-31T17:00")

    await lead.step("triage", triage, then="分类研判")

    async def whistle(p: Page) -> None:
        await p.locator("#step-whistle [name=reason]").fill("群体讨薪，召集相关部门")

    await lead.step("whistle", whistle, then="分类研判", shows="吹哨召集 人社所")

    async def report(p: Page) -> None:
        await p.locator("#step-report [name=department]").select_option("司法所")

    await lead.step("report", report, then="分类研判", shows="吹哨召集 司法所：已于")

    async def task_force(p: Page) -> None:
        form = p.locator("#step-task-force")
        await form.locator("[name=lead_department]").select_option("人社所")
        await form.locator("[name=sub_department_0]").select_option("司法所")
        await form.locator("[name=sub_task_0]").fill("组织劳资双方调解")
        await form.locator("[name=sub_deadline_0]").fill("2030-01-10T17:00")

    await lead.step("task-force", task_force, then="分类研判", shows="攻坚专班（牵头：人社所）")

    async def subtask(p: Page) -> None:
        await p.locator("#step-subtask-done [name=result]").fill("双方达成分期支付协议")

    await lead.step("subtask-done", subtask, then="分类研判", shows="已完成：双方达成分期支付协议")
    await lead.shot("town-duty-case-task-force")
    stored = await api.case(TOWN, case_id)
    assert [(s["department"], bool(s.get("reported_at"))) for s in stored["summons"]] == [
        ("人社所", False), ("司法所", True)]  # fmt: skip
    assert stored["lead_department"] == "人社所"
    assert [(t["department"], t["result"]) for t in stored["subtasks"]] == [("司法所", "双方达成分期支付协议")]

    # A project registered at the town passes its four gates; a hazard is tracked to resolution.
    await lead.go("projects", "projects")
    form = lead.page.locator("#project-form")
    await form.locator("[name=name]").fill("镇区污水管网改造")
    await form.locator("[name=kind]").select_option("拆迁")
    await form.locator("[name=people_affected]").fill("120")
    await form.get_by_label("测试1镇1村综治站").check()
    await form.locator("button[type=submit]").click()
    await lead.page.wait_for_selector("main[data-ready=project]")
    project_id = lead.page.url.rsplit("/", 1)[-1]
    for i, stage in enumerate(("立项", "决策", "实施", "验收")):
        assess = lead.page.locator("#assess-form")
        if i == 0:
            await assess.locator("[name=risk]").fill("部分住户临时出行受影响")
        await assess.locator("button[type=submit]").click()
        await lead.page.wait_for_selector("#pass-form")
        assert "低风险" in await lead.page.inner_text("#project-level")
        if i == 0:
            await lead.shot("town-duty-project-assessed")
            await lead.page.locator("form.resolve [name=resolution]").fill("设置临时便道")
            await lead.page.locator("form.resolve button").click()
            await lead.page.wait_for_selector("#hazards td:has-text('已销号')")
        await lead.page.locator("#pass-form button").click()
        after = "四评完成" if stage == "验收" else ("立项", "决策", "实施", "验收")[i + 1] + "环节"
        await lead.page.wait_for_function(
            "(t) => document.querySelector('main[data-ready=project] #project-stage')?.textContent === t", arg=after
        )
    await lead.shot("town-duty-project-done")
    project = await api.call(TOWN, "GET", f"/api/v1/projects/{project_id}")
    assert project["status"] == "completed"
    assert [g["status"] for g in project["gates"]] == ["passed"] * 4
    assert [(h["resolved"], h["resolution"]) for h in project["hazards"]] == [(True, "设置临时便道")]
    await lead.go("projects", "projects")
    await lead.shot("town-duty-projects-board")
    await lead.close()
