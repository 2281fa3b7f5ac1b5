"""Kinds of problem (事项小类) a report can be about, finer than the ten categories.

Two citizens describing one blocked sewer write 下水道堵了, 污水冒出来, 井里反味 and 路面积水: few
characters in common, one kind of problem. Each kind below lists the phrases people use for it; a
report is about every kind one of whose phrases occurs in its text (plain substring search, so
the phrase is found inside longer words and after typos elsewhere). The kinds follow the subtypes
grid platforms and 12345 hotlines sort matters into; they are general, not written for any one
place or data set.
"""

from __future__ import annotations

from functools import lru_cache

from services.routing.places import KIND_WORDS

PROBLEMS: dict[str, tuple[str, ...]] = {
    # municipal facilities
    "streetlight": ("路灯", "灯不亮", "灯坏", "灯灭", "灯全灭", "照明", "黑灯瞎火", "黑漆漆", "一片黑", "灯也不亮",
                    "灯都不亮", "盏灯", "亮化"),
    "sewer": ("下水道", "下水", "污水", "反味", "返味", "冒水", "冒黑水", "排水", "积水", "堵了", "堵塞", "不通",
              "雨水井", "污水井", "窨井", "化粪", "返水", "反水", "漫出来", "溢出", "内涝", "淹"),
    "manhole": ("井盖", "井口", "井圈", "窨井盖", "篦子", "雨篦", "没盖", "盖子"),
    # 自来水, 供水 and 水龙头 name the medium, not the trouble: yellow tap water is water_quality.
    "water_supply": ("停水", "没水", "断水", "水压", "供水中断", "水管", "爆管", "漏水", "来水", "水都没有", "没有水",
                     "送水车", "上不去水"),
    "water_quality": ("黄水", "发黄", "水是黄", "水还是黄", "铁锈", "浑浊", "水质", "有味道", "桶装水", "水有股",
                      "水发浑", "沉淀"),
    "gas": ("煤气", "燃气", "天然气", "漏气", "气味", "停气", "燃气管"),
    "heating": ("暖气", "供暖", "供热", "不热", "冰凉", "暖气片", "热力", "取暖", "锅炉", "采暖", "温吞", "冻"),
    "power": ("停电", "断电", "没电", "跳闸", "电压", "变压器", "供电", "来电"),
    "toilet": ("公厕", "厕所"),
    "fitness": ("健身器材", "健身", "器材"),
    "elevator": ("电梯",),
    # roads and traffic
    "pothole": ("坑", "坑洼", "塌陷", "塌了", "路面破", "路烂", "烂路", "车辙", "颠", "沥青", "补路", "修路", "路面"),
    "signal": ("红绿灯", "红路灯", "信号灯", "红灯", "绿灯", "黄灯", "配时", "左转", "秒"),
    "parking": ("停车", "乱停", "违停", "车位", "占道停", "堵门", "停满"),
    "congestion": ("堵车", "拥堵", "堵死", "堵得", "接送", "疏导", "高峰", "走不动", "一动不动", "放学", "上下学"),
    "crossing": ("斑马线", "人行横道", "过马路", "减速带", "护栏", "天桥"),
    "bus": ("公交", "站台", "候车", "站牌", "班次", "末班", "等车", "撤站", "坐车", "路车", "停靠"),
    "trucks": ("渣土车", "大货车", "货车", "超速", "飙车", "开得飞快", "开很快", "重车", "拉土"),
    "bridge": ("桥", "裂缝", "裂了", "桥墩", "桥面"),
    "road_build": ("村道", "硬化", "泥巴路", "泥路", "路窄", "拓宽", "断头路"),
    # sanitation and environment
    "garbage": ("垃圾", "清运", "满溢", "没人收", "乱扔", "乱倒", "堆满", "垃圾桶", "垃圾站", "建筑垃圾"),
    "noise": ("噪音", "噪声", "吵", "扰民", "闹", "音响", "喇叭", "睡不着", "划拳", "轰鸣", "困觉", "大声"),
    "bbq_fumes": ("油烟", "烧烤", "夜宵", "烟熏", "排烟", "熏"),
    "construction": ("施工", "工地", "夜间施工", "打桩", "挖掘机", "半夜干活", "机器轰鸣"),
    "dust": ("扬尘", "灰尘", "粉尘", "灰大", "尘土", "吃灰", "全是土", "满天黄", "洒水车"),
    "smell": ("臭", "异味", "恶臭", "刺鼻", "呛"),
    "water_pollution": ("死鱼", "鱼死", "黑臭", "发黑", "黑成", "墨汁", "水塘", "河水", "水面", "漂浮", "排污", "偷排",
                        "污染"),
    "burning": ("焚烧", "烧秸秆", "秸秆", "麦秸", "烧垃圾", "冒烟", "浓烟", "黑烟", "在烧", "烧了", "烟大"),
    "pests": ("老鼠", "蟑螂", "蚊子", "苍蝇", "蚊蝇", "鼠"),
    "ads": ("小广告", "牛皮癣", "乱贴", "乱涂"),
    "square_dance": ("广场舞", "跳舞"),
    "septic": ("化粪池", "粪水", "粪便", "抽粪"),
    "muck": ("渣土", "撒漏", "泥土", "拉土"),
    # greenery
    "tree": ("树", "枝", "枯枝", "断枝", "倒伏", "砍", "锯", "修剪", "剪枝", "树叶", "光杆", "秃", "歪了", "倒了"),
    "tree_pests": ("虫", "病虫", "飞絮", "杨絮", "毛毛虫", "打药"),
    "green_damage": ("绿地", "绿化带", "草坪", "种菜", "毁绿", "菜地", "花坛"),
    "park": ("公园",),
    # order and safety
    "stalls": ("摊", "摆摊", "小贩", "占道", "卖菜", "卖水果", "三轮车", "夜市", "流动摊", "出摊", "卖东西", "摆满",
               "摆到"),
    "flying_wire": ("飞线", "充电", "拉线", "电瓶车", "电动车"),
    "stairwell": ("楼道", "堆物", "杂物", "消防通道", "楼梯"),
    "illegal_building": ("违建", "违章", "搭建", "加盖", "私搭", "乱搭", "圈地"),
    "dogs": ("狗", "犬", "流浪"),
    "security": ("小偷", "偷东西", "被偷", "治安", "监控", "打架", "诈骗"),
    "throwing": ("高空抛物", "往下扔", "扔下来", "扔东西", "抛物"),
    "racing": ("炸街", "飙车", "改装车", "摩托", "轰"),
    "group_rental": ("群租", "隔成", "隔断", "出租屋", "二房东"),
    "wages": ("工资", "欠薪", "拖欠", "讨薪", "劳动监察", "老板跑"),
    # social security, education, health, elderly care, policy
    "pension": ("养老金", "退休金", "养老保险", "认证", "待遇", "社保", "下岗", "工龄"),
    "old_age_allowance": ("高龄", "八十岁以上", "老人补贴", "老年补贴", "长寿"),
    "dibao": ("低保", "特困", "救助"),
    "disability": ("残疾", "残联", "残疾证"),
    "birth": ("生育", "产假", "生孩子"),
    "insurance": ("医保", "缴费", "报销", "参保", "保险"),
    "social_card": ("社保卡", "卡", "办卡", "补卡"),
    "school_meal": ("午饭", "午餐", "食堂", "饭菜", "伙食", "吃不饱"),
    # Charges of a school, a hospital or a service: which one the place tells.
    "fees": ("收费", "资料费", "教辅", "补课", "乱收", "费用", "辅导", "收了钱", "收钱", "收款", "收据", "托管",
             "课后服务", "延时服务", "强制", "清单", "结账", "重复收", "交了", "一学期"),
    "school_places": ("学位", "划片", "入学", "招生", "上学难", "入园", "摇号", "名额", "报名"),
    "kindergarten": ("幼儿园", "托儿所", "入园", "托育"),
    "dorm": ("宿舍", "住宿", "住校", "上下铺", "热水", "洗澡"),
    "school_safety": ("校门", "放学", "上学", "接孩子"),
    "clinic_hours": ("值班", "急诊", "关门", "夜间看病", "没有医生", "找不到医生", "护士"),
    "queue": ("排队", "挂号", "挂上号", "号太难", "放号", "窗口", "等了", "一上午", "看病难", "看个病"),
    "medicine": ("药", "药房", "药店", "断货", "缺货", "没货", "配药", "胰岛素"),
    "vaccine": ("疫苗", "接种", "打针", "狂犬针", "第二针"),
    "elder_meals": ("老年食堂", "老人食堂", "助餐", "送餐", "一顿"),
    "nursing_home": ("敬老院", "养老院", "护工", "照料", "日间照料", "五保"),
    "home_care": ("居家养老", "上门服务", "助浴", "上门", "居家"),
    "land": ("土地", "征地", "流转", "承包", "补偿", "地租", "宅基地"),
    "relocation": ("拆迁", "棚改", "棚户区", "安置", "评估", "补偿", "征收", "丈量"),
    "renovation": ("改造", "老旧小区", "加装电梯", "维修基金", "维修资金", "物业"),
}


@lru_cache(maxsize=4096)
def _names_place(phrase: str) -> bool:
    return len(phrase) == 1 or any(phrase.endswith(word) for word in KIND_WORDS)


@lru_cache(maxsize=16384)
def kinds(text: str, masked: str | None = None) -> tuple[str, ...]:
    """The kinds of problem the text speaks of, in the order it first names them: people name
    their main complaint first and add the rest after.

    `masked` is the text with its place names blanked out, of the same length. Phrases of one
    character, and phrases that end in a word for a kind of place (敬老院, 公园), are looked for
    there only, so 刘桥 (a town) is no bridge and 福寿苑养老院 no complaint about a nursing home;
    other phrases in the whole text, so the 垃圾 of 门口垃圾站 still counts."""
    masked = text if masked is None else masked
    found: list[tuple[int, str]] = []
    for kind, phrases in PROBLEMS.items():
        positions = [i for i in ((masked if _names_place(p) else text).find(p) for p in phrases) if i >= 0]
        if positions:
            found.append((min(positions), kind))
    return tuple(kind for _, kind in sorted(found))


# Kinds that one problem often shows as both: a blocked sewer overflows from a manhole and smells;
# school-run traffic is parking and congestion at once.
RELATED: frozenset[frozenset[str]] = frozenset(frozenset(p) for p in (
    ("sewer", "manhole"), ("sewer", "smell"), ("sewer", "septic"), ("septic", "smell"), ("garbage", "smell"),
    ("garbage", "pests"), ("water_pollution", "smell"), ("bbq_fumes", "noise"), ("bbq_fumes", "stalls"),
    ("stalls", "congestion"), ("congestion", "parking"), ("congestion", "school_safety"), ("parking", "school_safety"),
    ("crossing", "school_safety"), ("water_supply", "water_quality"), ("tree", "tree_pests"), ("tree", "park"),
    ("green_damage", "park"), ("muck", "dust"), ("muck", "trucks"), ("dust", "construction"),
    ("noise", "construction"), ("noise", "square_dance"), ("relocation", "land"), ("pension", "insurance"),
    ("pension", "social_card"), ("insurance", "social_card"), ("queue", "clinic_hours"), ("medicine", "queue"),
    ("flying_wire", "stairwell"), ("pothole", "trucks"), ("pothole", "road_build"), ("bridge", "pothole"),
    ("elder_meals", "nursing_home"), ("fees", "school_meal"), ("home_care", "elder_meals"),
    ("home_care", "nursing_home"), ("racing", "noise"), ("racing", "trucks"), ("throwing", "garbage"),
    ("renovation", "elevator"),
))


def related(a: str, b: str) -> bool:
    return frozenset((a, b)) in RELATED
