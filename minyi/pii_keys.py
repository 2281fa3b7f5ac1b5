"""`minyi pii-keys`: the keyring file that encrypts personal data, and the data stored under it.

A keyring (format in `shared/pii.py`) holds data keys by id, the id of the current one, and the
blind-index key. Every stored blob names the key it was made with, so rotating is: add a key and
make it current (`rotate`, or `rotate --stage` then `activate` when several pods must all know the
key before any of them writes with it), roll the services so they load it, rewrite the stored blobs
under it (`reencrypt`), and drop the old key (`retire`) once the database holds nothing under it.
The blind-index key never changes, so lookups by ID number or phone keep matching across rotations.

Running services read the keyring once, at their first use of it: every step that changes the
file is followed by putting the file where the services read it and restarting them.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from shared.db import Database
from shared.pii import BLOB_VERSION, Keyring, PiiError, fsync_dir, reencrypt
from shared.settings import SERVICES, Settings

Say = Callable[[str], None]


class Refused(Exception):
    """The command cannot do what was asked; the message says why and what to do instead."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---- where encrypted data is stored ------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    # The associated data the service encrypts this column with; decrypting needs the same.
    context: str


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    # The primary key as (column, SQL type): batches are walked and rows updated by it.
    key: tuple[tuple[str, str], ...]
    columns: tuple[Column, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


# Every column of every service that holds a blob of `shared.pii.encrypt`. A new one must be added
# here, or `reencrypt` leaves it under the old key and `retire` cannot see it (a test compares this
# list with the services' tables).
CATALOG: tuple[Table, ...] = (
    Table("intake", "reports", (("id", "text"),), (
        Column("reporter_name", "intake.report.reporter_name"),
        Column("reporter_phone", "intake.report.reporter_phone"),
        Column("reporter_id_number", "intake.report.reporter_id_number"),
    )),
    Table("intake", "report_supports", (("id", "text"),), (
        Column("supporter_name", "intake.support.supporter_name"),
        Column("supporter_phone", "intake.support.supporter_phone"),
    )),
    Table("routing", "grid_platforms", (("id", "text"),), (
        Column("secret", "routing.grid_platforms.secret"),
        Column("api_key", "routing.grid_platforms.api_key"),
    )),
    Table("identity", "deputies", (("id", "text"),), (
        Column("phone_encrypted", "identity.deputy.phone"),
    )),
    Table("identity", "registry_records", (("source", "text"), ("record_id", "text")), (
        Column("id_number_encrypted", "identity.registry.id_number"),
        Column("name_encrypted", "identity.registry.name"),
    )),
    Table("identity", "voters", (("id", "bigint"),), (
        Column("id_number_encrypted", "identity.voter.id_number"),
        Column("name_encrypted", "identity.voter.name"),
    )),
)


def tables_of(services: Sequence[str]) -> list[Table]:
    unknown = sorted(set(services) - set(SERVICES))
    if unknown:
        raise Refused(f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICES)}", exit_code=2)
    wanted = services or SERVICES
    return [t for t in CATALOG if t.schema in wanted]


# ---- the keyring file --------------------------------------------------------------------------


def load(path: Path) -> Keyring:
    try:
        return Keyring.from_file(path)
    except FileNotFoundError:
        raise Refused(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise Refused(str(exc)) from None


def create(path: Path) -> Keyring:
    """A new keyring in a new 0600 file; an existing file is never overwritten."""
    keyring = Keyring.generate()
    if not path.parent.is_dir():
        raise Refused(f"{path.parent}: no such directory")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Refused(f"{path} exists; refusing to overwrite a keyring (data written under it would be "
                      "lost). Use `minyi pii-keys rotate` to add a key to it.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(keyring.to_json())
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return keyring


def replace(path: Path, keyring: Keyring) -> None:
    """Write the keyring over `path` all at once: a crash leaves the old file or the new one, never half."""
    target = path.resolve()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)  # 0600
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(keyring.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def rotate(path: Path, *, stage: bool = False, key_id: str | None = None) -> tuple[Keyring, str]:
    """Add a fresh data key; current at once, or (`stage`) only known until `activate`. Returns the
    keyring written and the new key's id."""
    keyring = load(path)
    try:
        grown = keyring.with_new_current_key(key_id)
    except ValueError as exc:
        raise Refused(str(exc), exit_code=2) from None
    added = grown.current_key_id
    if stage:
        grown = grown.with_current_key(keyring.current_key_id)
    replace(path, grown)
    return grown, added


def activate(path: Path, key_id: str) -> Keyring:
    keyring = load(path)
    if key_id not in keyring.key_ids:
        raise Refused(f"{path} has no key {key_id!r}; its keys: {', '.join(keyring.key_ids)}")
    changed = keyring.with_current_key(key_id)
    replace(path, changed)
    return changed


def describe(keyring: Keyring) -> str:
    others = [k for k in keyring.key_ids if k != keyring.current_key_id]
    return f"current key {keyring.current_key_id}" + (f"; also {', '.join(others)} for reading" if others else "")


# ---- the stored blobs --------------------------------------------------------------------------


def database_url(settings: Settings) -> str:
    # Without a URL: the embedded PostgreSQL of `minyi up`.
    return settings.database_url or f"postgresql+asyncpg://postgres@127.0.0.1:{settings.postgres_port}/minyi"


async def connect(settings: Settings, purpose: str) -> Database:
    url = database_url(settings)
    db = Database.connect(url, application_name=f"minyi-pii-keys-{purpose}", pool_size=2)
    try:
        await db.ping(timeout=10)
    except Exception as exc:
        await db.dispose()
        shown = make_url(url).render_as_string(hide_password=True)
        raise Refused(f"cannot reach PostgreSQL at {shown}: {type(exc).__name__}: {exc}") from None
    return db


def _key_id_sql(column: str) -> str:
    # CASE, not AND: PostgreSQL may evaluate both sides of an AND, and get_byte fails past the end.
    return (f"CASE WHEN length({column}) < 2 THEN '?' WHEN get_byte({column}, 0) <> {BLOB_VERSION} THEN '?' "
            f"WHEN length({column}) < 2 + get_byte({column}, 1) THEN '?' "
            f"ELSE encode(substring({column} FROM 3 FOR get_byte({column}, 1)), 'escape') END")


def _header(key_id: str) -> bytes:
    raw = key_id.encode("ascii")
    return bytes((BLOB_VERSION, len(raw))) + raw


def _stale_sql(column: str) -> str:
    """True for a blob that is not under the key whose header is `:header`."""
    return f"({column} IS NOT NULL AND substring({column} FROM 1 FOR :header_length) <> :header)"


# (table, column) -> blobs by key id; '?' for a value that is not a blob at all.
Usage = dict[tuple[str, str], Counter[str]]


async def _exists(db: Database, table: Table) -> bool:
    async with db.engine.connect() as conn:
        return bool(await conn.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": table.qualified}))


async def usage(db: Database, tables: Sequence[Table]) -> Usage:
    """How many stored blobs each key encrypts, per column; a table not created yet holds none."""
    out: Usage = {}
    for table in tables:
        present = await _exists(db, table)
        for column in table.columns:
            counts: Counter[str] = Counter()
            if present:
                async with db.engine.connect() as conn:
                    rows = await conn.execute(text(
                        f"SELECT {_key_id_sql(column.name)} AS key_id, count(*) FROM {table.qualified} "
                        f"WHERE {column.name} IS NOT NULL GROUP BY 1"))
                    counts.update({str(r[0]): int(r[1]) for r in rows})
            out[(table.qualified, column.name)] = counts
    return out


def print_usage(title: str, counts: Usage, say: Say) -> None:
    say(title)
    width = max((len(f"{t}.{c}") for t, c in counts), default=0)
    for (table, column), by_key in counts.items():
        shown = ", ".join(f"{k}: {n:,}" for k, n in sorted(by_key.items())) or "(none)"
        say(f"  {f'{table}.{column}':<{width}}  {shown}")


def total_under(counts: Usage, key_id: str) -> int:
    return sum(by_key.get(key_id, 0) for by_key in counts.values())


async def check_readable(db: Database, keyring: Keyring, tables: Sequence[Table], counts: Usage) -> None:
    """Decrypt one blob per column and key before writing anything: a wrong keyring (the dev one,
    another installation's) fails here rather than halfway through."""
    for table in tables:
        for column in table.columns:
            for key_id in sorted(counts.get((table.qualified, column.name), Counter())):
                if key_id == "?":
                    raise Refused(f"{table.qualified}.{column.name} holds values that are not encrypted blobs")
                if key_id not in keyring.key_ids:
                    raise Refused(f"{table.qualified}.{column.name} holds blobs under key {key_id!r}, which this "
                                  f"keyring does not have ({', '.join(keyring.key_ids)}); is it the keyring the "
                                  "services use?")
                async with db.engine.connect() as conn:
                    blob = await conn.scalar(text(
                        f"SELECT {column.name} FROM {table.qualified} "
                        f"WHERE {column.name} IS NOT NULL AND substring({column.name} FROM 1 FOR :header_length) "
                        "= :header LIMIT 1"), _header_params(key_id))
                if blob is None:
                    continue  # rewritten meanwhile
                try:
                    reencrypt(keyring, bytes(blob), context=column.context)
                except PiiError as exc:
                    raise Refused(f"{table.qualified}.{column.name}: a blob under {key_id} does not decrypt with "
                                  f"this keyring ({exc}); is it the keyring the services use?") from None


def _header_params(key_id: str) -> dict[str, Any]:
    header = _header(key_id)
    return {"header": header, "header_length": len(header)}


@dataclass
class Rewritten:
    rows: int = 0
    blobs: int = 0
    # Rows a service changed between our read and our write; they are looked at again.
    raced: int = 0
    by_table: dict[str, int] = field(default_factory=dict)


# PostgreSQL codes worth a retry of the batch: deadlock, lock timeout, serialization failure.
_RETRYABLE = frozenset({"40P01", "55P03", "40001"})


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)


async def stale_rows(db: Database, table: Table, key_id: str, after: tuple[Any, ...] | None,
                      batch: int) -> list[Any]:
    keys = ", ".join(name for name, _ in table.key)
    stale = " OR ".join(_stale_sql(c.name) for c in table.columns)
    where = f"({stale})"
    params: dict[str, Any] = {**_header_params(key_id), "batch": batch}
    if after is not None:
        where += f" AND ({keys}) > ({', '.join(f':after{i}' for i in range(len(after)))})"
        params.update({f"after{i}": v for i, v in enumerate(after)})
    columns = ", ".join(c.name for c in table.columns)
    async with db.engine.connect() as conn:
        result = await conn.execute(text(
            f"SELECT {keys}, {columns} FROM {table.qualified} WHERE {where} ORDER BY {keys} LIMIT :batch"), params)
        return list(result.all())


async def rewrite_rows(db: Database, keyring: Keyring, table: Table, rows: Sequence[Any]) -> tuple[int, int]:
    """Rewrite the rows' stale blobs, each only if it is still what was read (a service may have
    written the row meanwhile, under the current key). Returns (rows, blobs) rewritten."""
    current = _header(keyring.current_key_id)
    nkeys = len(table.key)
    keys: list[list[Any]] = [[] for _ in table.key]
    old: list[list[bytes | None]] = [[] for _ in table.columns]
    new: list[list[bytes | None]] = [[] for _ in table.columns]
    blobs_of_row: list[int] = []
    for row in rows:
        for i in range(nkeys):
            keys[i].append(row[i])
        changed = 0
        for j, column in enumerate(table.columns):
            blob = row[nkeys + j]
            value = None if blob is None else bytes(blob)
            old[j].append(value)
            if value is None or value.startswith(current):
                new[j].append(value)
                continue
            try:
                new[j].append(reencrypt(keyring, value, context=column.context))
            except PiiError as exc:
                where = ", ".join(f"{name}={row[i]!r}" for i, (name, _) in enumerate(table.key))
                raise Refused(f"{table.qualified}.{column.name} ({where}): {exc}") from None
            changed += 1
        blobs_of_row.append(changed)
    arrays = [f"CAST(:k{i} AS {sql_type}[])" for i, (_, sql_type) in enumerate(table.key)]
    names = [f"k{i}" for i in range(nkeys)]
    for j in range(len(table.columns)):
        arrays += [f"CAST(:o{j} AS bytea[])", f"CAST(:n{j} AS bytea[])"]
        names += [f"o{j}", f"n{j}"]
    sets = ", ".join(f"{c.name} = v.n{j}" for j, c in enumerate(table.columns))
    match = " AND ".join([f"t.{name} = v.k{i}" for i, (name, _) in enumerate(table.key)]
                         + [f"t.{c.name} IS NOT DISTINCT FROM v.o{j}" for j, c in enumerate(table.columns)])
    statement = text(f"UPDATE {table.qualified} AS t SET {sets} FROM unnest({', '.join(arrays)}) "
                     f"AS v({', '.join(names)}) WHERE {match} "
                     f"RETURNING {', '.join(f'v.k{i}' for i in range(nkeys))}")
    params: dict[str, Any] = {f"k{i}": keys[i] for i in range(nkeys)}
    for j in range(len(table.columns)):
        params[f"o{j}"], params[f"n{j}"] = old[j], new[j]
    for attempt in range(1, 6):
        try:
            async with db.engine.begin() as conn:
                # A service waiting on one of these rows waits at most this long; then we retry instead.
                await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                written = {tuple(r) for r in await conn.execute(statement, params)}
            break
        except DBAPIError as exc:
            if _sqlstate(exc) not in _RETRYABLE or attempt == 5:
                raise
            await asyncio.sleep(0.2 * attempt)
    row_keys = list(zip(*keys, strict=True))
    blobs = sum(n for k, n in zip(row_keys, blobs_of_row, strict=True) if k in written)
    return len(written), blobs


async def rewrite_stale(db: Database, keyring: Keyring, tables: Sequence[Table], *, batch: int, say: Say,
                        every_seconds: float = 5.0) -> Rewritten:
    """Rewrite every blob not under the current key, a batch per transaction. Resumable: what is
    already under the current key is never selected again."""
    done = Rewritten()
    key_id = keyring.current_key_id
    for table in tables:
        if not await _exists(db, table):
            say(f"  {table.qualified}: no such table yet")
            continue
        stale = " OR ".join(_stale_sql(c.name) for c in table.columns)
        async with db.engine.connect() as conn:
            total = int(await conn.scalar(text(f"SELECT count(*) FROM {table.qualified} WHERE {stale}"),
                                          _header_params(key_id)) or 0)
        if total == 0:
            say(f"  {table.qualified}: nothing to rewrite")
            done.by_table[table.qualified] = 0
            continue
        rows_done = 0
        next_note = time.monotonic() + every_seconds
        # A row a service rewrote between our read and our write is looked at again in the next pass.
        for _ in range(5):
            after: tuple[Any, ...] | None = None
            raced = 0
            while rows := await stale_rows(db, table, key_id, after, batch):
                after = tuple(rows[-1][: len(table.key)])
                written, blobs = await rewrite_rows(db, keyring, table, rows)
                rows_done += written
                done.blobs += blobs
                raced += len(rows) - written
                if time.monotonic() >= next_note:
                    say(f"  {table.qualified}: {rows_done:,} of {total:,} rows …")
                    next_note += every_seconds
            done.raced += raced
            if raced == 0:
                break
        done.rows += rows_done
        done.by_table[table.qualified] = rows_done
        say(f"  {table.qualified}: {rows_done:,} row{'' if rows_done == 1 else 's'} rewritten")
    return done


# ---- the commands ------------------------------------------------------------------------------


K8S_HINT = (
    "kubectl -n minyi patch secret minyi-secrets --type merge \\\n"
    "      -p \"{\\\"data\\\":{\\\"pii-keys.json\\\":\\\"$(base64 -w0 FILE)\\\"}}\"")


def _secret_step(path: Path) -> str:
    return K8S_HINT.replace("FILE", str(path))


ROLL = "kubectl -n minyi rollout restart deployment/minyi-intake deployment/minyi-routing deployment/minyi-identity"


def run_create(path: Path, say: Say) -> int:
    keyring = create(path)
    say(f"wrote a new keyring to {path} (mode 0600): data key {keyring.current_key_id} (current) and a "
        "blind-index key.")
    say("It is for a new installation: data already stored can only be read with the keyring it was "
        "written with (add keys to that one with `minyi pii-keys rotate`).")
    say("Next:")
    say("  1. keep a copy in your secret store; without it the personal data in the database is lost.")
    say("  2. give it to the services as MINYI_PII_KEYS_FILE; on Kubernetes, in the Secret minyi-secrets:")
    say(f"       kubectl -n minyi create secret generic minyi-secrets --from-file=pii-keys.json={path} \\")
    say("         --from-literal=database-url=... --from-file=code-secret=./code-secret")
    say("     or, when the Secret exists already:")
    say(f"       {_secret_step(path)}")
    say("  3. remove this file from this machine once it is stored.")
    return 0


def run_rotate(path: Path, *, stage: bool, key_id: str | None, say: Say) -> int:
    previous = load(path).current_key_id
    keyring, added = rotate(path, stage=stage, key_id=key_id)
    if stage:
        say(f"added key {added} to {path}, not yet current ({describe(keyring)}).")
        say("Next: put the file where the services read it and restart them, so every pod can read blobs")
        say(f"under {added}; then `minyi pii-keys activate {path} {added}`.")
    else:
        say(f"added key {added} to {path} as the current key ({describe(keyring)}).")
        say("Next: put the file where the services read it and restart them (new data is then written")
        say(f"under {added}); then `minyi pii-keys reencrypt`, then `minyi pii-keys retire {path} {previous}`.")
    say(f"  {_secret_step(path)}")
    say(f"  {ROLL}")
    return 0


def run_activate(path: Path, key_id: str, say: Say) -> int:
    keyring = activate(path, key_id)
    say(f"{path}: {describe(keyring)}.")
    say("Next: put the file where the services read it and restart them; then `minyi pii-keys reencrypt`.")
    say(f"  {_secret_step(path)}")
    say(f"  {ROLL}")
    return 0


def keyring_for(settings: Settings, path: Path | None) -> tuple[Path, Keyring]:
    """The keyring the services use: `--keys`, else MINYI_PII_KEYS_FILE, else the embedded stack's."""
    chosen = path or settings.pii_keys_file or settings.dev_pii_keys_file
    if path is None and settings.pii_keys_file is None and not chosen.exists():
        raise Refused(f"no keyring: set MINYI_PII_KEYS_FILE (or pass --keys FILE); {chosen} does not exist")
    return chosen, load(chosen)


async def reencrypt_stored(settings: Settings, services: Sequence[str], *, keys: Path | None, batch: int,
                           dry_run: bool, say: Say) -> int:
    tables = tables_of(services)
    if batch < 1 or batch > 10_000:
        raise Refused("--batch must be between 1 and 10000", exit_code=2)
    path, keyring = keyring_for(settings, keys)
    say(f"keyring {path}: {describe(keyring)}")
    if not tables:
        say(f"{', '.join(services)}: no encrypted columns")
        return 0
    db = await connect(settings, "reencrypt")
    try:
        before = await usage(db, tables)
        print_usage("stored blobs by key id, before:", before, say)
        await check_readable(db, keyring, tables, before)
        stale = sum(sum(by_key.values()) for by_key in before.values()) - total_under(before, keyring.current_key_id)
        if dry_run:
            say(f"dry run: {stale:,} blobs would be rewritten under {keyring.current_key_id}; nothing written.")
            return 0
        say(f"rewriting {stale:,} blobs under {keyring.current_key_id}, {batch} rows per transaction …")
        started = time.monotonic()
        done = await rewrite_stale(db, keyring, tables, batch=batch, say=say)
        after = await usage(db, tables)
        print_usage("stored blobs by key id, after:", after, say)
    finally:
        await db.dispose()
    left = sum(sum(by_key.values()) for by_key in after.values()) - total_under(after, keyring.current_key_id)
    say(f"rewrote {done.blobs:,} blob{'' if done.blobs == 1 else 's'} in {done.rows:,} "
        f"row{'' if done.rows == 1 else 's'} in {time.monotonic() - started:.1f} s.")
    if left:
        say(f"{left:,} blobs are still under other keys: a service still writes with an older current key. "
            "Restart every service with this keyring, then run this again.")
        return 1
    say(f"every stored blob is under {keyring.current_key_id}.")
    return 0


async def retire_key(settings: Settings, path: Path, key_id: str, say: Say) -> int:
    keyring = load(path)
    if key_id not in keyring.key_ids:
        raise Refused(f"{path} has no key {key_id!r}; its keys: {', '.join(keyring.key_ids)}")
    if key_id == keyring.current_key_id:
        raise Refused(f"{key_id} is the current key of {path}; rotate to a new key and reencrypt first")
    db = await connect(settings, "retire")
    try:
        counts = await usage(db, CATALOG)
    finally:
        await db.dispose()
    left = total_under(counts, key_id)
    if left:
        print_usage(f"refusing to retire {key_id}: {left:,} stored blobs are still under it:",
                    {k: Counter({key_id: v[key_id]}) for k, v in counts.items() if v.get(key_id)}, say)
        say("Run `minyi pii-keys reencrypt` (after every service runs with the new current key), then retire.")
        return 1
    smaller = keyring.without_key(key_id)
    replace(path, smaller)
    say(f"retired {key_id}: no stored blob uses it; {path} now has {describe(smaller)}.")
    say("Next: put the file where the services read it and restart them.")
    say(f"  {_secret_step(path)}")
    say(f"  {ROLL}")
    return 0
