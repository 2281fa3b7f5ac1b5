"""The demo county as data: complete, valid, and built to show one reconciliation problem of each kind."""

from __future__ import annotations

from datetime import datetime

import pytest

from minyi.demo_county import CHINA, ELECTION_DAY, County, county
from services.identity.domain import parse_region_code
from services.identity.reconciliation import KINDS
from shared import idnumber


def test_every_station_kind_and_deputy_level_is_there() -> None:
    c = county()
    assert {s.kind for s in c.stations} == {"service_center", "home", "station", "studio", "cloud_point"}
    assert {d.level for d in c.deputies} == {"national", "provincial", "municipal", "county", "township"}
    assert len(c.units) == 2
    regions = {r.code for r in c.regions}
    levels = {parse_region_code(r.code).level for r in c.regions}
    assert levels == {"province", "city", "county", "township", "village", "grid"}
    for r in c.regions:
        assert r.parent is None or r.parent in regions, r
    assert {s.region for s in c.stations} <= regions and {d.region for d in c.deputies} <= regions


def test_one_person_per_problem_kind_with_valid_id_numbers() -> None:
    c = county()
    assert sorted(c.expected_problems()) == sorted(KINDS)
    numbers = [p.id_number for p in c.people]
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        assert idnumber.normalize(number, today=ELECTION_DAY) == number


def test_another_county_code_moves_everything_under_it() -> None:
    c = county("330110")
    assert all(r.code.startswith(("33", "3301")) for r in c.regions)
    assert {r.code for r in c.regions if parse_region_code(r.code).level == "county"} == {"330110"}
    assert set(county().expected_problems().values()).isdisjoint(c.expected_problems().values())
    for bad in ("3301", "330100", "33011x"):
        with pytest.raises(ValueError):
            county(bad)


def test_registry_records_and_roll_agree_with_the_people() -> None:
    c: County = county()
    at = datetime(2026, 11, 1, tzinfo=CHINA)
    population = c.population_records(at)
    assert len(population) == len(c.people)
    migrants = c.migrant_records(at)
    assert [r["residence_certificate"] for r in migrants] == [True]
    roll = c.voters()
    assert sum(len(p.registered_in) for p in c.people) == len(roll)
    assert not any(v["id_number"] == c.expected_problems()["missing"] for v in roll)
