"""The group commit's table specs agree with the migrated PostgreSQL schema: every declared
column exists with the declared type, and every column without a default is declared."""

from __future__ import annotations

import pytest
from psycopg_pool import AsyncConnectionPool

from services.trading.tables import WRITE_ORDER, Table

# information_schema's names of the types the specs use.
PG_NAMES = {
    "bigint": "bigint",
    "int": "integer",
    "smallint": "smallint",
    "numeric": "numeric",
    "text": "text",
    "bool": "boolean",
    "timestamptz": "timestamp with time zone",
    "bytea": "bytea",
}


@pytest.mark.parametrize("table", WRITE_ORDER, ids=lambda t: t.name)
async def test_spec_matches_the_schema(db_pool: AsyncConnectionPool, table: Table) -> None:
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT column_name, data_type, column_default IS NULL AND is_nullable = 'NO'"
            " FROM information_schema.columns WHERE table_name = %s",
            (table.name,),
        )
        schema = {name: (data_type, required) for name, data_type, required in await cur.fetchall()}
    assert schema, f"{table.name} is not in the database"
    declared = {c.name: PG_NAMES[c.pg_type] for c in table.columns}
    assert {name: schema[name][0] for name in declared if name in schema} == declared
    required = {name for name, (_, needed) in schema.items() if needed}
    assert required <= set(declared), f"{table.name}: undeclared required columns"
