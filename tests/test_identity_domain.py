"""Identity domain rules without I/O: region codes and masking."""

from __future__ import annotations

import pytest

from services.identity.domain import InvalidRegion, check_parent, mask_phone, parse_region_code


@pytest.mark.parametrize(
    ("code", "level", "prefix"),
    [
        ("320000", "province", "32"),
        ("320900", "city", "3209"),
        ("320923", "county", "320923"),
        ("110101", "county", "110101"),
        ("320923101", "township", "320923101"),
        ("320923101201", "village", "320923101201"),
        ("320923101-G03", "grid", "320923101-G03"),
    ],
)
def test_region_levels_and_prefixes(code: str, level: str, prefix: str) -> None:
    parsed = parse_region_code(code)
    assert (parsed.level, parsed.prefix) == (level, prefix)


@pytest.mark.parametrize("code", ["32092", "3209231", "32092310", "000000", "320923-", "320923-G 3", "abcdef"])
def test_malformed_codes_are_refused(code: str) -> None:
    with pytest.raises(InvalidRegion):
        parse_region_code(code)


def test_parents_must_contain_their_children() -> None:
    county, city, province = (parse_region_code(c) for c in ("320923", "320900", "320000"))
    check_parent(county, city)
    check_parent(county, province)  # counties directly under a province exist
    check_parent(city, province)
    with pytest.raises(InvalidRegion, match="不一致"):
        check_parent(county, parse_region_code("330100"))
    with pytest.raises(InvalidRegion, match="层级"):
        check_parent(city, county)
    with pytest.raises(InvalidRegion, match="必须指定上级"):
        check_parent(county, None)
    check_parent(province, None)


@pytest.mark.parametrize(
    ("phone", "masked"),
    [("13812345678", "138****5678"), ("+86 138-1234-5678", "138****5678"), ("0515-88123456", "051*****3456"),
     ("12345", "*****")],
)
def test_phones_are_masked(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked
