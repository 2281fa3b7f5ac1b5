"""The data converter of every Temporal client and worker: pydantic JSON, one schema cache per process.

Temporal's sandbox makes a new payload converter for each workflow run it starts, so the
converter's own cache of pydantic TypeAdapters never outlives a run: every start built the
schema of the whole suggestion again (a fifth of the worker's CPU). This module is passed through
the sandbox, so its cache is the process's.
"""

from __future__ import annotations

import functools
from typing import Any

import temporalio.api.common.v1
from pydantic import TypeAdapter
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

MODULE = __name__

_adapter = functools.lru_cache(maxsize=1024)(TypeAdapter)


class _PydanticJSON(PydanticJSONPlainPayloadConverter):
    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        hint: Any = type_hint if type_hint is not None else Any
        try:
            hash(hint)
        except TypeError:  # e.g. a hint with a list inside: not cacheable
            return TypeAdapter(hint).validate_json(payload.data)
        return _adapter(hint).validate_json(payload.data)


class PayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(*(
            _PydanticJSON() if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ))


DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)
