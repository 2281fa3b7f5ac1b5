"""Voter-roll reconciliation rules (docs/integrators.md, "Reconciliation rules"): one test per rule, no I/O.

The election below has three districts (选区) in Funing county, Jiangsu:

* ``county``: the county 320923 as a whole;
* ``town``: the township 320923101, nested inside the county (longer prefix, so it wins);
* ``east``: the neighbouring county 320924.

Persons are plain strings; records and registrations are made by the small helpers below.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import pytest

from services.identity.reconciliation import (
    KINDS,
    REGISTERED_KINDS,
    District,
    Finding,
    Registration,
    SourceRecord,
    adult_cutoff,
    counts,
    district_holding,
    expected_district,
    is_eligible,
    merge_sources,
    reconcile,
)

ELECTION_DAY = date(2026, 6, 15)
ADULT = date(1990, 3, 7)
T0 = datetime(2026, 1, 1, tzinfo=UTC)

COUNTY_HUKOU = "320923102"  # in the county, outside the township
TOWN_HUKOU = "320923101201"  # a village of the township
EAST_HUKOU = "320924100"
OUTSIDE_HUKOU = "110105"  # Beijing: in no district of this election

DISTRICTS = (
    District("county", ["320923"]),
    District("town", ["320923101"]),
    District("east", ["320924"]),
)


def rec(
    person: str,
    source: str = "population",
    *,
    born: date = ADULT,
    hukou: str = COUNTY_HUKOU,
    residence: str | None = None,
    status: str = "active",
    rights: bool = True,
    certificate: bool | None = None,
    day: int = 0,
) -> SourceRecord:
    return SourceRecord(
        person=person, source=source, birth_date=born, hukou_region_code=hukou,
        residence_region_code=residence or hukou, status=status, political_rights=rights,
        residence_certificate=certificate, updated_at=T0 + timedelta(days=day),
    )


def reg(person: str, district_id: str, born: date = ADULT) -> Registration:
    return Registration(person=person, district_id=district_id, birth_date=born)


def run(
    records: Iterable[SourceRecord],
    registrations: Iterable[Registration] = (),
    districts: Sequence[District] = DISTRICTS,
    election_day: date = ELECTION_DAY,
) -> list[Finding]:
    return reconcile(merge_sources(records), list(registrations), districts, election_day)


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


# --- age -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("election_day", "cutoff"),
    [
        (date(2026, 6, 15), date(2008, 6, 15)),
        (date(2026, 1, 1), date(2008, 1, 1)),
        (date(2026, 12, 31), date(2008, 12, 31)),
        (date(2028, 2, 29), date(2010, 2, 28)),  # 29 February 2010 does not exist
        (date(2032, 2, 29), date(2014, 2, 28)),
        (date(2026, 2, 28), date(2008, 2, 28)),
        (date(2026, 3, 1), date(2008, 3, 1)),
        (date(2024, 2, 29), date(2006, 2, 28)),
    ],
)
def test_adult_cutoff(election_day: date, cutoff: date) -> None:
    assert adult_cutoff(election_day) == cutoff


@pytest.mark.parametrize(
    ("born", "eligible"),
    [
        (date(2008, 6, 14), True),  # turned 18 the day before election day
        (date(2008, 6, 15), True),  # born exactly 18 years before: 18 on election day
        (date(2008, 6, 16), False),  # turns 18 the day after
    ],
)
def test_eighteen_on_election_day(born: date, eligible: bool) -> None:
    person = merge_sources([rec("p", born=born)])["p"]
    assert is_eligible(person, ELECTION_DAY) is eligible
    registered = run([rec("p", born=born)], [reg("p", "county", born)])
    assert registered == ([] if eligible else [Finding("underage", "p", "county", "county")])
    unregistered = run([rec("p", born=born)])
    assert unregistered == ([Finding("missing", "p", None, "county")] if eligible else [])


@pytest.mark.parametrize(("born", "eligible"), [(date(2010, 2, 28), True), (date(2010, 3, 1), False)])
def test_eighteen_on_a_29_february_election_day(born: date, eligible: bool) -> None:
    day = date(2028, 2, 29)
    findings = run([rec("p", born=born)], [reg("p", "county", born)], election_day=day)
    assert findings == ([] if eligible else [Finding("underage", "p", "county", "county")])


def test_a_leap_day_birthday_is_18_on_28_february_only_in_a_leap_election_year() -> None:
    born = date(2008, 2, 29)
    # Election on 28 February 2026: the 18th birthday (1 March in a common year) has not come yet.
    assert run([rec("p", born=born)], [reg("p", "county", born)], election_day=date(2026, 2, 28)) == [
        Finding("underage", "p", "county", "county")
    ]
    assert run([rec("p", born=born)], [reg("p", "county", born)], election_day=date(2026, 3, 1)) == []


# --- each kind -------------------------------------------------------------------------------------


def test_deceased_in_population() -> None:
    findings = run([rec("p", status="deceased")], [reg("p", "county")])
    assert findings == [Finding("deceased", "p", "county", "county")]


@pytest.mark.parametrize("source", ["social_security", "migrant"])
def test_deceased_in_another_source_while_population_says_active(source: str) -> None:
    records = [rec("p", status="active", day=5), rec("p", source, status="deceased", day=1)]
    assert only(run(records, [reg("p", "county")])).kind == "deceased"
    assert not is_eligible(merge_sources(records)["p"], ELECTION_DAY)
    assert run(records) == []  # a deceased person is never missing


def test_deprived() -> None:
    findings = run([rec("p", rights=False)], [reg("p", "county")])
    assert findings == [Finding("deprived", "p", "county", "county")]
    assert run([rec("p", rights=False)]) == []


def test_underage_uses_the_registration_birth_date() -> None:
    young = date(2010, 1, 1)
    assert run([rec("p", born=young)], [reg("p", "county", young)]) == [Finding("underage", "p", "county", "county")]


@pytest.mark.parametrize("order", [("county", "east"), ("east", "county")])
def test_duplicate_shows_the_district_that_is_not_the_expected_one(order: tuple[str, str]) -> None:
    findings = run([rec("p", hukou=COUNTY_HUKOU)], [reg("p", d) for d in order])
    assert findings == [Finding("duplicate", "p", "east", "county")]


def test_duplicate_when_neither_district_is_expected_shows_the_lowest_id() -> None:
    findings = run([rec("p", hukou=TOWN_HUKOU)], [reg("p", "east"), reg("p", "county")])
    assert findings == [Finding("duplicate", "p", "county", "town")]


def test_registered_twice_in_the_same_district_is_not_duplicate() -> None:
    assert run([rec("p")], [reg("p", "county"), reg("p", "county")]) == []


def test_wrong_district_inside_the_election() -> None:
    findings = run([rec("p", hukou=EAST_HUKOU)], [reg("p", "county")])
    assert findings == [Finding("wrong_district", "p", "county", "east")]


def test_wrong_district_with_hukou_outside_every_district() -> None:
    findings = run([rec("p", hukou=OUTSIDE_HUKOU)], [reg("p", "county")])
    assert findings == [Finding("wrong_district", "p", "county", None)]


def test_registered_where_expected_is_fine() -> None:
    assert run([rec("p", hukou=TOWN_HUKOU)], [reg("p", "town")]) == []


def test_missing() -> None:
    assert run([rec("p", hukou=EAST_HUKOU)]) == [Finding("missing", "p", None, "east")]


def test_not_missing_when_hukou_is_outside_the_election() -> None:
    assert run([rec("p", hukou=OUTSIDE_HUKOU)]) == []


# --- precedence ------------------------------------------------------------------------------------

YOUNG = date(2012, 1, 1)


@pytest.mark.parametrize(
    ("record", "registrations", "kind"),
    [
        # deceased, deprived, underage, registered twice (one of them in the wrong district)
        (rec("p", status="deceased", rights=False, born=YOUNG), [reg("p", "county", YOUNG), reg("p", "east", YOUNG)],
         "deceased"),
        (rec("p", rights=False, born=YOUNG), [reg("p", "county", YOUNG), reg("p", "east", YOUNG)], "deprived"),
        (rec("p", born=YOUNG), [reg("p", "county", YOUNG), reg("p", "east", YOUNG)], "underage"),
        (rec("p", hukou=EAST_HUKOU), [reg("p", "county"), reg("p", "town")], "duplicate"),
        (rec("p", hukou=EAST_HUKOU, status="deceased"), [reg("p", "county")], "deceased"),
        (rec("p", hukou=EAST_HUKOU, rights=False), [reg("p", "county")], "deprived"),
        (rec("p", hukou=EAST_HUKOU, born=YOUNG), [reg("p", "county", YOUNG)], "underage"),
        (rec("p", hukou=EAST_HUKOU), [reg("p", "county")], "wrong_district"),
    ],
)
def test_each_registered_person_is_reported_once_with_the_first_kind(
    record: SourceRecord, registrations: list[Registration], kind: str
) -> None:
    assert only(run([record], registrations)).kind == kind


def test_a_deceased_person_registered_twice_is_reported_once() -> None:
    findings = run([rec("p", status="deceased")], [reg("p", "county"), reg("p", "east")])
    assert findings == [Finding("deceased", "p", "east", "county")]
    assert counts(findings) == {"deceased": 1, "deprived": 0, "underage": 0, "duplicate": 0,
                                "wrong_district": 0, "missing": 0}


def test_kind_order_is_the_contract_order() -> None:
    assert REGISTERED_KINDS == ("deceased", "deprived", "underage", "duplicate", "wrong_district")
    assert KINDS == (*REGISTERED_KINDS, "missing")


# --- migrants --------------------------------------------------------------------------------------


def test_certified_migrant_is_expected_where_they_live() -> None:
    records = [rec("p", hukou=COUNTY_HUKOU), rec("p", "migrant", residence=EAST_HUKOU, certificate=True)]
    assert run(records, [reg("p", "east")]) == []
    assert run(records, [reg("p", "county")]) == [Finding("wrong_district", "p", "county", "east")]
    assert run(records) == [Finding("missing", "p", None, "east")]


def test_certified_migrant_living_outside_the_election_belongs_elsewhere() -> None:
    records = [rec("p", hukou=COUNTY_HUKOU), rec("p", "migrant", residence=OUTSIDE_HUKOU, certificate=True)]
    assert run(records) == []
    assert run(records, [reg("p", "county")]) == [Finding("wrong_district", "p", "county", None)]


@pytest.mark.parametrize("certificate", [False, None])
def test_migrant_without_certificate_is_expected_by_hukou(certificate: bool | None) -> None:
    records = [rec("p", hukou=COUNTY_HUKOU), rec("p", "migrant", residence=EAST_HUKOU, certificate=certificate)]
    assert run(records, [reg("p", "county")]) == []
    assert run(records, [reg("p", "east")]) == [Finding("wrong_district", "p", "east", "county")]
    assert run(records) == [Finding("missing", "p", None, "county")]


@pytest.mark.parametrize("newer_first", [False, True])
def test_the_latest_migrant_record_decides(newer_first: bool) -> None:
    older = rec("p", "migrant", residence=EAST_HUKOU, certificate=True, day=1)
    newer = rec("p", "migrant", residence=EAST_HUKOU, certificate=False, day=2)
    migrants = [newer, older] if newer_first else [older, newer]
    records = [rec("p", hukou=COUNTY_HUKOU), *migrants]
    assert run(records, [reg("p", "county")]) == []
    assert run(records) == [Finding("missing", "p", None, "county")]


def test_the_latest_migrant_record_decides_the_residence_too() -> None:
    records = [
        rec("p", hukou=COUNTY_HUKOU),
        rec("p", "migrant", residence=EAST_HUKOU, certificate=True, day=3),
        rec("p", "migrant", residence=TOWN_HUKOU, certificate=True, day=1),
    ]
    assert run(records) == [Finding("missing", "p", None, "east")]


def test_a_social_security_residence_does_not_count() -> None:
    records = [rec("p", hukou=COUNTY_HUKOU), rec("p", "social_security", residence=EAST_HUKOU, certificate=True)]
    assert run(records) == [Finding("missing", "p", None, "county")]


# --- the latest population record ------------------------------------------------------------------


@pytest.mark.parametrize("newer_first", [False, True])
def test_rights_come_from_the_latest_population_record(newer_first: bool) -> None:
    deprived = rec("p", rights=False, day=1)
    restored = rec("p", rights=True, day=2)
    records = [restored, deprived] if newer_first else [deprived, restored]
    assert run(records, [reg("p", "county")]) == []
    assert run(records) == [Finding("missing", "p", None, "county")]


def test_a_later_deprivation_wins() -> None:
    records = [rec("p", rights=False, day=2), rec("p", rights=True, day=1)]
    assert only(run(records, [reg("p", "county")])).kind == "deprived"


def test_hukou_comes_from_the_latest_population_record() -> None:
    records = [rec("p", hukou=COUNTY_HUKOU, day=1), rec("p", hukou=EAST_HUKOU, day=2)]
    assert run(records, [reg("p", "east")]) == []
    assert run(records, [reg("p", "county")]) == [Finding("wrong_district", "p", "county", "east")]


def test_status_comes_from_the_latest_population_record() -> None:
    records = [rec("p", status="emigrated", day=2), rec("p", status="active", day=1)]
    assert run(records) == []
    returned = [rec("p", status="emigrated", day=1), rec("p", status="active", day=2)]
    assert run(returned) == [Finding("missing", "p", None, "county")]


def test_population_facts_ignore_other_sources() -> None:
    # A newer social security record with another hukou and no rights changes nothing.
    records = [rec("p", hukou=COUNTY_HUKOU, day=1), rec("p", "social_security", hukou=EAST_HUKOU, rights=False, day=2)]
    assert run(records, [reg("p", "county")]) == []


# --- district matching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "district"),
    [
        ("320923", "county"),
        (COUNTY_HUKOU, "county"),
        ("320923101", "town"),
        (TOWN_HUKOU, "town"),
        ("320924", "east"),
        (EAST_HUKOU, "east"),
        ("320925", None),
        ("3209", None),  # shorter than every district code
        (OUTSIDE_HUKOU, None),
    ],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_longest_prefix_wins(region: str, district: str | None, reverse: bool) -> None:
    districts = tuple(reversed(DISTRICTS)) if reverse else DISTRICTS
    assert district_holding(region, districts) == district


def test_nested_township_district_through_reconcile() -> None:
    assert run([rec("p", hukou=TOWN_HUKOU)]) == [Finding("missing", "p", None, "town")]
    assert run([rec("p", hukou=TOWN_HUKOU)], [reg("p", "county")]) == [Finding("wrong_district", "p", "county", "town")]
    assert run([rec("q", hukou=COUNTY_HUKOU)], [reg("q", "town")]) == [Finding("wrong_district", "q", "town", "county")]


def test_a_district_may_hold_several_codes() -> None:
    districts = (District("north", ["320923101", "320923102"]), District("rest", ["320923"]))
    assert district_holding(COUNTY_HUKOU, districts) == "north"
    assert district_holding("320923103", districts) == "rest"


@pytest.mark.parametrize("reverse", [False, True])
def test_tie_goes_to_the_lowest_district_id(reverse: bool) -> None:
    districts = [District("b", ["320925"]), District("a", ["320925"]), District("c", ["320925"])]
    if reverse:
        districts.reverse()
    assert district_holding("320925100", districts) == "a"


def test_longer_code_beats_lower_id() -> None:
    districts = [District("a", ["3209"]), District("b", ["320925"])]
    assert district_holding("320925100", districts) == "b"


# --- where the registries are silent ---------------------------------------------------------------


@pytest.mark.parametrize(
    "records",
    [
        [rec("p", "social_security", hukou=EAST_HUKOU)],
        [rec("p", "migrant", hukou=EAST_HUKOU, certificate=False)],
        [rec("p", "migrant", hukou=EAST_HUKOU, certificate=None),
         rec("p", "social_security", hukou=OUTSIDE_HUKOU)],
    ],
    ids=["social-security-only", "uncertified-migrant-only", "both"],
)
def test_no_population_record_is_never_missing_nor_wrong_district(records: list[SourceRecord]) -> None:
    person = merge_sources(records)["p"]
    assert not person.in_population
    assert expected_district(person, DISTRICTS) == (False, None)
    assert run(records) == []
    assert run(records, [reg("p", "county")]) == []


def test_no_population_record_still_deceased_or_underage_or_duplicate() -> None:
    assert only(run([rec("p", "social_security", status="deceased")], [reg("p", "county")])).kind == "deceased"
    assert only(run([rec("p", "social_security", born=YOUNG)], [reg("p", "county", YOUNG)])).kind == "underage"
    assert run([rec("p", "social_security")], [reg("p", "county"), reg("p", "east")]) == [
        Finding("duplicate", "p", "county", None)
    ]


def test_no_population_record_is_never_deprived() -> None:
    assert run([rec("p", "social_security", rights=False)], [reg("p", "county")]) == []


def test_emigrated_is_not_missing() -> None:
    assert run([rec("p", status="emigrated")]) == []
    assert not is_eligible(merge_sources([rec("p", status="emigrated")])["p"], ELECTION_DAY)


def test_registered_but_unknown_to_every_registry() -> None:
    assert run([], [reg("ghost", "east")]) == []
    assert run([], [reg("ghost", "east", YOUNG)]) == [Finding("underage", "ghost", "east", None)]
    assert run([], [reg("ghost", "east"), reg("ghost", "county")]) == [Finding("duplicate", "ghost", "county", None)]


def test_persons_are_matched_only_to_their_own_records() -> None:
    records = [rec("p", status="deceased"), rec("q", hukou=EAST_HUKOU)]
    findings = run(records, [reg("q", "east")])
    assert findings == []


# --- counts ----------------------------------------------------------------------------------------


def test_counts_of_nothing_has_all_six_kinds() -> None:
    assert counts([]) == dict.fromkeys(
        ("wrong_district", "duplicate", "missing", "deceased", "underage", "deprived"), 0
    )


def test_counts_count_persons_per_kind() -> None:
    records = [
        rec("dead", status="deceased"),
        rec("deprived", rights=False),
        rec("young", born=YOUNG),
        rec("twice", hukou=EAST_HUKOU),
        rec("wrong", hukou=EAST_HUKOU),
        rec("wrong2", hukou=TOWN_HUKOU),
        rec("missing1", hukou=EAST_HUKOU),
        rec("missing2", hukou=TOWN_HUKOU),
        rec("missing3"),
        rec("fine", hukou=TOWN_HUKOU),
    ]
    registrations = [
        reg("dead", "county"), reg("dead", "east"), reg("dead", "town"),
        reg("deprived", "county"),
        reg("young", "county", YOUNG),
        reg("twice", "east"), reg("twice", "county"), reg("twice", "town"),
        reg("wrong", "county"),
        reg("wrong2", "county"),
        reg("fine", "town"),
    ]
    findings = run(records, registrations)
    assert counts(findings) == {
        "deceased": 1, "deprived": 1, "underage": 1, "duplicate": 1, "wrong_district": 2, "missing": 3,
    }
    assert sorted(f.person for f in findings) == sorted(
        ["dead", "deprived", "young", "twice", "wrong", "wrong2", "missing1", "missing2", "missing3"]
    )
