"""Assessment's bus handlers: the subtree sync storing, once each and in order, the project
events its events stream sources from below, so the county lists every project of the county
with its gates, hazards and disputes."""

from __future__ import annotations

from sqlmodel import Session

from fengqiao import writers
from fengqiao.decode import Decoder, Envelope, authorized, receive, written_within
from fengqiao.errors import BadMessage
from fengqiao.inbox import Handler
from fengqiao.v1 import assessment_pb2
from services.assessment import store

SYNC_CONSUMER = "fq-assessment-sync"


def _forged(event: assessment_pb2.ProjectEvent, project: assessment_pb2.Project) -> str:
    """Whether a second event at a place of a project's log claims another center than its own."""
    return "" if event.node == project.node else writers.FORGED


def project_event_handler(node_code: str) -> Handler:
    """Store a project event replicated from below, written by the project's center
    (``fengqiao.writers``); malformed, foreign or forged ones become dead letters, as does a second
    event at a place of the log already written (never dropped unseen); one ahead of its
    predecessor waits (``NotYet``)."""
    decode = Decoder(
        assessment_pb2.ProjectEvent,
        "项目事件",
        required=("id", "project_id", "seq", "payload"),
        checks=[written_within(node_code, itself=False)],
    )

    def apply(session: Session, envelope: Envelope[assessment_pb2.ProjectEvent]) -> None:
        event = envelope.event
        current = store.load_project(session, project_id=event.project_id, for_update=True)
        if store.has_event(session, event_id=event.id):
            return  # a copy of one already kept
        if current is not None and event.seq <= current.version:
            raise BadMessage(
                f"{_forged(event, current)}项目 {event.project_id} 的第 {event.seq} 号事件已由另一事件写入"
            )
        authorized(envelope, "project", None if current is None else writers.project_owners(current))
        store.store_replicated(session, event=event)

    return receive(decode, apply)
