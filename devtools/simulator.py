"""Demo simulator: realistic citizens' cases (in Simplified Chinese) sent to the village centers.

``CaseFactory`` makes one ``SubmitCaseRequest`` at a time from a seeded ``random.Random`` (so a
seed always gives the same cases); ``run_simulator`` sends them to the village nodes of a
topology at a Poisson rate until told to stop. All persons, ID and phone numbers are invented.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable

import grpc

from fengqiao import grpcutil
from fengqiao.cases.parties import id_check_digit
from fengqiao.cases.vocabulary import DEFAULT_CATEGORIES, DEFAULT_CHANNELS
from fengqiao.divisions import Tier
from fengqiao.topology import Topology
from fengqiao.v1 import case_pb2, intake_pb2, intake_pb2_grpc

log = logging.getLogger(__name__)
SIMULATED = "sim-"
"""The ``client_request_id`` prefix of the simulator's cases: the demo's robot works only these."""

CALL_TIMEOUT_S = 5.0
RETRY_PAUSE_S = 1.0

_CHANNEL_WEIGHTS = {
    "网格员上报": 35, "群众来访": 25, "电话热线": 12, "12345转办": 9, "警调对接": 5,
    "民情收集箱": 4, "视频监控预警": 3, "网上信访": 3, "部门移交": 4,
}  # fmt: skip
_CATEGORY_WEIGHTS = {
    "邻里": 18, "婚姻家庭": 15, "房屋宅基地": 12, "合同": 10, "损害赔偿": 6, "劳动争议": 6,
    "山林土地": 5, "生产经营": 4, "环境污染": 4, "道路交通": 4, "安全隐患": 4, "物业": 3,
    "消费": 3, "治安隐患": 3, "其它": 2, "征地拆迁": 1, "医疗": 1,
}  # fmt: skip
_URGENT_SHARE = {"安全隐患": 0.3, "治安隐患": 0.25}
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "邻里": (
        "{a}反映邻居{b}家新翻盖的房屋屋檐伸出过长，下雨时雨水直接滴到自家院内，墙根已经返潮。双方多次协商未果。",
        "{a}与{b}两家共用一条胡同，{b}在胡同里堆放柴草和砖块，{a}家三轮车无法通行，双方为此发生口角。",
        "{b}家的狗多次跑进{a}家院子，{n}天前咬伤{a}家孩子，花去医药费{amt}元，双方对赔偿各执一词。",
        "{a}反映{b}在两家之间的排水沟里垫土，下雨后积水倒灌进{a}家院子，要求{b}恢复原状。",
    ),
    "婚姻家庭": (
        "{a}反映其{age}岁的母亲独居，几个子女在赡养问题上互相推诿，已有{m}个月没人给生活费，请求村里调解。",
        "{a}与配偶因家庭琐事长期争吵，现提出离婚，双方对孩子抚养和{n}间房屋的分割分歧较大。",
        "{a}反映兄弟姊妹之间因父母留下的{n}间老房子如何分配产生纠纷，多次商量未能达成一致。",
        "{a}反映儿媳与婆婆长期不和，近日因照看孩子的问题发生争吵并有推搡，家庭矛盾激化。",
    ),
    "房屋宅基地": (
        "{a}反映{b}新砌的院墙越过两家宅基地分界线约{dist}米，占了{a}家的滴水位置，要求拆除重砌。",
        "{a}与{b}因宅基地东西界址不清发生争执，双方各持一份老宅基地证，记载的面积不一致。",
        "{a}反映{b}翻建房屋时把地基挖到{a}家墙根下，{a}家后墙已出现{n}道裂缝，担心房屋安全。",
    ),
    "合同": (
        "{a}去年将{mu}亩承包地流转给{b}种植，约定每亩每年租金{rent}元，至今拖欠{amt}元未付。",
        "{a}借给{b}{amt}元购买农机，约定{m}个月内归还。到期后{b}以资金紧张为由拒不还款。",
        "{a}请{b}的施工队翻修房顶，完工不到{m}个月屋顶就漏雨，{b}拒绝返修，双方发生争执。",
    ),
    "生产经营": (
        "{a}与{b}合伙经营的牡丹苗木基地因分红比例产生分歧，账目不清，双方要求清算。",
        "{a}反映邻近{b}的养殖场粪污外渗，流进自家蔬菜大棚，{mu}亩蔬菜长势受损，要求赔偿。",
    ),
    "损害赔偿": (
        "{b}驾驶农用三轮车倒车时撞坏{a}家大门，维修费用约{amt}元，双方对赔偿数额协商未果。",
        "{a}家的羊群啃食了{b}家麦苗约{mu}亩，{b}要求按产量赔偿，双方争执不下。",
    ),
    "山林土地": (
        "{a}与{b}因承包地地头的界石被挪动发生争议，{a}称自家地块被占了约{dist}米宽。",
        "{a}反映{b}在其承包的林地内砍伐杨树{n}棵，双方对林木归属各执一词。",
    ),
    "征地拆迁": ("{a}反映{grp}组道路拓宽工程占用其承包地{mu}亩，补偿款分配方案未公示，对补偿标准有异议。",),
    "环境污染": (
        "{a}反映村西一家板材加工厂夜间生产，噪音大、粉尘多，影响周边{n}户村民休息。",
        "{a}反映有人往村南坑塘倾倒生活垃圾和建筑垃圾，天热后气味难闻，蚊蝇滋生。",
    ),
    "劳动争议": (
        "{a}等{n}名村民在{town}一处建筑工地务工，包工头{b}拖欠工资共计{wage}元，已拖了{m}个月。",
        "{a}在{b}开办的木材加工厂干活时手部受伤，双方就医疗费和误工费赔偿协商未果。",
    ),
    "消费": ("{a}在{b}经营的超市买到过期食用油，要求退货并赔偿，{b}拒绝，双方发生争吵。",),
    "医疗": ("{a}反映其母亲在村卫生室输液后出现不良反应，转院治疗花费{amt}元，要求卫生室承担责任。",),
    "道路交通": (
        "{b}驾驶电动车与{a}骑的自行车在村口相撞，{a}腿部擦伤，双方对责任划分有分歧。",
        "{a}反映村东主路有{n}盏路灯损坏，夜间没有照明，大货车车速快，存在交通安全隐患。",
    ),
    "物业": ("{a}反映小区物业长期不清理楼道杂物，电梯多次故障，部分业主拒交物业费，矛盾突出。",),
    "治安隐患": (
        "{a}反映近期夜间有陌生人在村内游荡，已有{n}户村民的电动车电瓶被盗。",
        "{a}反映村头小卖部常有人聚集打牌赌钱，喧哗到深夜，多次发生口角。",
    ),
    "安全隐患": (
        "{a}反映{grp}组胡同上方一根电线松垂，离地不足两米，下雨时有漏电危险，请求尽快处理。",
        "{a}反映村内一口废弃机井没有封口，井口只盖着木板，附近常有孩子玩耍。",
        "{a}反映{b}家私拉电线给电动车充电，线路老化，存在火灾隐患。",
    ),
    "其它": ("{a}来站咨询城乡居民养老保险补缴政策及办理流程，称此前多次咨询未得到明确答复。",),
}
_GENERIC_TEMPLATE = "{a}反映与{b}之间存在纠纷，请求村里协调处理。"

_SURNAMES = "王李张刘陈杨赵孙周吴徐马朱胡郭何高林郑梁宋韩曹"
_MALE_NAMES = ("建国", "志强", "海军", "国庆", "卫东", "明", "伟", "磊", "涛", "春生", "振华", "庆林", "文杰")
_FEMALE_NAMES = ("秀英", "桂兰", "玉梅", "丽娟", "娜", "静", "敏", "芳", "春梅", "凤霞", "海燕", "晓燕")
_MOBILE_PREFIXES = ("135", "138", "139", "150", "152", "158", "159", "177", "180", "187", "188", "199")
_NUMERALS = "一二三四五六七八九十"
_STREETS = ("幸福路", "建设街", "振兴路", "和谐巷")
_ROLES = {1: ("反映人",), 2: ("申请人", "被申请人"), 3: ("申请人", "被申请人", "第三人")}
_BIRTH_FIRST = dt.date(1950, 1, 1).toordinal()
_BIRTH_LAST = dt.date(2005, 12, 31).toordinal()


def place_name(center_name: str) -> str:
    """The place a center is named after: "吴店村综治站" → "吴店村"."""
    return center_name.removesuffix("综治中心").removesuffix("综治站")


class CaseFactory:
    """Makes plausible intake requests; deterministic for a seeded ``rng``."""

    def __init__(self, *, rng: random.Random, topology: Topology) -> None:
        self._rng = rng
        self._topology = topology

    def make(self, village_code: str) -> intake_pb2.SubmitCaseRequest:
        """A new request for a matter in ``village_code`` (a node of the topology)."""
        rng = self._rng
        category = self._weighted(_CATEGORY_WEIGHTS, DEFAULT_CATEGORIES)
        count = rng.choices((1, 2, 3), weights=(40, 50, 10))[0]
        parties = [self._party(village_code[:6], role) for role in _ROLES[count]]
        urgent = rng.random() < _URGENT_SHARE.get(category, 0.05)
        return intake_pb2.SubmitCaseRequest(
            client_request_id=f"{SIMULATED}{rng.getrandbits(64):016x}",
            division_code=village_code,
            grid=f"第{rng.randint(1, 8)}网格",
            channel=self._weighted(_CHANNEL_WEIGHTS, DEFAULT_CHANNELS),
            category=category,
            response_class=case_pb2.RESPONSE_CLASS_URGENT if urgent else case_pb2.RESPONSE_CLASS_ROUTINE,
            parties=parties,
            location=self._location(village_code),
            description=self._description(category, village_code, parties),
            reporter=f"网格员{self._name(rng.random() < 0.5)}",
        )

    def _weighted(self, weights: dict[str, int], population: tuple[str, ...]) -> str:
        return self._rng.choices(population, weights=[weights.get(p, 1) for p in population])[0]

    def _name(self, male: bool) -> str:
        return self._rng.choice(_SURNAMES) + self._rng.choice(_MALE_NAMES if male else _FEMALE_NAMES)

    def _party(self, county_prefix: str, role: str) -> case_pb2.Party:
        rng = self._rng
        male = rng.random() < 0.5
        party = case_pb2.Party(name=self._name(male), role=role)
        if rng.random() < 0.6:
            born = dt.date.fromordinal(rng.randint(_BIRTH_FIRST, _BIRTH_LAST))
            sex_digit = rng.choice("13579" if male else "02468")
            first17 = f"{county_prefix}{born:%Y%m%d}{rng.randint(0, 99):02d}{sex_digit}"
            party.id_number = first17 + id_check_digit(first17)
        if rng.random() < 0.75:
            party.phone = rng.choice(_MOBILE_PREFIXES) + f"{rng.randint(0, 99_999_999):08d}"
        return party

    def _places(self, code: str) -> list[str]:
        """Place names from the county down to ``code``."""
        chain = [*reversed(self._topology.ancestors(code)), self._topology.node(code)]
        return [place_name(node.name) for node in chain]

    def _location(self, code: str) -> case_pb2.Location:
        rng = self._rng
        places = self._places(code)
        if places[-1].endswith("社区"):
            detail = f"{rng.choice(_STREETS)}{rng.randint(1, 99)}号"
        else:
            detail = f"{_NUMERALS[rng.randint(0, 7)]}组{rng.randint(1, 60)}号"
        return case_pb2.Location(
            address="".join(places) + detail,
            latitude=round(35.2 + rng.uniform(-0.1, 0.1), 6),
            longitude=round(115.4 + rng.uniform(-0.1, 0.1), 6),
        )

    def _description(self, category: str, code: str, parties: list[case_pb2.Party]) -> str:
        rng = self._rng
        template = rng.choice(_TEMPLATES.get(category, (_GENERIC_TEMPLATE,)))
        other = parties[1].name if len(parties) > 1 else self._name(rng.random() < 0.5)
        places = self._places(code)
        text = template.format(
            a=parties[0].name,
            b=other,
            town=places[1] if len(places) > 2 else places[0],
            grp=_NUMERALS[rng.randint(0, 7)],
            n=rng.randint(2, 9),
            m=rng.randint(2, 10),
            age=rng.randint(68, 92),
            mu=rng.randint(1, 8),
            dist=rng.choice(("0.3", "0.4", "0.5", "0.6", "0.8")),
            rent=rng.choice((600, 700, 800, 900, 1000)),
            amt=rng.randrange(8, 400) * 100,
            wage=rng.randrange(20, 150) * 1000,
        )
        return text[:300]


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds``; True when ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def run_simulator(
    *,
    topology: Topology,
    rate_per_s: float,
    stop: asyncio.Event,
    seed: int | None = None,
    channel_for: Callable[[str], grpc.aio.Channel] | None = None,
) -> int:
    """Send generated cases to random village nodes at ``rate_per_s`` on average until ``stop``.

    One channel per village, from ``channel_for(address)`` or ``grpcutil.channel(address)``;
    every channel obtained is closed at the end. A failed call is logged and retried with the
    same ``client_request_id`` (intake is idempotent); a request the node refuses as invalid
    is dropped. Returns the number of cases accepted.
    """
    if rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive")
    villages = [n for n in topology.nodes if n.tier is Tier.VILLAGE]
    if not villages:
        log.warning("拓扑 %s 中没有村级节点，模拟器不发送案件", topology.name)
        return 0
    rng = random.Random(seed)
    factory = CaseFactory(rng=rng, topology=topology)
    make_channel = channel_for or grpcutil.channel
    channels: dict[str, grpc.aio.Channel] = {}
    accepted = 0
    try:
        while not await _stopped_within(stop, rng.expovariate(rate_per_s)):
            village = rng.choice(villages)
            request = factory.make(village.code)
            if village.code not in channels:
                channels[village.code] = make_channel(village.grpc_address)
            stub = intake_pb2_grpc.IntakeStub(channels[village.code])
            while not stop.is_set():
                try:
                    await stub.SubmitCase(request, timeout=CALL_TIMEOUT_S)
                except grpc.aio.AioRpcError as exc:
                    code, rid = exc.code(), request.client_request_id
                    if code == grpc.StatusCode.INVALID_ARGUMENT:
                        log.warning("案件 %s 被 %s 拒收，放弃：%s", rid, village.code, exc.details())
                        break
                    log.warning("提交 %s 失败（%s %s：%s），重试", rid, village.code, code.name, exc.details())
                    if await _stopped_within(stop, RETRY_PAUSE_S):
                        break
                else:
                    accepted += 1
                    break
    finally:
        for ch in channels.values():
            await ch.close(None)
    return accepted
