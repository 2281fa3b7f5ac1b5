"""Per-service schemas from Alembic, and generated contracts that cannot drift from the code."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from alembic.script import ScriptDirectory
from conftest import Servers
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from minyi.docs import check
from shared.db import alembic_config, upgrade
from shared.settings import SERVICES


async def test_migrate_creates_each_schema_with_its_own_version_table(
    servers: Servers, server_env: dict[str, str]
) -> None:
    result = subprocess.run([sys.executable, "-m", "minyi.cli", "migrate"], env=server_env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "migrations at head." in result.stdout
    # Replicas starting at once migrate concurrently; the advisory lock makes that safe.
    replicas = [subprocess.Popen([sys.executable, "-m", "minyi.cli", "migrate"], env=server_env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for proc in replicas:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    await asyncio.to_thread(upgrade, "intake", servers.database_url)  # at head: nothing to do

    engine = create_async_engine(servers.database_url)
    async with engine.connect() as conn:
        for service in SERVICES:
            tables = set((await conn.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": service}
            )).scalars())
            assert {"outbox", "inbox", "alembic_version"} <= tables, service
            version = await conn.scalar(text(f'SELECT version_num FROM "{service}".alembic_version'))
            head = ScriptDirectory.from_config(alembic_config(service, servers.database_url)).get_current_head()
            assert head is not None and head.startswith(f"{service}_")
            assert version == head
        assert await conn.scalar(text(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'alembic_version' "
            "AND table_schema = 'public'")) == 0
    await engine.dispose()


def test_migrate_rejects_an_unknown_service(server_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "minyi.cli", "migrate", "billing"], env=server_env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "unknown service billing" in result.stderr


def test_generated_openapi_and_asyncapi_match_the_code() -> None:
    assert check() == [], "run `minyi docs` and commit docs/"


def test_every_error_answer_refers_to_the_one_problem_schema() -> None:
    import json
    from pathlib import Path

    from shared.errors import PROBLEM_JSON
    from shared.problems import PROBLEM_SCHEMA

    for service in SERVICES:
        document = json.loads((Path(__file__).parent.parent / "docs/openapi" / f"{service}.json").read_text())
        assert document["components"]["schemas"]["Problem"] == PROBLEM_SCHEMA, service
        errors = [(path, method, status, answer) for path, item in document["paths"].items()
                  for method, operation in item.items() for status, answer in operation["responses"].items()
                  if status.startswith(("4", "5")) and path != "/readyz"]  # /readyz: its checks, as JSON
        assert len(errors) > 10, service
        shared = document["components"].get("responses", {})
        for path, method, status, answer in errors:
            # Most refer to one of the shared error answers (shared/openapi_doc.py).
            answer = shared[answer["$ref"].removeprefix("#/components/responses/")] if "$ref" in answer else answer
            assert answer["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}, \
                (service, method, path, status)
