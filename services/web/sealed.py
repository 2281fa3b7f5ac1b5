"""Values the web tier hands the browser to keep and give back, sealed: AES-GCM under a key derived
from the web tier's secret for one purpose, so a value sealed for one use (a session, a sign-in in
progress) cannot be passed off as another, and an altered one opens as nothing."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class Sealer:
    def __init__(self, secret: bytes, *, purpose: bytes, version: bytes, max_chars: int) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
        self._aead = AESGCM(key)
        self._version = version
        self._max_chars = max_chars

    def seal(self, value: dict[str, Any]) -> str:
        nonce = os.urandom(12)
        body = json.dumps(value, separators=(",", ":")).encode()
        sealed = self._aead.encrypt(nonce, body, self._version)
        return base64.urlsafe_b64encode(self._version + nonce + sealed).decode().rstrip("=")

    def open(self, value: str | None) -> dict[str, Any] | None:
        """The sealed JSON object, or None for a value that is missing, too long, altered or not ours."""
        if not value or len(value) > self._max_chars:
            return None
        head = len(self._version)
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            if raw[:head] != self._version:
                return None
            opened = json.loads(self._aead.decrypt(raw[head:head + 12], raw[head + 12:], self._version))
        except (ValueError, InvalidTag):
            return None
        return opened if isinstance(opened, dict) else None
