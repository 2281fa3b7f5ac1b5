"""The demo county (演示区): a small but complete place to try Minyi in, as plain data.

Everything here is made up: the names, the people and their ID numbers (valid check characters,
invented digits). The registry records and the voter roll are built so that a reconciliation
finds exactly one person of each problem kind, which the end-to-end test relies on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from shared import idnumber

COUNTY = "330106"
ELECTION_DAY = date(2026, 12, 20)
DISTRICT_A, DISTRICT_B = "demo-2026-d1", "demo-2026-d2"
GRID_PLATFORM = "demo-grid"
UNITS = ("demo-unit-transport", "demo-unit-housing")
# Who the walkthrough speaks for: the deputy whose code a citizen scans, and the staff region.
FEATURED_DEPUTY = "demo-dep-county"
CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    parent: str | None


@dataclass(frozen=True)
class Station:
    id: str
    name: str
    kind: str
    region: str


@dataclass(frozen=True)
class Deputy:
    id: str
    name: str
    level: str
    region: str
    stations: tuple[str, ...]
    district: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    region: str
    parent: str | None = None


@dataclass(frozen=True)
class Person:
    """One resident as the registries know them, and where (if anywhere) they are on the roll."""

    key: str
    name: str
    born: date
    hukou: str
    registered_in: tuple[str, ...] = ()
    status: str = "active"
    political_rights: bool = True
    residence: str | None = None
    certificate: bool = False
    # The problem a reconciliation should find for this person, if any.
    expect: str | None = None
    seq: int = 1

    @property
    def id_number(self) -> str:
        first17 = f"{self.hukou[:6]}{self.born:%Y%m%d}{self.seq:03d}"
        return first17 + idnumber.check_character(first17)


@dataclass(frozen=True)
class County:
    code: str
    regions: tuple[Region, ...]
    stations: tuple[Station, ...]
    deputies: tuple[Deputy, ...]
    units: tuple[Unit, ...]
    people: tuple[Person, ...]
    districts: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def election_id(self) -> str:
        """One per county: staff of one county may not touch another county's election."""
        return f"demo-{self.code}-{ELECTION_DAY.year}"

    def population_records(self, at: datetime) -> list[dict[str, object]]:
        return [{"record_id": f"pop-{p.key}", "id_number": p.id_number, "name": p.name,
                 "hukou_region_code": p.hukou, "residence_region_code": p.residence or p.hukou,
                 "status": p.status, "political_rights": p.political_rights, "updated_at": at.isoformat()}
                for p in self.people]

    def migrant_records(self, at: datetime) -> list[dict[str, object]]:
        return [{"record_id": f"mig-{p.key}", "id_number": p.id_number, "name": p.name,
                 "hukou_region_code": p.hukou, "residence_region_code": p.residence, "status": p.status,
                 "political_rights": p.political_rights, "residence_certificate": p.certificate,
                 "updated_at": at.isoformat()}
                for p in self.people if p.residence]

    def voters(self) -> list[dict[str, str]]:
        return [{"id_number": p.id_number, "name": p.name, "district_id": d}
                for p in self.people for d in p.registered_in]

    def expected_problems(self) -> dict[str, str]:
        """Problem kind → the ID number of the one person it should be found for."""
        return {p.expect: p.id_number for p in self.people if p.expect}


def county(code: str = COUNTY) -> County:
    """The demo county under the county code given (six digits), its province and city taken from it."""
    if len(code) != 6 or not code.isdigit() or code.endswith("00"):
        raise ValueError(f"a county code is six digits not ending in 00, not {code!r}")
    province, city = f"{code[:2]}0000", f"{code[:4]}00"
    town_a, town_b = f"{code}001", f"{code}002"  # two subdistricts, one per electoral district
    village_a, village_b = f"{town_a}001", f"{town_b}001"
    township = f"{code}109"  # a town with its own people's congress (乡镇人大)
    regions = (
        Region(province, "演示省", None),
        Region(city, "演示市", province),
        Region(code, "演示区", city),
        Region(town_a, "北山街道", code),
        Region(town_b, "西溪街道", code),
        Region(township, "三墩镇", code),
        Region(village_a, "宝石社区", town_a),
        Region(village_b, "文新社区", town_b),
        Region(f"{village_a}-G01", "宝石社区第一网格", village_a),
        Region(f"{village_b}-G01", "文新社区第一网格", village_b),
    )
    stations = (
        Station("demo-center", "演示区人大代表联络服务中心", "service_center", code),
        Station("demo-home", "三墩镇人大代表之家", "home", township),
        Station("demo-station", "北山街道人大代表联络站", "station", town_a),
        Station("demo-studio", "西溪选区代表工作室", "studio", town_b),
        Station("demo-cloud", "宝石社区云端联络点", "cloud_point", village_a),
    )
    deputies = (
        Deputy("demo-dep-national", "周国华", "national", province, ("demo-center",)),
        Deputy("demo-dep-provincial", "吴晓梅", "provincial", city, ("demo-center",)),
        Deputy("demo-dep-municipal", "郑建平", "municipal", code, ("demo-center", "demo-station")),
        Deputy(FEATURED_DEPUTY, "王丽娟", "county", code, ("demo-station", "demo-cloud"), DISTRICT_A,
               "13800000001"),
        Deputy("demo-dep-county-b", "陈志强", "county", code, ("demo-studio",), DISTRICT_B),
        Deputy("demo-dep-township", "李秀英", "township", township, ("demo-home",)),
    )
    units = (
        Unit(UNITS[0], "演示区交通运输局", code),
        Unit(UNITS[1], "演示区住房和城乡建设局", code),
    )
    adult = date(1978, 5, 12)
    people = (
        Person("ok", "赵平", adult, village_a, (DISTRICT_A,), seq=11),
        Person("migrant", "钱进", date(1985, 9, 3), "320923001001", (DISTRICT_A,), residence=village_a,
               certificate=True, seq=12),
        Person("moved", "孙悦", date(1969, 1, 20), village_b, (DISTRICT_A,), expect="wrong_district", seq=13),
        Person("twice", "李强", date(1990, 7, 7), village_a, (DISTRICT_A, DISTRICT_B), expect="duplicate", seq=14),
        Person("absent", "周敏", date(1972, 11, 30), village_b, (), expect="missing", seq=15),
        Person("passed", "吴刚", date(1941, 2, 2), village_a, (DISTRICT_A,), status="deceased", expect="deceased",
               seq=16),
        Person("young", "郑小雨", date(ELECTION_DAY.year - 17, 3, 1), village_b, (DISTRICT_B,), expect="underage",
               seq=17),
        Person("deprived", "王五", date(1966, 6, 6), village_b, (DISTRICT_B,), political_rights=False,
               expect="deprived", seq=18),
    )
    return County(code, regions, stations, deputies, units, people,
                  {DISTRICT_A: (town_a, township), DISTRICT_B: (town_b,)})
