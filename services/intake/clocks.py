"""The clock watch: raises the deadline warning and the 督办 of every case this node holds, and
marks called departments that did not 报到 and task-force sub-tasks past their own deadlines.

All state is in the database (the case's deadline and which alarms were raised for it), so a
restart neither loses nor repeats an alarm; the fold refuses a second alarm for one deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Callable

from google.protobuf.message import Message
from sqlmodel import Session

from fengqiao.cases import store as casestore
from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.errors import FengqiaoError
from fengqiao.telemetry import current_headers, tracer
from fengqiao.v1 import case_pb2 as pb
from fengqiao.workdays import WorkCalendar
from services.intake import deadlines
from services.intake.config import IntakeSettings

log = logging.getLogger(__name__)
ACTOR = "时限监控"


class ClockWatch:
    """Scans the cases held here and appends the alarms that are due."""

    def __init__(
        self,
        *,
        db: Database,
        node_code: str,
        settings: IntakeSettings,
        clock: Clock,
        on_commit: Callable[[], None],
        calendar: Callable[[], WorkCalendar] = lambda: deadlines.MONDAY_TO_FRIDAY,
    ) -> None:
        self._calendar = calendar
        self._db = db
        self._node = node_code
        self._settings = settings
        self._clock = clock
        self._on_commit = on_commit

    def _owed(self, case: pb.Case, now: dt.datetime, supervisor: str) -> list[tuple[str, Message]]:
        calendar = self._calendar() if deadlines.counts_working_days(case, self._settings) else None
        return deadlines.owed_alarms(case, now, self._settings.warn_share, supervisor=supervisor, calendar=calendar)

    def _alarms(self, case: pb.Case) -> list[tuple[str, Message]]:
        return self._owed(case, self._clock.now(), deadlines.supervisor_of(self._node))

    def _raise_alarms(self, session: Session, *, case_id: str, headers: dict[str, str]) -> pb.Case:
        return casestore.advance(
            session,
            case_id=case_id,
            node_code=self._node,
            actor=ACTOR,
            steps=self._alarms,
            now=self._clock.now(),
            headers=headers,
        )

    async def scan_once(self) -> int:
        """Raise every alarm due now; returns how many cases got one."""
        now = self._clock.now()
        candidates = await self._db.run(lambda s: casestore.with_alarms_pending(s, holder_node=self._node))
        raised = 0
        for case in candidates:
            if not self._owed(case, now, self._node):
                continue
            with tracer.start_as_current_span("clock alarm"):
                headers = current_headers()
                try:
                    await self._db.write(functools.partial(self._raise_alarms, case_id=case.id, headers=headers))
                except FengqiaoError as exc:  # moved on meanwhile (closed, escalated): nothing owed
                    log.info("no alarm for %s: %s", case.receipt_no, exc.message)
                    continue
            raised += 1
        if raised:
            self._on_commit()
        return raised

    async def run(self) -> None:
        """Scan every ``clock_scan_interval_s`` until cancelled."""
        while True:
            try:
                await self.scan_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("clock watch scan failed; retrying")
            await asyncio.sleep(self._settings.clock_scan_interval_s)
