"""Alembic's environment: migrations run on the connection ``fengqiao.migrations`` hands over,
inside the transaction that holds the migration lock (never on a connection of their own)."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.types import TypeEngine
from sqlmodel import SQLModel


def render_item(kind: str, item: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Write SQLModel's column types as plain SQLAlchemy ones, so a migration imports no model code."""
    if kind == "type" and isinstance(item, TypeEngine):
        name = type(item).__name__
        if name == "AutoString":
            length = getattr(item, "length", None)
            return f"sa.String({length})" if length else "sa.String()"
        if name == "UTCDateTime":
            return "sa.DateTime(timezone=True)"
    return False


def run() -> None:
    """Run the migrations on the connection ``fengqiao.migrations`` put in the config."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("fengqiao's migrations run through fengqiao.migrations (fengqiao db upgrade), not alembic")
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,  # the caller imports every table first (host.node.import_tables)
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters a table by copying it
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if getattr(context, "config", None) is not None:  # run by Alembic, not merely imported
    run()
