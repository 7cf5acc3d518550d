"""Settings of the intake service (prefix ``FQ_INTAKE_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# DESIGN §4, in the spirit of GB/T 31000's "9+X": extensible per county.
DEFAULT_CATEGORIES = (
    "婚姻家庭", "邻里", "房屋宅基地", "合同", "生产经营", "损害赔偿", "山林土地", "征地拆迁",
    "环境污染", "劳动争议", "消费", "医疗", "道路交通", "物业", "治安隐患", "安全隐患", "其它",
)  # fmt: skip
DEFAULT_CHANNELS = (
    "网格员上报", "群众来访", "电话热线", "民情收集箱", "视频监控预警", "12345转办", "警调对接",
    "网上信访", "部门移交",
)  # fmt: skip


class IntakeSettings(BaseSettings):
    """What the one window accepts."""

    model_config = SettingsConfigDict(env_prefix="FQ_INTAKE_", extra="ignore")

    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    description_max_chars: int = 2000
    max_parties: int = 20
    text_max_chars: int = 200
    page_size_default: int = 50
    page_size_max: int = 500

    # Response classes and clocks (即办 / 应急 / 攻坚), per county.
    routine_hours: float = 24.0
    urgent_hours: float = 2.0
    reopen_hours: float = 24.0  # the clock of a case sent back after an unsatisfied follow-up
    warn_share: float = Field(default=0.8, gt=0, lt=1, description="warn at this share of the clock")
    clock_scan_interval_s: float = 10.0

    # Attachments (content-addressed, sha256).
    attachment_max_bytes: int = 10 * 1024 * 1024
    attachment_types: tuple[str, ...] = ("image/jpeg", "image/png", "application/pdf")
