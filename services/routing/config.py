"""Settings of the routing service (prefix ``FQ_ROUTING_``); nothing else reads the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RoutingSettings(BaseSettings):
    """Where the containment policy lives and how escalations are received."""

    model_config = SettingsConfigDict(env_prefix="FQ_ROUTING_", extra="ignore")

    # The county's containment rules (小事不出村、大事不出镇); reloaded when the file changes.
    policy_file: Path = Path(__file__).resolve().parents[2] / "deploy" / "policy" / "containment.yaml"
    # The tier above accepts an escalation without an operator (上报自动签收).
    auto_accept_escalations: bool = True
    # The clock of a case the tier above has taken up (即办 24 h), from the acceptance.
    accepted_hours: float = Field(default=24.0, gt=0)
    # The centers' departments and the category → department mapping (吹哨报到, 攻坚专班).
    departments_file: Path = Path(__file__).resolve().parents[2] / "deploy" / "policy" / "departments.yaml"
