"""Types for response models of answers that routes build as plain dicts.

Such an answer goes through its model on the way out, and must leave it byte for byte as it was built:
a time built with `isoformat()` stays that text (a `datetime` field would write `Z` for `+00:00`), a
number stays an integer or a float as it was (a `float` field would write `90` as `90.0`). The OpenAPI
document still says what the text is.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, WithJsonSchema

# An answer may carry more than its model names (a record's data, fields added later): kept as it is.
OPEN = ConfigDict(extra="allow")

# RFC 3339, always with an offset (every time Minyi writes is timezone-aware).
IsoDateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
IsoDate = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
