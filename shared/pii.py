"""Field-level protection of personal data (ID numbers, names, phone numbers) for every service.

Two separate mechanisms, with separate keys:

* Encryption: AES-256-GCM under a *data key* chosen by key id. Each blob names the key id it was
  made with, so keys can be rotated: new blobs use the keyring's current key, old blobs keep
  decrypting as long as their key stays in the keyring, and `reencrypt` moves them over.
* Blind index: HMAC-SHA256 under an *index key* over a normalized value, so equal people can be
  matched (and a unique DB index enforced) without decrypting. The index key never rotates with
  the data keys, otherwise every rotation would split old and new rows into unmatched sets.

Blob format (version 1)::

    version (1 byte = 0x01) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext + tag

The associated data binds the header and the caller's `context` (e.g. "identity.person.id_number"),
so a blob copied into another column, or a header rewritten to name another key, fails to decrypt.

Nothing here logs, and no error message carries plaintext or key material.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "BLOB_VERSION",
    "INDEX_KINDS",
    "KEY_BYTES",
    "Keyring",
    "PiiError",
    "blind_index",
    "decrypt",
    "encrypt",
    "ensure_dev_keyring",
    "key_id_of",
    "normalize_for_index",
    "reencrypt",
]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
BLOB_VERSION = 1

# Key ids travel inside every blob and in error messages, so they are kept short and plain ASCII.
_KEY_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_GENERATED_KEY_ID_RE = re.compile(r"k([0-9]+)")

# Distinct prefixes keep the AEAD associated data and the MAC input of this module from ever being
# confused with another use of the same primitive (or with each other).
_AAD_PREFIX = b"minyi.pii.aad.v1\x00"
_INDEX_PREFIX = b"minyi.pii.blind-index.v1\x00"

_JSON_FIELDS = frozenset({"current", "keys", "index_key"})


class PiiError(Exception):
    """A blob could not be decrypted or parsed. The message never contains plaintext or keys."""


# ---- keyring ----------------------------------------------------------------------------------


def _check_key_id(key_id: object) -> str:
    if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
        # Key ids are not secret, but a malformed one may be arbitrary text: show only its type/length.
        shown = f"{key_id!r}" if isinstance(key_id, str) and len(key_id) <= 64 and key_id.isprintable() else "<invalid>"
        raise ValueError(f"invalid key id {shown}: expected 1-64 characters of A-Z a-z 0-9 . _ - "
                         "starting with a letter or digit")
    return key_id


def _check_key_bytes(what: str, key: object) -> bytes:
    if not isinstance(key, bytes | bytearray):
        raise ValueError(f"{what} must be bytes")
    if len(key) != KEY_BYTES:
        raise ValueError(f"{what} must be {KEY_BYTES} bytes, got {len(key)}")
    return bytes(key)


def _decode_b64_key(what: str, text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        # `from None`: the underlying exception is not allowed to drag the encoded key into a traceback.
        raise ValueError(f"{what} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{what} must decode to {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def _encode_b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


class Keyring:
    """Data keys by key id, the id of the key for new encryptions, and the blind-index key.

    Immutable: rotation returns a new keyring (`with_new_current_key`), so a keyring shared between
    tasks never changes under them.
    """

    __slots__ = ("_aead", "_current", "_index_key", "_keys")

    _keys: Mapping[str, bytes]
    _aead: Mapping[str, AESGCM]
    _current: str
    _index_key: bytes

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str, index_key: bytes) -> None:
        if not keys:
            raise ValueError("keyring has no data keys")
        checked: dict[str, bytes] = {}
        for key_id, key in keys.items():
            checked[_check_key_id(key_id)] = _check_key_bytes(f"data key {key_id!r}", key)
        _check_key_id(current_key_id)
        if current_key_id not in checked:
            raise ValueError(f"current key id {current_key_id!r} is not among the data keys")
        index_key = _check_key_bytes("index key", index_key)
        # Reusing a data key as the index key would tie blind indexes to encryption-key rotation and
        # use one key for two primitives; refuse it rather than let a copy-paste slip through.
        if any(hmac.compare_digest(index_key, key) for key in checked.values()):
            raise ValueError("index key must be independent of the data keys, but equals one of them")
        object.__setattr__(self, "_keys", MappingProxyType(checked))
        object.__setattr__(self, "_aead", MappingProxyType({kid: AESGCM(k) for kid, k in checked.items()}))
        object.__setattr__(self, "_current", current_key_id)
        object.__setattr__(self, "_index_key", index_key)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Keyring is immutable")

    def __repr__(self) -> str:
        return f"Keyring(current_key_id={self._current!r}, key_ids={self.key_ids!r})"

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def _cipher(self, key_id: str) -> AESGCM | None:
        return self._aead.get(key_id)

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def generate(cls, key_id: str = "k1") -> Keyring:
        """A fresh keyring: one random data key (current) and an independent random index key."""
        return cls({key_id: secrets.token_bytes(KEY_BYTES)}, key_id, secrets.token_bytes(KEY_BYTES))

    def with_new_current_key(self, key_id: str | None = None) -> Keyring:
        """This keyring plus a fresh data key that becomes current. The index key is kept as is."""
        if key_id is None:
            key_id = self._next_key_id()
        _check_key_id(key_id)
        if key_id in self._keys:
            raise ValueError(f"key id {key_id!r} is already in the keyring")
        keys = dict(self._keys)
        keys[key_id] = secrets.token_bytes(KEY_BYTES)
        return Keyring(keys, key_id, self._index_key)

    def with_current_key(self, key_id: str) -> Keyring:
        """This keyring with another of its keys current: a staged key goes live, or a rotation is undone."""
        if key_id not in self._keys:
            raise ValueError(f"key id {key_id!r} is not in the keyring")
        return Keyring(self._keys, key_id, self._index_key)

    def without_key(self, key_id: str) -> Keyring:
        """This keyring less a retired data key. Blobs still under it can no longer be read: the
        caller checks that none is left. The current key cannot be removed."""
        if key_id not in self._keys:
            raise ValueError(f"key id {key_id!r} is not in the keyring")
        if key_id == self._current:
            raise ValueError(f"key id {key_id!r} is the current key; make another key current first")
        return Keyring({kid: key for kid, key in self._keys.items() if kid != key_id}, self._current,
                       self._index_key)

    def _next_key_id(self) -> str:
        # "k<n+1>" after the highest "k<n>" keeps ids short and their order readable in the secret file.
        numbers = [int(m.group(1)) for kid in self._keys if (m := _GENERATED_KEY_ID_RE.fullmatch(kid))]
        return f"k{max(numbers, default=0) + 1}"

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        """Parse the secret file format; raises ValueError naming the problem (never the key material)."""
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            # Only the position: the decoder's exception keeps the whole document in `exc.doc`.
            raise ValueError(f"keyring is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
        if not isinstance(data, dict):
            raise ValueError("keyring JSON must be an object")
        unknown = sorted(set(data) - _JSON_FIELDS)
        if unknown:
            raise ValueError(f"keyring JSON has unknown fields: {', '.join(map(repr, unknown))}")
        for field in ("current", "keys", "index_key"):
            if field not in data:
                raise ValueError(f"keyring JSON is missing {field!r}")
        current = data["current"]
        if not isinstance(current, str):
            raise ValueError("keyring 'current' must be a string")
        raw_keys = data["keys"]
        if not isinstance(raw_keys, dict) or not raw_keys:
            raise ValueError("keyring 'keys' must be a non-empty object of key id -> base64 key")
        keys: dict[str, bytes] = {}
        for key_id, encoded in raw_keys.items():
            _check_key_id(key_id)
            keys[key_id] = _decode_b64_key(f"data key {key_id!r}", encoded)
        if current not in keys:
            raise ValueError(f"current key id {current!r} has no entry in 'keys'")
        index_key = _decode_b64_key("index_key", data["index_key"])
        return cls(keys, current, index_key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keyring:
        text = Path(path).read_text(encoding="utf-8")
        try:
            return cls.from_json(text)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)}: {exc}") from None

    def to_json(self) -> str:
        """The secret file format. The result contains every key: write it only to a 0600 file."""
        data = {
            "current": self._current,
            "keys": {kid: _encode_b64(self._keys[kid]) for kid in self.key_ids},
            "index_key": _encode_b64(self._index_key),
        }
        return json.dumps(data, indent=2) + "\n"


def ensure_dev_keyring(path: Path) -> Keyring:
    """Load the development keyring, creating it (mode 0600) on first use.

    Several dev services may start at once and race here. The file is written completely to a temp
    file first and then published with a link, which fails if another process won the race; the
    loser then loads the winner's file, so every process ends up with the same keys.
    """
    if path.exists():
        return Keyring.from_file(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    keyring = Keyring.generate()
    # mkstemp creates the file 0600 from the start, so the keys are never readable by others.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(keyring.to_json())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return Keyring.from_file(path)
        except OSError:
            # Some filesystems (certain bind mounts) have no hard links; replace is still atomic there.
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return keyring


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in `directory` survive a crash of the machine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Not every platform can fsync a directory; the file itself is already durable.
        pass
    finally:
        os.close(fd)


# ---- encryption -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _header(key_id: str) -> bytes:
    raw = key_id.encode("ascii")
    return bytes((BLOB_VERSION, len(raw))) + raw


@functools.lru_cache(maxsize=256)
def _aad(header: bytes, context: str) -> bytes:
    # The header is self-delimiting, so appending the context after it is unambiguous.
    return _AAD_PREFIX + header + context.encode("utf-8")


def _check_context(context: str) -> None:
    if not isinstance(context, str) or not context:
        raise ValueError("context must be a non-empty string, e.g. 'identity.person.id_number'")


def _parse(blob: bytes) -> tuple[bytes, str, bytes, bytes]:
    """(header, key id, nonce, ciphertext+tag) of a blob, or PiiError."""
    blob = bytes(blob)
    if len(blob) < 2:
        raise PiiError("PII blob is truncated")
    if blob[0] != BLOB_VERSION:
        raise PiiError(f"unsupported PII blob version {blob[0]}")
    id_len = blob[1]
    header_len = 2 + id_len
    if id_len == 0 or len(blob) < header_len + NONCE_BYTES + TAG_BYTES:
        raise PiiError("PII blob is truncated or malformed")
    try:
        key_id = blob[2:header_len].decode("ascii")
    except UnicodeDecodeError:
        raise PiiError("PII blob has a malformed key id") from None
    if not _KEY_ID_RE.fullmatch(key_id):
        raise PiiError("PII blob has a malformed key id")
    nonce = blob[header_len:header_len + NONCE_BYTES]
    return blob[:header_len], key_id, nonce, blob[header_len + NONCE_BYTES:]


def encrypt(keyring: Keyring, plaintext: str, *, context: str) -> bytes:
    """Encrypt under the keyring's current key with a fresh random nonce, bound to `context`."""
    _check_context(context)
    key_id = keyring.current_key_id
    cipher = keyring._cipher(key_id)
    assert cipher is not None  # the constructor guarantees the current key exists
    header = _header(key_id)
    # Random 96-bit nonces: safe for far more encryptions per key than a rotation period will see.
    nonce = os.urandom(NONCE_BYTES)
    return header + nonce + cipher.encrypt(nonce, plaintext.encode("utf-8"), _aad(header, context))


def decrypt(keyring: Keyring, blob: bytes, *, context: str) -> str:
    """Decrypt a blob made by `encrypt` with the same `context`; PiiError otherwise."""
    _check_context(context)
    header, key_id, nonce, sealed = _parse(blob)
    cipher = keyring._cipher(key_id)
    if cipher is None:
        raise PiiError(f"PII blob uses key id {key_id!r}, which is not in the keyring")
    try:
        raw = cipher.decrypt(nonce, sealed, _aad(header, context))
    except InvalidTag:
        raise PiiError("PII blob failed authentication (tampered, or wrong context)") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Only reachable for a blob made outside `encrypt`; the bytes themselves stay out of the message.
        raise PiiError("PII blob plaintext is not UTF-8") from None


def key_id_of(blob: bytes) -> str:
    """The key id a blob was encrypted with (no key needed; nothing is authenticated)."""
    return _parse(blob)[1]


def reencrypt(keyring: Keyring, blob: bytes, *, context: str) -> bytes:
    """The blob under the current key, for the rotation job.

    A blob already under the current key is still authenticated but returned unchanged, so the job
    can skip the write when `result == blob` and re-running it is cheap.
    """
    plaintext = decrypt(keyring, blob, context=context)
    if key_id_of(blob) == keyring.current_key_id:
        return bytes(blob)
    return encrypt(keyring, plaintext, context=context)


# ---- blind index ------------------------------------------------------------------------------

# Variants of the separator in minority names (阿依古丽·买买提), as typed on different keyboards.
_NAME_DOTS = frozenset("\u00b7\u0387\u16eb\u2022\u2027\u2219\u22c5\u30fb\uff65.")


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _normalize_id_number(value: str) -> str:
    # NFKC turns full-width digits/letters (１２３Ｘ) into ASCII; the check character X is case-blind.
    # ASCII text is its own NFKC form, so the usual number skips the Unicode tables.
    text = value if value.isascii() else unicodedata.normalize("NFKC", value)
    return "".join(text.split()).upper()


def _normalize_phone(value: str) -> str:
    """Canonical E.164-like form for mainland numbers, so every usual spelling indexes equal.

    "+86 138-0013-8000", "008613800138000", "8613800138000" and "13800138000" all become
    "+8613800138000"; "010-1234 5678" and "+86 10 12345678" become "+861012345678". Numbers of other
    countries keep "+" and their country code; anything unrecognizable is indexed as its bare digits.
    """
    text = unicodedata.normalize("NFKC", value)
    digits = "".join(re.findall(r"[0-9]", text))
    if not digits:
        return ""
    first_digit = re.search(r"[0-9]", text)
    assert first_digit is not None
    international: str | None = None
    if "+" in text[:first_digit.start()]:
        international = digits
    elif digits.startswith("00"):
        international = digits[2:]
    elif len(digits) == 13 and digits.startswith("861"):
        # No domestic number has 13 digits, so this is +86 with the plus left off.
        international = digits
    if international is not None:
        if not international.startswith("86"):
            return "+" + international
        national = international[2:]
        # "+86 (0)10 ..." : the trunk prefix does not belong after the country code.
        return "+86" + (national[1:] if national.startswith("0") else national)
    if digits.startswith("0") and len(digits) > 1:
        return "+86" + digits[1:]
    if len(digits) == 11 and digits.startswith("1"):
        return "+86" + digits
    return digits


def _normalize_name(value: str) -> str:
    text = "".join("\u00b7" if ch in _NAME_DOTS else ch for ch in unicodedata.normalize("NFKC", value))
    tokens = text.split()
    if not tokens:
        return ""
    out = [tokens[0]]
    for token in tokens[1:]:
        left, right = out[-1][-1], token[0]
        # Spaces are noise in Chinese names (张 三 = 张三) and around the separator dot, but they do
        # separate the words of Latin-script names.
        if _is_wide(left) or _is_wide(right) or left == "\u00b7" or right == "\u00b7":
            out.append(token)
        else:
            out.append(" " + token)
    return "".join(out).casefold()


# Each kind's normalization is part of its stored indexes: changing one (or adding a kind with the
# wrong one) silently breaks matching, hence a closed list rather than a generic fallback.
_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "id_number": _normalize_id_number,
    "phone": _normalize_phone,
    "name": _normalize_name,
}
INDEX_KINDS: frozenset[str] = frozenset(_NORMALIZERS)


def normalize_for_index(value: str, *, kind: str) -> str:
    """The normalized form `blind_index` MACs; ValueError for an unknown kind or an empty result."""
    normalizer = _NORMALIZERS.get(kind)
    if normalizer is None:
        raise ValueError(f"unknown blind-index kind {kind!r}; known: {', '.join(sorted(INDEX_KINDS))}")
    normalized = normalizer(value)
    if not normalized:
        # Every blank value would share one index and collide in a unique DB index.
        raise ValueError(f"value for blind-index kind {kind!r} is empty after normalization")
    return normalized


def blind_index(keyring: Keyring, value: str, *, kind: str) -> bytes:
    """Deterministic 32-byte HMAC-SHA256 of the normalized value, separated by `kind`."""
    normalized = normalize_for_index(value, kind=kind)
    # `kind` is restricted to known identifiers (no NUL), so the NUL separators keep the input unambiguous.
    message = _INDEX_PREFIX + kind.encode("ascii") + b"\x00" + normalized.encode("utf-8")
    # The one-shot C function: no HMAC object per value (registry loads index tens of millions).
    return hmac.digest(keyring._index_key, message, "sha256")


_ID_NUMBER_INDEX_PREFIX: Final = _INDEX_PREFIX + b"id_number\x00"


def id_number_index(keyring: Keyring, canonical: str) -> bytes:
    """`blind_index(kind="id_number")` of a number already in `idnumber.normalize`'s form, which
    is its own normalization (ASCII digits and an upper-case X): registry loads skip doing it twice."""
    return hmac.digest(keyring._index_key, _ID_NUMBER_INDEX_PREFIX + canonical.encode("ascii"), "sha256")
