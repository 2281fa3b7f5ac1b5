"""Times callers send, refused at the door when they cannot be stored.

PostgreSQL keeps `timestamptz` in UTC, and so does the driver before sending it: an instant such as
`9999-12-31T23:59:59-12:00` parses, but lies past the last year Python can hold once turned to UTC,
and failed the statement that stored or compared it (a 500 for plainly bad input, a 422).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

MESSAGE = "时间超出可处理的范围（换算为 UTC 后须在 0001 年至 9999 年之间）"


def _in_range(value: datetime) -> datetime:
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError(MESSAGE) from None
    return value


# With an offset (RFC 3339), and within range once in UTC.
Instant = Annotated[AwareDatetime, AfterValidator(_in_range)]
# Offset optional (a naive time is read by the field's own rule), within range once in UTC.
AnyInstant = Annotated[datetime, AfterValidator(_in_range)]
