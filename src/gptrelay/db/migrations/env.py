"""Alembic's environment: runs on the connection ``gptrelay.db.schema.migrate`` hands it.

``migrate`` opens an async engine, takes a lock so that relays starting
together migrate one at a time, and runs Alembic on that connection through
``connection.run_sync``; this file only configures the context on it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from gptrelay.db.tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("gptrelay's migrations run through gptrelay.db.schema.migrate(url), "
                       "which passes a connection in config.attributes['connection']")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters a table by copying it
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
