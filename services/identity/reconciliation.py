"""Voter-roll reconciliation rules (错登、重登、漏登), as plain functions.

The job itself runs as set-based SQL inside PostgreSQL (`reconciliation_sql.py`); this module is
the readable statement of the same rules (docs/integrators.md, "Reconciliation rules"), used by the
unit tests and by the integration test that checks the SQL finds exactly what these functions find.

Merging sources, matched on the ID number:
- hukou region, status and political rights come from the latest `population` record;
- residence region and certificate come from the latest `migrant` record;
- a `deceased` status from any source counts.

Where the registries are silent the rules stay silent too: a registered person with no
population record (and no certified migrant record) has no expected district, so is never called
`wrong_district`; a person without a population record is never `missing`, since being `active`
with political rights cannot be shown.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal

Kind = Literal["deceased", "deprived", "underage", "duplicate", "wrong_district", "missing"]
# Each registered person is reported once, with the first kind that applies in this order.
REGISTERED_KINDS: Final[tuple[Kind, ...]] = ("deceased", "deprived", "underage", "duplicate", "wrong_district")
KINDS: Final[tuple[Kind, ...]] = (*REGISTERED_KINDS, "missing")
VOTING_AGE: Final = 18


@dataclass(frozen=True)
class SourceRecord:
    """The fields of a registry record that the rules read."""

    person: Hashable
    source: str
    birth_date: date
    hukou_region_code: str
    residence_region_code: str
    status: str
    political_rights: bool
    residence_certificate: bool | None
    updated_at: datetime


@dataclass(frozen=True)
class Person:
    person: Hashable
    birth_date: date
    in_population: bool
    hukou_region_code: str | None
    status: str | None
    political_rights: bool | None
    residence_region_code: str | None
    certified_migrant: bool
    deceased: bool


@dataclass(frozen=True)
class District:
    id: str
    region_codes: Sequence[str]


@dataclass(frozen=True)
class Registration:
    person: Hashable
    district_id: str
    birth_date: date


@dataclass(frozen=True)
class Finding:
    kind: Kind
    person: Hashable
    district_id: str | None
    expected_district_id: str | None


def _latest(records: Iterable[SourceRecord]) -> SourceRecord | None:
    # Ties on updated_at cannot be ordered by time; the SQL breaks them the same way (record order
    # is not stable there either), so tests never rely on a tie.
    best: SourceRecord | None = None
    for record in records:
        if best is None or record.updated_at > best.updated_at:
            best = record
    return best


def merge_sources(records: Iterable[SourceRecord]) -> dict[Hashable, Person]:
    by_person: dict[Hashable, list[SourceRecord]] = {}
    for record in records:
        by_person.setdefault(record.person, []).append(record)
    merged: dict[Hashable, Person] = {}
    for person, own in by_person.items():
        population = _latest(r for r in own if r.source == "population")
        migrant = _latest(r for r in own if r.source == "migrant")
        merged[person] = Person(
            person=person,
            birth_date=own[0].birth_date,
            in_population=population is not None,
            hukou_region_code=population.hukou_region_code if population else None,
            status=population.status if population else None,
            political_rights=population.political_rights if population else None,
            residence_region_code=migrant.residence_region_code if migrant else None,
            certified_migrant=bool(migrant and migrant.residence_certificate),
            deceased=any(r.status == "deceased" for r in own),
        )
    return merged


def adult_cutoff(election_day: date) -> date:
    """Latest birth date of a voter: 18 years before election day (29 February → 28 February)."""
    year = election_day.year - VOTING_AGE
    try:
        return election_day.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def district_holding(region_code: str, districts: Sequence[District]) -> str | None:
    """The district whose code is the longest prefix of the region's code (the lowest id on a tie)."""
    best: tuple[int, str] | None = None
    for district in districts:
        for code in district.region_codes:
            if region_code.startswith(code):
                candidate = (-len(code), district.id)
                if best is None or candidate < best:
                    best = candidate
    return best[1] if best else None


def expected_district(person: Person, districts: Sequence[District]) -> tuple[bool, str | None]:
    """(whether the registries tell where the person votes, the district of this election or None)."""
    if person.certified_migrant and person.residence_region_code:
        return True, district_holding(person.residence_region_code, districts)
    if person.in_population and person.hukou_region_code:
        return True, district_holding(person.hukou_region_code, districts)
    return False, None


def is_eligible(person: Person, election_day: date) -> bool:
    return (person.in_population and person.status == "active" and not person.deceased
            and person.political_rights is True and person.birth_date <= adult_cutoff(election_day))


def reconcile(
    persons: Mapping[Hashable, Person],
    registrations: Iterable[Registration],
    districts: Sequence[District],
    election_day: date,
) -> list[Finding]:
    cutoff = adult_cutoff(election_day)
    registered: dict[Hashable, list[Registration]] = {}
    for reg in registrations:
        registered.setdefault(reg.person, []).append(reg)

    findings: list[Finding] = []
    for key, regs in registered.items():
        person = persons.get(key)
        known, expected = expected_district(person, districts) if person else (False, None)
        ordered = sorted(regs, key=lambda r: (r.district_id == expected, r.district_id))
        shown = ordered[0].district_id
        kind: Kind | None = None
        if person is not None and person.deceased:
            kind = "deceased"
        elif person is not None and person.political_rights is False:
            kind = "deprived"
        elif regs[0].birth_date > cutoff:
            kind = "underage"
        elif len({r.district_id for r in regs}) > 1:
            kind = "duplicate"
        elif known and shown != expected:
            kind = "wrong_district"
        if kind is not None:
            findings.append(Finding(kind, key, shown, expected))

    for key, person in persons.items():
        if key in registered or not is_eligible(person, election_day):
            continue
        known, expected = expected_district(person, districts)
        if known and expected is not None:
            findings.append(Finding("missing", key, None, expected))
    return findings


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    out = dict.fromkeys(KINDS, 0)
    for finding in findings:
        out[finding.kind] += 1
    return out
