"""HTTP API of the intake service (paths under /v1, see CONTRACT.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["intake"])
