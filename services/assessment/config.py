"""Settings of the assessment service (prefix ``FQ_ASSESSMENT_``); nothing else reads the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AssessmentSettings(BaseSettings):
    """Where the risk-level rule lives and how the subtree's projects are synced."""

    model_config = SettingsConfigDict(env_prefix="FQ_ASSESSMENT_", extra="ignore")

    # The county's rule for the risk level of an assessment; reloaded when the file changes.
    policy_file: Path = Path(__file__).resolve().parents[2] / "deploy" / "policy" / "assessment.yaml"
    # Project events applied per transaction by the subtree sync.
    sync_batch: int = Field(default=256, ge=1, le=10_000)
    # Largest page of ListProjects.
    max_page_size: int = Field(default=500, ge=1)
