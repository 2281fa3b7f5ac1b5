"""Where registry records are validated and encrypted: worker processes beside the service.

Validation, AES-GCM and the blind index are Python, about 20 µs a record (bench/README.md); in a
thread of the service they share its one interpreter lock with the request's own reading of the
body and with asyncpg writing the previous chunk, so a load used about one core however many the
machine had. In worker processes (`MINYI_REGISTRY_LOAD_WORKERS`) they run beside it, for load
files' chunks and for the NATS feed's fetched batches alike. The default, 0, keeps them in the
service (a thread, for load files and the feed alike): on the two cores of the benchmark machine the processes were
slower, not faster (bulk 27,000 against 39,000 records/s, feed 18,000 against 23,000), since the
worker, the service and PostgreSQL then contend for two cores and every chunk is pickled twice.
Give it workers where identity has cores to spare during a province's first load.

Workers are started with `spawn` (a fresh interpreter): forking a process that runs an event loop
and exporter threads copies their locks in whatever state they are. The keyring is sent with each
chunk as its secret-file text and parsed once per worker and key set, so a rotated keyring is used
from the next chunk on; the text never leaves the host (a pipe to a child process).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from services.identity import registry, registry_lines
from services.identity.registry_lines import PreparedLines
from shared.pii import Keyring

# Where a record of the feed came from: the message's number in the fetched batch, and its place in
# that message when the message carried a batch of records (None: a message of one record).
Origin = tuple[int, int | None]


@dataclass
class PreparedFeed:
    """A fetched batch of feed messages, validated and encrypted."""

    rows: list[tuple[object, ...]]
    valid: int
    # Records refused before the database: the reason, and the keyed reference of the ID number the
    # record names (registry.person_reference), never the record itself. A message that cannot be
    # read at all is one entry, at its position None.
    bad: list[tuple[Origin, str, str | None]]
    # For each row, the records it stands for.
    row_origins: list[list[Origin]] = field(default_factory=list)
    # Records the messages carried, readable or not.
    records: int = 0


def source_of(subject: str) -> str:
    """The registry a message was published for: the subject decides, never the body. Each
    provincial system's NATS user may publish on its own `registry.<source>.records` only."""
    parts = subject.split(".")
    return parts[1] if len(parts) == 3 else ""


def prepare_feed(messages: Sequence[tuple[str, bytes]], keyring: Keyring, *, now: datetime) -> PreparedFeed:
    """(subject, body) of each fetched message to rows; bad records are set aside with reasons."""
    by_source: dict[str, list[tuple[int, object]]] = {}
    records: list[object] = []
    origins: list[Origin] = []
    bad: list[tuple[Origin, str, str | None]] = []
    total = 0
    for i, (subject, body) in enumerate(messages):
        source = source_of(subject)
        try:
            items, batched = registry.records_of_message(body)
        except registry.RecordError as exc:
            bad.append(((i, None), exc.reason, None))
            total += 1
            continue
        total += len(items)
        for position, item in enumerate(items):
            origin = (i, position if batched else None)
            if isinstance(item, registry.RecordError):
                bad.append((origin, item.reason, None))
            elif source not in registry.SOURCES:
                bad.append((origin, f"未知的数据来源：{source[:40]}", registry.person_reference(keyring, item)))
            else:
                by_source.setdefault(source, []).append((len(records), item))
                records.append(item)
                origins.append(origin)
    rows: list[tuple[object, ...]] = []
    row_origins: list[list[Origin]] = []
    valid = 0
    for source, items in by_source.items():
        prepared = registry.prepare_batch(source, items, keyring, now=now)
        rows.extend(prepared.rows)
        row_origins.extend([origins[n] for n in numbers] for numbers in prepared.row_items)
        valid += prepared.valid
        bad.extend((origins[n], reason, registry.person_reference(keyring, records[n]))
                   for n, reason in prepared.rejected)
    return PreparedFeed(rows, valid, bad, row_origins, total)


@lru_cache(maxsize=4)
def _keyring(text: str) -> Keyring:
    return Keyring.from_json(text)


def _prepare(source: str, header: tuple[str, ...] | None, lines: Sequence[tuple[int, bytes]], through_line: int,
             keyring_text: str, now: datetime) -> PreparedLines:
    return registry_lines.prepare_lines(source, header, lines, through_line, _keyring(keyring_text), now=now)


def _prepare_feed(messages: Sequence[tuple[str, bytes]], keyring_text: str, now: datetime) -> PreparedFeed:
    return prepare_feed(messages, _keyring(keyring_text), now=now)


class Preparer:
    """Prepares load chunks and feed batches in `workers` processes, or in the service when 0."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def prepare(self, source: str, header: tuple[str, ...] | None, lines: list[tuple[int, bytes]],
                      through_line: int, keyring: Keyring, now: datetime) -> PreparedLines:
        if self.workers <= 0:
            return await asyncio.to_thread(registry_lines.prepare_lines, source, header, lines, through_line, keyring,
                                           now=now)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), _prepare, source, header, lines, through_line,
                                          keyring.to_json(), now)

    async def prepare_feed(self, messages: list[tuple[str, bytes]], keyring: Keyring, now: datetime) -> PreparedFeed:
        if self.workers <= 0:
            # In a thread, so that the event loop goes on sending the previous batch's statements
            # while this one is prepared: PostgreSQL works on its own core meanwhile.
            return await asyncio.to_thread(prepare_feed, messages, keyring, now=now)
        return await asyncio.get_running_loop().run_in_executor(self._executor(), _prepare_feed, messages,
                                                                keyring.to_json(), now)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def preparer(runtime_state: dict[str, object], workers: int) -> Preparer:
    """The identity process's one preparer (its worker processes start with the first use)."""
    found = runtime_state.setdefault("identity.registry_preparer", Preparer(workers))
    assert isinstance(found, Preparer)
    return found
