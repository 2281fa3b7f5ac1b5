"""The one file of a multipart upload, read from the request stream into memory and nowhere else.

FastAPI parses a form before any dependency or handler runs, and Starlette spools every file over
1 MB to a temporary file on disk: a flood of uploads would be read whole and written to /tmp before
flood control could say no. The upload route therefore declares no form parameter and calls
`read_file` itself, after its checks, holding at most `limit` bytes of the file and a little of the
framing around it.
"""

from __future__ import annotations

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from shared.errors import FieldError, Problem

# Parts of a form besides the file: browsers send none, but a form library may add a few small fields.
MAX_PARTS = 8
_NOT_MULTIPART = "请以 multipart/form-data 上传附件，文件放在 file 字段中。"
_MALFORMED = "上传的表单格式有误，请重新上传。"


class _TooLarge(Exception):
    pass


class _Form:
    """python-multipart's callbacks, keeping the bytes of the part named `field` and nothing of the others."""

    def __init__(self, field: str, limit: int) -> None:
        self.field = field.encode()
        self.limit = limit
        self.parts = 0
        self.found = False
        self.data = bytearray()
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._keep = False

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise FormParserError("too many parts")
        self._disposition = b""
        self._keep = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        # The first part of that name counts; a second one is ignored rather than appended.
        self._keep = options.get(b"name") == self.field and not self.found
        self.found = self.found or self._keep

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._keep:
            return
        if len(self.data) + end - start > self.limit:
            raise _TooLarge
        self.data += data[start:end]


async def read_file(request: Request, *, field: str, limit: int, too_large: str) -> bytes:
    """The bytes of the form's part named `field`; Problem 413 (with `too_large`) as soon as it passes `limit`,
    422 when the request is not a form or holds no such part, 400 when the form is malformed."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Problem(422, _NOT_MULTIPART, title="Validation Failed", errors=[FieldError(field, "缺少文件")])
    form = _Form(field, limit)
    try:
        parser = MultipartParser(boundary, {
            "on_part_begin": form.on_part_begin, "on_header_field": form.on_header_field,
            "on_header_value": form.on_header_value, "on_header_end": form.on_header_end,
            "on_headers_finished": form.on_headers_finished, "on_part_data": form.on_part_data,
        })
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except _TooLarge:
        raise Problem(413, too_large) from None
    except (FormParserError, ValueError) as exc:
        raise Problem(400, _MALFORMED) from exc
    except ClientDisconnect:
        # The sender went away, or the body limit cut it off and has answered 413 already; this answer is dropped.
        raise Problem(400, _MALFORMED) from None
    if not form.found:
        raise Problem(422, _NOT_MULTIPART, title="Validation Failed", errors=[FieldError(field, "缺少文件")])
    return bytes(form.data)
