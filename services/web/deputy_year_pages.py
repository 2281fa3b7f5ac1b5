"""`/work/deputy/year`: the deputy's points for a year, as scoring keeps them: base and bonus, the
five dimensions, stars and grade, and every entry with the rule that gave it and where it came from."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from services.web.deputy_frame import render, signed_in
from services.web.deputy_view import DIMENSION, PART, points_text, source_label
from services.web.words import GRADE, SHANGHAI

router = APIRouter(include_in_schema=False)

# Years a deputy may look back on from this page: this term's, at most.
YEARS_BACK = 5


@router.get("/work/deputy/year")
async def year_page(request: Request) -> Response:
    session, calls = await signed_in(request)
    this_year = datetime.now(SHANGHAI).year
    text = request.query_params.get("year", "")
    year = int(text) if text.isdigit() and this_year - YEARS_BACK <= int(text) <= this_year else this_year
    score = await calls.score(year)
    return render(request, session, "deputy_year.html", score=score, year=year,
                  years=list(range(this_year, this_year - YEARS_BACK - 1, -1)), dimensions=DIMENSION, parts=PART,
                  grades=GRADE, points=points_text, source=source_label,
                  entries=sorted(score.entries, key=lambda e: (e.at, e.id), reverse=True))
