"""Settings of the intake service (prefix ``FQ_INTAKE_``).

The categories and channels it accepts are the node's (``FQ_CATEGORIES``, ``FQ_CHANNELS`` in
``fengqiao/settings.py``), for the whole node must agree on them; so are the lengths of text
fields (``FQ_LIMIT_*`` in ``fengqiao/limits.py``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IntakeSettings(BaseSettings):
    """What the one window accepts."""

    model_config = SettingsConfigDict(env_prefix="FQ_INTAKE_", extra="ignore")

    max_parties: int = 20
    page_size_default: int = 50
    page_size_max: int = 500

    # Response classes and clocks (即办 / 应急 / 攻坚), per county: hours, or working days on the
    # county's calendar where ``*_working_days`` is set (0: count hours).
    routine_hours: float = 24.0
    routine_working_days: int = Field(default=0, ge=0, description="即办 in working days (12345: 咨询 3, 投诉 13)")
    urgent_hours: float = 2.0
    reopen_hours: float = 24.0  # the clock of a case sent back after an unsatisfied follow-up
    reopen_working_days: int = Field(default=0, ge=0)
    calendar_file: Path = Path(__file__).resolve().parents[2] / "deploy" / "policy" / "calendar.yaml"
    warn_share: float = Field(default=0.8, gt=0, lt=1, description="warn at this share of the clock")
    clock_scan_interval_s: float = 10.0

    # Attachments (content-addressed, sha256).
    attachment_max_bytes: int = 10 * 1024 * 1024
    attachment_types: tuple[str, ...] = ("image/jpeg", "image/png", "application/pdf")
