"""Where a report says its problem is: place names in the text, and the distance between two points.

Citizens name places the way they say them: 淮海路与长山路交叉口, 淮海长山路口, 长山路口（淮海路这边）;
幸福小区 7栋, 7号楼; 我们小区（幸福小区）. A mention is a run of Chinese characters or digits ending in
a word that names a kind of place (路, 街, 巷, 路口, 小区, 花园, 村, 栋, 医院, 学校 …). Mentions are
compared by their characters, not as whole strings, so the short and the long way of saying one
place overlap and two places of one road (淮海路与长山路, 淮海路与人民路) overlap only in part.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

# Longest first: 交叉口 before 口, 小区 before 区.
_KINDS = (
    "交叉口", "十字路口", "路口", "丁字路口", "大道", "大街", "公路", "路", "街", "巷", "弄", "胡同",
    "小区", "花园", "家园", "新村", "新苑", "苑", "公寓", "大厦", "广场", "市场", "菜市场", "商场", "超市",
    "公园", "村", "组", "社区", "居委会",
    "号楼", "栋", "幢", "单元", "楼",
    "小学", "中学", "幼儿园", "学校", "医院", "卫生院", "卫生室", "诊所", "服务中心", "服务站", "敬老院",
    "养老院", "食堂", "车站", "公交站", "站", "桥", "河", "湖", "塘", "水塘", "门", "大门",
    "庄", "屯", "寨", "湾", "菜场", "镇", "乡",
)
_KINDS_LONGEST = tuple(sorted(set(_KINDS), key=len, reverse=True))
# Words that say what kind of place something is; a phrase ending in one names a place, not a problem.
KIND_WORDS = frozenset(_KINDS)
_KIND = "|".join(_KINDS_LONGEST)
# Up to six characters before the kind: "淮海路" "幸福小区" "7栋" "城关第二小学" "南湖公园东门".
_MENTION = re.compile(rf"(?:[\u4e00-\u9fff0-9A-Za-z]{{1,6}}?(?:{_KIND}))+")
# Words that start a clause and are not part of a place: "我们小区" names no place.
_LEADING = ("再次反映", "又来反映", "反映一下", "反映", "请问", "想问", "建议", "希望", "麻烦", "尽快修复", "尽快",
            "修复", "再次", "您好", "你好", "靠近", "比", "我们", "咱们", "我家", "俺们", "这个", "那个", "这条",
            "那条", "这边", "那边", "就是", "还有", "在", "到", "从", "去", "的", "是", "我", "你", "他", "她",
            "住", "家", "个", "条", "了", "与", "跟", "及", "关于")
# An official request names the department before the place, and its 门 reads like a gate's:
# 请相关部门疏通沩江路与春华路交叉口, 建议环卫部门增加青石桥菜市场…: the place starts after the verb.
_DEPARTMENT = re.compile(r"^.*?部门(?:尽快|及时|合理|进一步)?"
                         r"(?:疏通|核查|查处|处理|维修|修复|增加|调整|督促|安排|整治|清理|检查|排查|解决|协调|落实)?")
# A run holding one of these is a clause, not a name: 一下雨街(上), 臭味飘到五六楼, 杀鱼的水全倒在路.
_NOT_IN_NAMES = frozenset("的了在是有没都还把被给吧吗呢啊着过要能会就也很太又全上下来去到说做"
                          "那这些哪啥么咋让从跟往排不走骑")
_ALONE = frozenset({"路", "街", "村", "门", "楼", "站", "桥", "河", "湖", "塘", "组", "小区", "社区", "路口",
                    "单元", "大门", "市场", "公园", "医院", "学校", "马路", "道路", "公路", "小学", "中学",
                    "走路", "修路", "上楼", "下楼", "爬楼", "过桥"})
# What may stand before 门 in a gate's name (南门, 3号门, 正门, 公园东门); 看门, 锁门, 关门, 敲了半天门
# are things people do.
_GATE_BEFORE = frozenset("东南西北正侧后前大小号0123456789") | frozenset("".join(_KINDS))
_CUT = re.compile("[^\u4e00-\u9fff0-9A-Za-z]|[" + "".join(sorted(_NOT_IN_NAMES)) + "]")
_KIND_ONLY = re.compile(rf"(?:{_KIND})+")
_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_CHINESE_NUMBER = re.compile(r"([一二三四五六七八九十]{1,3})(?=栋|号楼|幢|单元)")
_NUMERALS = {c: i for i, c in enumerate("零一二三四五六七八九")}


def _arabic(match: re.Match[str]) -> str:
    """十二 → 12, 七 → 7: people write building numbers both ways."""
    text = match.group(1)
    if "十" not in text:
        return "".join(str(_NUMERALS[c]) for c in text)
    tens, _, ones = text.partition("十")
    return str((_NUMERALS.get(tens, 1) if tens else 1) * 10 + (_NUMERALS.get(ones, 0) if ones else 0))


def mentions(text: str) -> tuple[str, ...]:
    """Place mentions in the order they appear, without the words that only lead into them.

    The text is first cut at punctuation and at characters no place name holds, so that 淮海路与长山路
    交叉口 stays one mention and 二小门口那条路 gives 二小门口."""
    out: list[str] = []
    normal = _CHINESE_NUMBER.sub(_arabic, text.translate(_DIGITS))
    for chunk in _CUT.split(normal):
        for match in _MENTION.finditer(chunk):
            mention = match.group(0)
            department = _DEPARTMENT.match(mention)
            if department is not None:
                mention = mention[department.end():]
                if not _MENTION.fullmatch(mention):
                    continue
            changed = True
            while changed:
                changed = False
                for lead in _LEADING:
                    if mention.startswith(lead) and len(mention) > len(lead):
                        mention = mention[len(lead):]
                        changed = True
            if mention.endswith("门") and len(mention) >= 2 and mention[-2] not in _GATE_BEFORE:
                mention = mention[:-2]
                if not _KIND_ONLY.search(mention[-3:] if mention else ""):
                    continue
            if mention in _ALONE or len(mention) < 2 or _KIND_ONLY.fullmatch(mention):
                continue
            out.append(mention)
    return tuple(dict.fromkeys(out))


def masked(text: str) -> str:
    """The text with its place names blanked out, the same length (a building number written in
    Chinese, 七栋, stays: it names no problem either)."""
    for mention in mentions(text):
        text = text.replace(mention, " " * len(mention))
    return text


def names_masked(text: str) -> str:
    """The text with the names in its place mentions blanked out and the words for the kinds of
    place kept, the same length: 银杏苑5栋 → "  苑 栋", 县中医院 → "  医院". The kind of a place
    often says the category (医院, 小学, 公交站); its name seldom does and sometimes misleads
    (银杏苑 is no tree)."""
    for mention in mentions(text):
        keep = [False] * len(mention)
        for word in _KINDS_LONGEST:
            start = mention.find(word)
            while start >= 0:
                if not any(keep[start:start + len(word)]):
                    keep[start:start + len(word)] = [True] * len(word)
                start = mention.find(word, start + 1)
        text = text.replace(mention, "".join(c if k else " " for c, k in zip(mention, keep, strict=True)))
    return text


# Characters every place name has somewhere: they say what kind of place, not which.
_GENERIC = frozenset("路街巷口区门村号栋楼幢小中大学园苑里交叉十字道社与和跟及")
_DIRECTIONS = frozenset("东南西北")
_NUMBERED = re.compile(r"(\d+)(?:栋|号楼|幢|单元|楼)")


@lru_cache(maxsize=65536)
def core(mention: str) -> str:
    """What names the place, without the words for its kind: 城南菜市场 → 城南, 县人民医院 → 县人民."""
    for kind in _KINDS_LONGEST:
        mention = mention.replace(kind, " ")
    return "".join(c for c in mention if c not in _GENERIC and not c.isspace())


def _dice(a: str, b: str) -> float:
    """The share of characters two names' cores have in common, in any order: 淮海长山 is
    淮海路与长山路. (Comparing character pairs too was tried and lost more paraphrases than it
    kept places apart.)"""
    x, y = set(core(a)), set(core(b))
    if not x or not y:
        return 1.0 if a == b else 0.0
    return 2 * len(x & y) / (len(x) + len(y))


def name_characters(mentions_: tuple[str, ...]) -> set[str]:
    """The characters that tell the places apart (not 路, 小区, 门 …)."""
    return {c for m in mentions_ for c in core(m)}


def conflict(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Both name a building, gate or side and they differ: 7栋 and 2栋, 南门 and 北门."""
    numbers_a = {m.group(1) for x in a for m in _NUMBERED.finditer(x)}
    numbers_b = {m.group(1) for x in b for m in _NUMBERED.finditer(x)}
    if numbers_a and numbers_b and not numbers_a & numbers_b:
        return True
    gates_a = {x[-2] for x in a if len(x) >= 2 and x.endswith("门") and x[-2] in _DIRECTIONS}
    gates_b = {x[-2] for x in b if len(x) >= 2 and x.endswith("门") and x[-2] in _DIRECTIONS}
    return bool(gates_a and gates_b and not gates_a & gates_b)


def match(a: tuple[str, ...], b: tuple[str, ...]) -> float | None:
    """How far two reports' place names agree, 0–1; None when either names none. Each name counts
    as matched by its closest counterpart; a name on one side only lowers the score, so the
    same road at another crossroads (淮海路与人民路) scores below the crossroads itself."""
    if not a or not b:
        return None
    if conflict(a, b):
        return 0.0
    best_a = [max(_dice(x, y) for y in b) for x in a]
    best_b = [max(_dice(y, x) for x in a) for y in b]
    return (sum(best_a) + sum(best_b)) / (len(best_a) + len(best_b))


EARTH_RADIUS_M = 6_371_000.0


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
