"""The cases this node holds, as every service's step methods advance them: one path for a case
step, whichever service takes it (Intake's closed loop, Routing's 上报 and dispatch).

Every case step request carries the same envelope — the case, who acts, the version the caller
expects — and the step's slip; the slip is the service's business, the envelope is handled here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fengqiao.cases import store
from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.errors import InvalidArgument
from fengqiao.security.sealing import Keyring
from fengqiao.telemetry import current_headers
from fengqiao.v1 import case_pb2 as pb

RECORDED = "本步已记录"


class CaseStep(Protocol):
    """What every case step request carries (intake's TriageRequest, routing's DispatchRequest, ...)."""

    @property
    def case_id(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def expected_version(self) -> int: ...


class HeldCases:
    """Appends steps to the cases held at ``node_code``, one transaction per step."""

    def __init__(
        self, *, db: Database, node_code: str, clock: Clock, key: Keyring, on_commit: Callable[[], None]
    ) -> None:
        self._db = db
        self._node = node_code
        self._clock = clock
        self._key = key
        self._on_commit = on_commit

    async def advance(self, request: CaseStep, steps: store.Steps) -> pb.Case:
        """Append, as this node's events by the request's actor, the steps that ``steps`` gives for
        the case's current state, and answer the case after them, its personal data opened.

        The answer never fails once the step is committed (see ``recorded``).
        ``expected_version`` 0 takes any version; another that is not the case's current one
        refuses the step (``IllegalTransition``, with the reason in Chinese) and changes nothing.
        """
        actor = request.actor
        if not actor.strip():
            raise InvalidArgument("actor", "操作人不能为空")
        now, headers = self._clock.now(), current_headers()
        case = await self._db.write(
            lambda s: store.advance(
                s,
                case_id=request.case_id,
                node_code=self._node,
                actor=actor,
                steps=steps,
                now=now,
                headers=headers,
                expected_version=request.expected_version,
            )
        )
        self._on_commit()  # wakes the outbox: the events are committed
        return recorded(self._key.opened(case))


def recorded(answer: pb.Case) -> pb.Case:
    """The answer to a committed step: whatever goes wrong opening it now, the step stands, so
    an answer whose personal data cannot be shown says so and that the step was recorded (an
    error here would invite a retry that writes the step twice)."""
    if answer.personal_note and not answer.personal_note.startswith(RECORDED):
        answer.personal_note = f"{RECORDED}（案件版本 {answer.version}）。{answer.personal_note}"
    return answer
