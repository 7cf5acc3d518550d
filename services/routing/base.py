"""What every Routing method builds on: finding a case of the subtree, and the cases held here,
which its case steps advance through the one path every service uses (``HeldCases``)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlmodel import Session

from fengqiao.cases import store as casestore
from fengqiao.cases.held import HeldCases
from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.errors import InvalidArgument, NotFound
from fengqiao.security.sealing import Keyring
from fengqiao.topology import Topology
from fengqiao.v1 import case_pb2 as pb
from services.routing.config import RoutingSettings
from services.routing.departments import DepartmentFile
from services.routing.policy import PolicyFile

E = TypeVar("E")
T = TypeVar("T")


class RoutingBase:
    """State and helpers shared by the Routing methods."""

    def __init__(
        self,
        *,
        db: Database,
        node_code: str,
        topology: Topology,
        settings: RoutingSettings,
        clock: Clock,
        policy: PolicyFile,
        departments: DepartmentFile,
        key: Keyring,
        on_commit: Callable[[], None],
    ) -> None:
        self._db = db
        self._node = node_code
        self._topology = topology
        self._settings = settings
        self._clock = clock
        self._policy = policy
        self._departments = departments
        self._on_commit = on_commit
        self._key = key
        self._held_cases = HeldCases(db=db, node_code=node_code, clock=clock, key=key, on_commit=on_commit)

    async def _case(self, case_id: str) -> pb.Case:
        case = await self._db.read(lambda s: casestore.find_case(s, key=case_id))
        if case is None or not case.origin_node.startswith(self._node):
            raise NotFound(f"案件 {case_id} 不存在或不在本中心辖区")
        return case

    def _new_event(self, message: Callable[..., E], actor: str, *, event_id: str = "", **ids: Any) -> E:
        """A new event of this center by ``actor``, now: a fresh id unless ``event_id`` is given."""
        if not actor.strip():
            raise InvalidArgument("actor", "操作人不能为空")
        event = message(id=event_id or str(uuid.uuid4()), node=self._node, actor=actor, **ids)
        event.at.FromDatetime(self._clock.now())  # type: ignore[attr-defined]
        return event

    async def _write(self, record: Callable[[Session, dt.datetime], T]) -> tuple[T, dt.datetime]:
        """Run ``record`` in a write transaction, now, and wake the outbox relay; the result and
        the moment it was recorded at."""
        now = self._clock.now()
        result = await self._db.write(lambda s: record(s, now))
        self._on_commit()
        return result, now
