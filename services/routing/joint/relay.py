"""Recording 三联 joint-case and 联防 risk-alert events, and their relay through the county hub.

A town records its own event with its effect and publishes it up (outbox → its events stream,
which the county's sources). The county keeps it and relays the very same bytes down to every
other participant (``relay``, ``down_subject(county, town, …)``); a town takes what the county
relays from its down stream, which buffers while the town or its link is down (the handlers are
in ``joint.consumers``). Every step is one transaction with the inbox or outbox row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from sqlmodel import Session

from fengqiao import eventlog, outbox
from fengqiao.divisions import down_subject
from fengqiao.security import audit
from fengqiao.telemetry import current_headers
from fengqiao.v1 import routing_pb2 as pb
from services.routing.joint import rules, store


def relay(
    publisher: str,
    to: Sequence[str],
    kind: str,
    event_type: str,
    event_id: str,
    data: bytes,
    headers: Mapping[str, str],
) -> list[outbox.Message]:
    """The relay of one event down to each of ``to``; the msg id names the addressee, since the
    down stream deduplicates across its subjects."""
    return [
        outbox.Message(down_subject(publisher, code, kind, event_type), f"{event_id}.{code}", data, headers)
        for code in to
    ]


@dataclasses.dataclass(frozen=True)
class JointLog:
    """The joint cases' timelines as this center records its own events: each event kept as its
    author serialized it and the case refolded from the whole timeline; a town's event goes up
    to the hub, the county's own down to the participants."""

    county: str

    def fold(self, state: pb.JointCase | None, event: pb.JointEvent) -> pb.JointCase:
        """The case after ``event``; raises when the event is illegal here."""
        return rules.apply_joint(state, event, county=self.county)

    def save(
        self, session: Session, changes: Sequence[eventlog.Change[pb.JointCase, pb.JointEvent]], *, now: dt.datetime
    ) -> list[pb.JointCase]:
        """Keep each event in its timeline; each case as refolded from the timeline."""
        stored = []
        for change in changes:
            case = change.before
            for event in change.events:
                data = event.SerializeToString(deterministic=True)
                case = store.add_event(session, event=event, data=data, county=self.county, now=now)
            assert case is not None  # a change has events
            stored.append(case)
        return stored

    def messages(self, state: pb.JointCase, event: pb.JointEvent, headers: Mapping[str, str]) -> list[outbox.Message]:
        """Up to the hub from a town; from the county, down to every participant."""
        data = event.SerializeToString(deterministic=True)
        if event.node == self.county:
            to = rules.recipients(state, sender=self.county)
            return relay(self.county, to, "joint", event.WhichOneof("payload") or "", event.id, data, headers)
        return [eventlog.published(event, "joint", headers, data=data)]

    def audit_entry(self, state: pb.JointCase, event: pb.JointEvent, *, now: dt.datetime) -> audit.Entry:
        """``joint.<event type>`` by the event's actor."""
        return eventlog.chained(event, "joint", event.joint_case_id, at=now)


def record_joint(session: Session, *, event: pb.JointEvent, county: str, now: dt.datetime) -> pb.JointCase:
    """Record an event of this center: checked against the case here, numbered one above every
    event seen here, kept, and queued up to the hub (or, at the county, down to the participants).

    An event already recorded is a retry of the same client request (its id follows from the
    request id): the joint case is returned as it is. Two such retries in one group write share
    its session, so the second finds the first's event; in separate transactions the case's row
    lock orders them, and two openings collide on the case's key (the group then runs each alone)."""
    current = store.get_joint(session, joint_id=event.joint_case_id, for_update=True)
    if current is not None and store.has_event(session, event_id=event.id):
        return current
    event.lamport = store.next_lamport(session, joint_id=event.joint_case_id)
    return eventlog.record_one(session, JointLog(county), current, event, headers=current_headers(), now=now)


def _keep_alert(session: Session, alert: pb.RiskAlert, event: pb.RiskAlertEvent, now: dt.datetime) -> None:
    store.put_alert(session, alert=alert)


ALERTS = eventlog.Kind("alert", rules.apply_alert, _keep_alert, about=lambda event: event.alert_id)
"""The risk alerts a town raises or acknowledges: kept as its copy here, published up to the hub."""


def record_alert(session: Session, *, event: pb.RiskAlertEvent, now: dt.datetime) -> pb.RiskAlert:
    """Record a risk-alert event of this town and queue it up to the hub."""
    current = store.get_alert(session, alert_id=event.alert_id)
    return eventlog.record_one(session, ALERTS, current, event, headers=current_headers(), now=now)
