"""Place names read from a report's text (`services/routing/places.py`): what a hotspot's "same
place" is judged by."""

from __future__ import annotations

import pytest

from services.routing import places


@pytest.mark.parametrize(("text", "expected"), [
    # An official request names the department first; its 门 is no gate and the place follows the verb.
    ("请相关部门疏通沩江路与春华路交叉口东北角的排水管网", ("沩江路与春华路",)),
    ("建议环卫部门增加青石桥菜市场垃圾清运频次", ("青石桥菜市场",)),
    ("请金鸡桥镇和环保部门核查杉木冲村养殖场污水直排靳江河的问题", ("杉木冲村", "靳江河")),
    ("关于杉木冲小学撤并问题", ("杉木冲小学",)),
    # A department alone names no place.
    ("请住建和环保部门查处", ()),
    # Words leading into a name are not part of it; gates and buildings are.
    ("反映一下幸福小区南门的路灯", ("幸福小区南门",)),
    ("我们小区（锦绣花园）七栋又停水了", ("锦绣花园", "7栋")),
    ("看门的大爷说锁门了", ()),
])
def test_place_mentions(text: str, expected: tuple[str, ...]) -> None:
    assert places.mentions(text) == expected


def test_the_same_crossroads_matches_and_a_department_no_longer_spoils_it() -> None:
    official = places.mentions("请相关部门疏通沩江路与春华路交叉口东北角的排水管网")
    spoken = places.mentions("沩江春华路口 臭水往上翻 几天了")
    assert places.match(official, spoken) == pytest.approx(1.0)
    other = places.mentions("沩江路与玉兰路交叉口也积水")
    assert (places.match(official, other) or 0.0) < 1.0
