"""Deadlines in working days at a real village (issue 26): a matter taken in on the last working
day before 国庆 is due after the holiday on the calendar's adjusted days, its warning comes at
80 % of the working time, and a 延期 applied for after the deadline is refused with the reason."""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from devtools.natsserver import NatsServer
from fengqiao import workdays
from fengqiao.cases import lifecycle
from fengqiao.cases import store as casestore
from fengqiao.clock import CHINA_TZ, FakeClock
from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, intake_pb2_grpc
from harness.county import submit_request
from services.intake.clocks import ClockWatch
from services.intake.config import IntakeSettings
from tests.conftest import running_county

VILLAGE = "371702101001"
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def china(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CHINA_TZ).astimezone(dt.UTC)  # type: ignore[misc]


async def test_a_working_day_clock_across_national_day(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FQ_INTAKE_ROUTINE_WORKING_DAYS", "3")  # the county counts 即办 in working days
    clock = FakeClock(china(2026, 9, 30, 16, 30))  # the last working day before 国庆
    shape = {"towns": 1, "villages": 1}
    async with running_county(tmp_path, nats_server.url, database_url, VILLAGE, clock=clock, **shape) as county:
        node = county[VILLAGE]
        assert node.ctx is not None
        async with channel(node.grpc_address) as ch:
            api = intake_pb2_grpc.IntakeStub(ch)
            case = (await api.SubmitCase(submit_request(VILLAGE))).case
            due = china(2026, 10, 11)  # the end of the worked Saturday 10 October: 8, 9 and 10 October
            assert case.deadline.ToDatetime(dt.UTC) == due
            step = pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE)
            case = await api.Triage(intake_pb2.TriageRequest(case_id=case.id, actor="值班员", step=step))
            assert case.deadline.ToDatetime(dt.UTC) == due
            slip = pb.AssignmentSlip(department="司法所", requirement="调解")
            await api.Assign(intake_pb2.AssignRequest(case_id=case.id, actor="值班员", step=pb.Assigned(slip=slip)))

            calendar = workdays.load(IntakeSettings().calendar_file)
            watch = ClockWatch(
                db=node.ctx.db, node_code=VILLAGE, settings=IntakeSettings(), clock=clock,
                on_commit=lambda: None, calendar=lambda: calendar,
            )  # fmt: skip

            async def alarms() -> collections.Counter[str]:
                events = await node.ctx.db.run(lambda s: casestore.list_events(s, case_id=case.id))  # type: ignore[union-attr]
                return collections.Counter(lifecycle.event_type(e) for e in events)

            clock.set(china(2026, 10, 8, 23, 0))  # 80 % of the wall clock, but not of the working time
            await watch.scan_once()
            assert "deadline_warning" not in await alarms()
            clock.set(china(2026, 10, 10, 8, 10))  # 80 % of the 79.5 working hours: 10 October 08:06
            await watch.scan_once()
            assert (await alarms())["deadline_warning"] == 1

            in_time = pb.ExtensionRequested(reason="当事人外出务工，节后方能调解")
            in_time.new_deadline.FromDatetime(china(2026, 10, 20))
            clock.set(china(2026, 10, 11, 0, 1))  # one minute past the deadline
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await api.RequestExtension(
                    intake_pb2.RequestExtensionRequest(case_id=case.id, actor="司法所", step=in_time)
                )
            assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "延期须在时限届满前申请" in (late.value.details() or "")
            assert "extension_requested" not in await alarms()
