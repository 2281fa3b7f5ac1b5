"""Tables of the `suggestions` schema. No other service reads them."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.bus.tables import inbox_table, outbox_table
from shared.db import service_metadata

SCHEMA = "suggestions"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


OUTBOX = outbox_table(Base.metadata)
INBOX = inbox_table(Base.metadata)
