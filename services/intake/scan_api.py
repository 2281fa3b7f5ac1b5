"""Where a scanned QR code (亮码) goes when it was printed with intake's own address.

Codes lead to `{public_base_url}/q/{code}`, the web tier's report page. Codes printed while that
was intake's address must keep working on station walls: intake sends them on, permanently.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse

from services.intake.api import RuntimeDep
from shared.problems import problems

router = APIRouter(tags=["intake"])

# A code as identity issues it; anything else (a slash, a dot) could point the redirect elsewhere.
ScannedCode = Annotated[str, Path(pattern=r"^[0-9A-Za-z]{1,64}$", description="the code the QR symbol holds")]
_MOVED = {"description": "the report page for this code, at `{MINYI_PUBLIC_BASE_URL}/q/{code}`",
          "headers": {"Location": {"description": "where the page is", "schema": {"type": "string"}}}}


@router.get("/q/{code}", status_code=308, response_class=RedirectResponse,
            summary="A QR code printed with intake's address: on to the report page (no token)",
            responses={308: _MOVED, **problems((422, "not a code"))})
async def scanned(code: ScannedCode, runtime: RuntimeDep) -> RedirectResponse:
    return RedirectResponse(f"{runtime.settings.public_base_url.rstrip('/')}/q/{code}", status_code=308)
