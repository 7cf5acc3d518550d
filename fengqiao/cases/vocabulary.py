"""The words a case is filed under: its categories (案件类别) and the channels it comes by (来源渠道).

Categories follow GB/T 31000's "9+X": the kinds every county shares, to which a county adds its
own (e.g. 网络诈骗) in the node setting ``FQ_CATEGORIES``; channels likewise in ``FQ_CHANNELS``.
Intake refuses a case filed under a word the node does not know, routing's containment policy
refuses a rule naming an unknown category, and Open311 offers the categories as its services.
"""

from __future__ import annotations

import dataclasses

from fengqiao.errors import InvalidArgument

DEFAULT_CATEGORIES = (
    "婚姻家庭", "邻里", "房屋宅基地", "合同", "生产经营", "损害赔偿", "山林土地", "征地拆迁",
    "环境污染", "劳动争议", "消费", "医疗", "道路交通", "物业", "治安隐患", "安全隐患", "其它",
)  # fmt: skip
DEFAULT_CHANNELS = (
    "网格员上报", "群众来访", "电话热线", "民情收集箱", "视频监控预警", "12345转办", "警调对接",
    "网上信访", "部门移交",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The categories and channels one node's cases may be filed under."""

    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    channels: tuple[str, ...] = DEFAULT_CHANNELS

    def check_category(self, category: str) -> None:
        """Refuse a missing or unknown category with ``InvalidArgument``."""
        if not category:
            raise InvalidArgument("category", "案件类别必填")
        if category not in self.categories:
            raise InvalidArgument("category", f"未知的案件类别“{category}”")

    def check_channel(self, channel: str) -> None:
        """Refuse a missing or unknown channel with ``InvalidArgument``."""
        if not channel:
            raise InvalidArgument("channel", "来源渠道必填")
        if channel not in self.channels:
            raise InvalidArgument("channel", f"未知的来源渠道“{channel}”")
