"""The administrator's console pages: the directory, QR codes and the calendar."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
