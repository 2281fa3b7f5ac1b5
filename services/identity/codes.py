"""QR codes (亮码): signing, verifying and parsing codes, a small TTL cache, label layout. No I/O.

A code is 21 characters of Crockford base32 (digits and capitals without I, L, O, U)::

    K | base32(code id (6 random bytes) | tag (6 bytes))

* `K`, the first character, names the secret the code was signed with (its *key id*). Today there
  is one secret, key id `1`; a rotation adds a secret under a new key id and signs new codes with
  it, while codes already printed keep verifying as long as their key id stays in the signer.
* The code id is random: it says nothing about the deputy or station, who they are or where.
  What a code leads to lives only in the database, so a code can be revoked and re-issued.
* The tag is HMAC-SHA256(secret, DOMAIN | K | code id) cut to 48 bits. Without the secret nobody
  can make a code that verifies, so a forged or mistyped code is refused before any lookup.

96 bits fill 19.2 base32 characters; the 20th carries the last bit and four zero pad bits. Only
that one spelling verifies (after case folding and the usual Crockford substitutions), so each code has
exactly one canonical form, which is the database key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

CodeKind = Literal["deputy", "station"]
KINDS: tuple[CodeKind, ...] = ("deputy", "station")

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
# What people misread when typing a printed code back in.
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})

ID_BYTES = 6
TAG_BYTES = 6
SECRET_MIN_BYTES = 32
BODY_CHARS = -(-(ID_BYTES + TAG_BYTES) * 8 // 5)
CODE_LENGTH = 1 + BODY_CHARS
CURRENT_KEY_ID = "1"

# Binds tags to this one use of the secret, should the same bytes ever key another HMAC.
_DOMAIN = b"minyi.identity.qr-code.v1\x00"


class InvalidCode(ValueError):
    """Malformed, unknown key id, or a tag that does not verify; the reason is for logs only."""


def b32encode(data: bytes) -> str:
    bits = int.from_bytes(data, "big") << (len(data) * 8 % 5 and 5 - len(data) * 8 % 5)
    chars = -(-len(data) * 8 // 5)
    return "".join(ALPHABET[(bits >> (5 * (chars - 1 - i))) & 31] for i in range(chars))


def b32decode(text: str, nbytes: int) -> bytes:
    """Decode exactly `nbytes`; raises InvalidCode on a wrong length, symbol or non-zero padding."""
    chars = -(-nbytes * 8 // 5)
    if len(text) != chars:
        raise InvalidCode("wrong length")
    value = 0
    for ch in text:
        digit = _VALUE.get(ch)
        if digit is None:
            raise InvalidCode("not a Crockford base32 symbol")
        value = (value << 5) | digit
    pad = chars * 5 - nbytes * 8
    if value & ((1 << pad) - 1):
        raise InvalidCode("non-zero padding bits")
    return (value >> pad).to_bytes(nbytes, "big")


def normalize(text: str) -> str:
    """Upper case with I/L → 1 and O → 0, so a code read off a wall and typed in still matches."""
    return unicodedata.normalize("NFKC", text).strip().upper().translate(_READ_AS)


@dataclass(frozen=True)
class ParsedCode:
    code: str
    key_id: str
    code_id: bytes
    tag: bytes


def parse(text: str) -> ParsedCode:
    """Split a code into its parts without checking the tag; InvalidCode when malformed."""
    if not isinstance(text, str) or len(text) > 4 * CODE_LENGTH:
        raise InvalidCode("not a code")
    code = normalize(text)
    if len(code) != CODE_LENGTH:
        raise InvalidCode("wrong length")
    key_id = code[0]
    if key_id not in _VALUE:
        raise InvalidCode("not a Crockford base32 symbol")
    raw = b32decode(code[1:], ID_BYTES + TAG_BYTES)
    return ParsedCode(code, key_id, raw[:ID_BYTES], raw[ID_BYTES:])


class CodeSigner:
    """Issues and verifies codes under secrets by key id (one character of the code alphabet)."""

    __slots__ = ("_current", "_secrets")

    def __init__(self, secrets_by_id: Mapping[str, bytes], current_key_id: str = CURRENT_KEY_ID) -> None:
        checked: dict[str, bytes] = {}
        for key_id, secret in secrets_by_id.items():
            if len(key_id) != 1 or key_id not in _VALUE:
                raise ValueError(f"key id must be one character of {ALPHABET}")
            if len(secret) < SECRET_MIN_BYTES:
                raise ValueError(f"code secret {key_id!r} must be at least {SECRET_MIN_BYTES} bytes, got {len(secret)}")
            checked[key_id] = bytes(secret)
        if current_key_id not in checked:
            raise ValueError(f"current key id {current_key_id!r} has no secret")
        self._secrets = checked
        self._current = current_key_id

    def __repr__(self) -> str:
        return f"CodeSigner(current_key_id={self._current!r}, key_ids={sorted(self._secrets)!r})"

    @classmethod
    def from_secret(cls, secret: bytes) -> CodeSigner:
        return cls({CURRENT_KEY_ID: secret}, CURRENT_KEY_ID)

    def _tag(self, key_id: str, code_id: bytes) -> bytes:
        mac = hmac.new(self._secrets[key_id], _DOMAIN + key_id.encode("ascii") + code_id, hashlib.sha256)
        return mac.digest()[:TAG_BYTES]

    def issue(self, code_id: bytes | None = None) -> str:
        """A new code under the current secret; `code_id` only for tests (random by default)."""
        code_id = secrets.token_bytes(ID_BYTES) if code_id is None else code_id
        if len(code_id) != ID_BYTES:
            raise ValueError(f"code id must be {ID_BYTES} bytes")
        return self._current + b32encode(code_id + self._tag(self._current, code_id))

    def verify(self, text: str) -> str:
        """The canonical code when `text` is a code this signer made; InvalidCode otherwise."""
        parsed = parse(text)
        if parsed.key_id not in self._secrets:
            raise InvalidCode("unknown key id")
        if not hmac.compare_digest(parsed.tag, self._tag(parsed.key_id, parsed.code_id)):
            raise InvalidCode("tag does not verify")
        return parsed.code


def code_url(public_base_url: str, code: str) -> str:
    """Where a scan leads: the citizen's report page for this code."""
    return f"{public_base_url.rstrip('/')}/q/{code}"


def code_from_request(body: bytes) -> str | None:
    """The code asked about in a NATS resolve request: `{"code": "..."}`, a JSON string, or the bare
    code. None when the request says nothing usable (a `bad_request`, not a `not_found`)."""
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    # Only JSON that looks like an object or a string is parsed: a bare code of digits is valid JSON.
    if text.startswith(("{", '"')):
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if isinstance(doc, dict):
            doc = doc.get("code")
        return doc if isinstance(doc, str) and doc.strip() else None
    return text or None


# ---- cache --------------------------------------------------------------------------------------

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Bounded LRU with a time to live; `clock` is injected so tests need not sleep.

    Values may be None (a code known to be revoked), so `get` answers with a found flag.
    `generation` changes on every discard: a reader notes it before a slow lookup and passes it to
    `put`, which then drops a value that may predate the invalidation instead of caching it.
    """

    def __init__(self, *, ttl_seconds: float, max_entries: int, clock: Callable[[], float]) -> None:
        if ttl_seconds <= 0 or max_entries <= 0:
            raise ValueError("ttl_seconds and max_entries must be positive")
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, key: K) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: K, value: V, *, generation: int | None = None) -> None:
        if generation is not None and generation != self._generation:
            return
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def discard(self, *keys: K) -> None:
        self._generation += 1
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()


# ---- label layout -------------------------------------------------------------------------------


def text_em(text: str) -> float:
    """Rough width of `text` in ems: CJK and other wide characters 1, the rest about 0.6.

    Only used where the text cannot be measured (SVG is drawn by the viewer's own font).
    """
    width = 0.0
    for ch in text:
        if unicodedata.east_asian_width(ch) in ("W", "F"):
            width += 1.0
        elif unicodedata.category(ch).startswith(("M", "C")):
            continue
        else:
            width += 0.6
    return width


def fit_font_size(measure: Callable[[int], float], max_width: float, *, largest: int, smallest: int) -> int:
    """The largest size in [smallest, largest] whose measured width fits `max_width`.

    `measure(size)` gives the drawn width at a size; widths grow with the size, so a binary search
    needs a handful of measurements. When even `smallest` does not fit, `smallest` is returned and
    the caller decides how to cut the text.
    """
    if smallest > largest:
        raise ValueError("smallest must not exceed largest")
    lo, hi = smallest, largest
    if measure(lo) > max_width:
        return smallest
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(mid) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def svg_font_size(text: str, max_width: float, *, largest: float, smallest: float) -> float:
    """Font size for `text` in an SVG label `max_width` wide, from the estimated width in ems."""
    em = text_em(text)
    if em <= 0:
        return largest
    return max(smallest, min(largest, max_width / em))


def ellipsize(text: str, fits: Callable[[str], bool]) -> str:
    """`text`, or its longest prefix followed by "…" that fits; for names too long even when small."""
    if fits(text):
        return text
    for end in range(len(text) - 1, 0, -1):
        candidate = text[:end].rstrip() + "…"
        if fits(candidate):
            return candidate
    return "…"


@dataclass(frozen=True)
class LabelLayout:
    """Where a printed code goes: the QR symbol (quiet zone included) on top, the name below.

    All in pixels (PNG) or user units (SVG), the same numbers for both so they print alike.
    """

    width: int
    height: int
    modules: int
    scale: int
    qr_offset: int
    label_top: int
    label_height: int
    text_max_width: int
    font_largest: int
    font_smallest: int

    @property
    def label_center_y(self) -> float:
        return self.label_top + self.label_height / 2


def label_layout(modules: int, *, width: int = 600, label_height: int = 120, margin: int = 30) -> LabelLayout:
    """Whole pixels per module, as large as fits `width`, centred; the label band spans the width.

    `modules` counts the quiet zone too. The largest font fits the band; the smallest stays
    readable from a step away on a wall.
    """
    if modules <= 0 or modules > width:
        raise ValueError(f"cannot lay out {modules} modules in {width} pixels")
    scale = width // modules
    qr_offset = (width - modules * scale) // 2
    return LabelLayout(
        width=width,
        height=width + label_height,
        modules=modules,
        scale=scale,
        qr_offset=qr_offset,
        label_top=width,
        label_height=label_height,
        text_max_width=width - 2 * margin,
        font_largest=min(56, label_height * 1 // 2),
        font_smallest=20,
    )
