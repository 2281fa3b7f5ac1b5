"""Times callers send: those that cannot be turned to UTC are refused as invalid input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.instants import MESSAGE, AnyInstant, Instant

INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)
ANY: TypeAdapter[datetime] = TypeAdapter(AnyInstant)


@pytest.mark.parametrize("moment", ["2026-12-06T08:00:00+08:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
                                    "9999-12-31T11:59:59-12:00", "0001-01-01T08:00:00+08:00"])
def test_instants_that_utc_holds_are_taken_as_sent(moment: str) -> None:
    assert INSTANT.validate_python(moment) == datetime.fromisoformat(moment)
    assert ANY.validate_python(moment).astimezone(UTC) == datetime.fromisoformat(moment).astimezone(UTC)


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-12:00", "9999-12-31T12:00:00-12:00",
                                    "0001-01-01T07:59:59+08:00"])
def test_instants_past_year_9999_or_before_year_1_in_utc_are_refused(moment: str) -> None:
    for adapter in (INSTANT, ANY):
        with pytest.raises(ValidationError, match=MESSAGE):
            adapter.validate_python(moment)


def test_a_time_without_an_offset_is_refused_where_one_is_required_and_kept_where_not() -> None:
    with pytest.raises(ValidationError):
        INSTANT.validate_python("9999-12-31T23:59:59")
    assert ANY.validate_python("9999-12-31T23:59:59") == datetime(9999, 12, 31, 23, 59, 59)
