"""The schema as SQLAlchemy Core tables. Migrations (``migrations/versions``) build it; this mirrors them.

``changes`` has one row (``id`` 1) whose ``counter`` goes up in the same
transaction as every change to ``access_keys``: a running relay polls it
cheaply to know that its cache of keys is stale.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

# SQLite makes only an INTEGER PRIMARY KEY an alias of the row id (and so autoincrementing).
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

access_keys = Table(
    "access_keys", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 hex of the key; never the key
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("rpm", BigInteger, nullable=True),
    Column("tpm", BigInteger, nullable=True),
    Column("daily_tokens", BigInteger, nullable=True),
    Column("monthly_tokens", BigInteger, nullable=True),
    Column("models", Text, nullable=False, server_default="[]"),  # a JSON array of names or * patterns
    Column("origins", Text, nullable=False, server_default="[]"),  # a JSON array of browser origins
)

usage = Table(
    "usage", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("key_name", String(64), nullable=True),
    Column("route", String(32), nullable=False),
    Column("model", String(200), nullable=True),
    Column("status", Integer, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False, server_default="0"),
    Column("completion_tokens", BigInteger, nullable=False, server_default="0"),
    Column("estimated", Boolean, nullable=False, server_default=false()),
    Column("outcome", String(16), nullable=False),
    Column("ttfb_ms", Integer, nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("record_id", String(32), nullable=True),  # unique: a record written twice is stored once
    Index("ix_usage_time", "time"),
    Index("ux_usage_record_id", "record_id", unique=True),
    Index("ix_usage_key_name_time", "key_name", "time"),
)

# Tokens per named key and UTC day, kept by a trigger on ``usage`` (migration 0003): what quotas read.
usage_daily = Table(
    "usage_daily", metadata,
    Column("key_name", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("tokens", BigInteger, nullable=False, server_default="0"),
)

changes = Table(
    "changes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("counter", BigInteger, nullable=False, server_default="0"),
)
