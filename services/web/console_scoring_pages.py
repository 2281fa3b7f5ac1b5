"""The congress staff's console pages for scoring (ranking, talk list, units' board, rules)
and for voter-roll reconciliation."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
