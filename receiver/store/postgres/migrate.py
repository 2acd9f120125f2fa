"""Apply the PostgreSQL schema migrations once, even when replicas start together.

Every ``migrations/NNNN_name.sql`` runs once, in order, and is recorded in
``schema_migrations``. All of it happens in one transaction under an advisory
lock, so two replicas starting at the same moment neither race nor apply a
file twice, and a failing file leaves the schema as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["MIGRATION_LOCK", "Migration", "applied_versions", "migrate", "migrations"]

# Advisory lock key (namespace, key) held while migrating ("pm" = pipemedic).
MIGRATION_LOCK = (0x706D, 1)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Return the shipped migrations in version order; a misnamed file is an error."""
    found: list[Migration] = []
    for entry in resources.files("receiver.store.postgres.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise ValueError(
                f"receiver/store/postgres/migrations/{entry.name}: migration files are named "
                "NNNN_lower_case_name.sql"
            )
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(
            f"receiver/store/postgres/migrations: duplicate migration versions {versions}"
        )
    return found


async def applied_versions(conn: Any) -> list[int]:
    """Return the versions recorded in ``schema_migrations``, oldest first."""
    rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [int(r["version"]) for r in rows]


async def migrate(conn: Any) -> list[int]:
    """Bring the schema up to date on ``conn`` (an asyncpg connection); return what ran."""
    ran: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        done = set(await applied_versions(conn))
        for migration in migrations():
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            ran.append(migration.version)
    return ran
