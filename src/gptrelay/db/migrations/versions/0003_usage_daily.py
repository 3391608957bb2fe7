"""Tokens per key and UTC day, kept by the database as usage rows arrive, so that a relay reads its
quotas' counts from a few rows (keys times days) rather than summing a month of records every few seconds.

A trigger adds each inserted ``usage`` row of a named key to ``usage_daily``; a row skipped as already
stored (its ``record_id`` seen before) inserts nothing, so it adds nothing. Every writer (relays, the
CLI, a spool's import) is counted the same way. The rows already stored are summed once, here.

A later migration that rebuilds ``usage`` on SQLite (``batch_alter_table`` copies the table) drops the
trigger with it and must create it again.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# SQLite stores a time as text, 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (the writers convert): its day is the first 10.
_SQLITE_DAY = "substr({row}.time, 1, 10)"
_POSTGRES_DAY = "({row}.time AT TIME ZONE 'UTC')::date"

_SQLITE_TRIGGER = f"""
CREATE TRIGGER usage_daily_add AFTER INSERT ON usage WHEN NEW.key_name IS NOT NULL
BEGIN
    INSERT INTO usage_daily (key_name, day, tokens)
    VALUES (NEW.key_name, {_SQLITE_DAY.format(row="NEW")}, NEW.prompt_tokens + NEW.completion_tokens)
    ON CONFLICT (key_name, day) DO UPDATE SET tokens = usage_daily.tokens + excluded.tokens;
END
"""

_POSTGRES_FUNCTION = f"""
CREATE FUNCTION usage_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.key_name IS NOT NULL THEN
        INSERT INTO usage_daily (key_name, day, tokens)
        VALUES (NEW.key_name, {_POSTGRES_DAY.format(row="NEW")}, NEW.prompt_tokens + NEW.completion_tokens)
        ON CONFLICT (key_name, day) DO UPDATE SET tokens = usage_daily.tokens + EXCLUDED.tokens;
    END IF;
    RETURN NULL;
END
$$
"""
_POSTGRES_TRIGGER = ("CREATE TRIGGER usage_daily_add AFTER INSERT ON usage "
                     "FOR EACH ROW EXECUTE FUNCTION usage_daily_add()")


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("key_name", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),  # UTC
        sa.Column("tokens", sa.BigInteger, nullable=False, server_default="0"),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    day = (_SQLITE_DAY if sqlite else _POSTGRES_DAY).format(row="usage")
    op.execute(f"INSERT INTO usage_daily (key_name, day, tokens) "
               f"SELECT key_name, {day}, sum(prompt_tokens + completion_tokens) FROM usage "
               f"WHERE key_name IS NOT NULL GROUP BY key_name, {day}")
    if sqlite:
        op.execute(_SQLITE_TRIGGER)
    else:
        op.execute(_POSTGRES_FUNCTION)
        op.execute(_POSTGRES_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS usage_daily_add")
    else:
        op.execute("DROP TRIGGER IF EXISTS usage_daily_add ON usage")
        op.execute("DROP FUNCTION IF EXISTS usage_daily_add()")
    op.drop_table("usage_daily")
