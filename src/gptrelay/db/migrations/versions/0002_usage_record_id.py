"""Usage records get an id of their own, unique, so that a batch written twice (given up on after
it had been committed, then imported from the spool) is stored once.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage") as table:  # SQLite alters a table by copying it
        table.add_column(sa.Column("record_id", sa.String(32), nullable=True))  # rows from before have none
    op.create_index("ux_usage_record_id", "usage", ["record_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_usage_record_id", "usage")
    with op.batch_alter_table("usage") as table:
        table.drop_column("record_id")
