"""Each service's migrations build exactly the tables its models describe."""

from __future__ import annotations

import asyncio
import importlib
import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import Servers
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import upgrade
from shared.settings import SERVICES


def _not_modelled(table: str) -> bool:
    """Tables the migrations make that no model describes: alembic's own, and the partitions a
    reconciliation job creates for its findings (identity migration 0011) in a shared database."""
    return table == "alembic_version" or re.fullmatch(r"reconciliation_items_[0-9a-f]{32}", table) is not None


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_match_the_models(servers: Servers, service: str) -> None:
    await asyncio.to_thread(upgrade, service, servers.database_url)
    metadata: MetaData = importlib.import_module(f"services.{service}.models").Base.metadata

    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={
            "include_schemas": True, "target_metadata": metadata, "version_table_schema": service,
            "include_name": lambda name, kind, _: kind != "schema" or name == service,
            "compare_type": True, "compare_server_default": False,
        })
        return [d for d in compare_metadata(context, metadata)
                if not (isinstance(d, tuple) and d[0] == "remove_table" and _not_modelled(d[1].name))]

    engine = create_async_engine(servers.database_url)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == [], f"{service}: migrations and models differ: {differences}"
