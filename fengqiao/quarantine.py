"""The outbox's quarantine: rows the relay gave up on, and how it tells a row's own failure from
the broker's state.

A row that fails by itself (too large for the broker, refused by the stream) is retried a bounded
number of times and then *kept* here with the reason; it stays in ``outbox``, never published
and never deleted, and the later rows of its aggregate wait behind it. A full upward buffer
(discard-new), a broker that is down or slow, is no row's fault (``holds_back``): the relay stops
and tries again later, from the same row.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from nats import errors as nats_errors
from nats.js import errors as js_errors
from sqlmodel import Session, col, select

from fengqiao.models import OutboxQuarantine

HOLD_REASONS = ("maximum bytes exceeded", "maximum messages exceeded", "maximum messages per subject", "insufficient")
"""JetStream's refusals when a stream (the upward buffer, discard-new) or the store is full."""

TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,
    nats_errors.ConnectionClosedError,
    nats_errors.NoServersError,
    nats_errors.NoRespondersError,
    nats_errors.OutboundBufferLimitError,
    nats_errors.StaleConnectionError,
    nats_errors.ConnectionReconnectingError,
    js_errors.ServiceUnavailableError,
)


def holds_back(exc: BaseException) -> bool:
    """Whether a failed publish is the broker's state (full, down, slow), not the row's fault."""
    if isinstance(exc, TRANSIENT):
        return True
    if isinstance(exc, js_errors.APIError):
        text = (exc.description or "").lower()
        return any(reason in text for reason in HOLD_REASONS)
    return False


def keep(
    session: Session,
    *,
    outbox_id: int,
    message_id: str,
    subject: str,
    aggregate: str,
    attempts: int,
    reason: str,
    now: dt.datetime,
) -> None:
    """Keep outbox row ``outbox_id`` out of publishing for good, with why (the row stays in ``outbox``;
    ``aggregate`` is "" when it names none)."""
    session.add(
        OutboxQuarantine(
            outbox_id=outbox_id,
            message_id=message_id,
            subject=subject,
            aggregate=aggregate[:200],
            attempts=attempts,
            reason=reason[:2000],
            quarantined_at=now,
        )
    )


def quarantined(session: Session) -> list[OutboxQuarantine]:
    """The quarantined rows, oldest first."""
    return list(session.exec(select(OutboxQuarantine).order_by(col(OutboxQuarantine.outbox_id))).all())


class Summary(NamedTuple):
    """How many rows are quarantined, since when, the first one's reason, and which aggregates wait."""

    rows: int
    oldest: dt.datetime | None
    reason: str
    held: list[str]


def summary(session: Session) -> Summary:
    """The node's quarantine at a glance (``/api/v1/nodes``)."""
    rows = quarantined(session)
    if not rows:
        return Summary(0, None, "", [])
    oldest = min(r.quarantined_at for r in rows)
    oldest = oldest if oldest.tzinfo is not None else oldest.replace(tzinfo=dt.UTC)
    return Summary(len(rows), oldest, rows[0].reason, sorted({r.aggregate for r in rows if r.aggregate}))
