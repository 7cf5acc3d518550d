"""Settings of the federation service (prefix ``FQ_FEDERATION_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FederationSettings(BaseSettings):
    """How figures are gathered from the subtree, judged, ranked and reported upward."""

    model_config = SettingsConfigDict(env_prefix="FQ_FEDERATION_", extra="ignore")

    sync_batch: int = 256
    stale_after_hours: float = Field(
        default=48.0, gt=0, description="a node whose newest event is older than this is flagged stale"
    )
    ranking_min_assignments: int = Field(default=5, ge=1, description="红黑榜: fewer assignments are not ranked")
    ranking_min_reports: int = Field(default=3, ge=1, description="grid workers: fewer reports are not ranked")
    ranking_list_size: int = Field(default=3, ge=1, description="entries on each of 红榜 and 黑榜")
    warning_recent_days: int = Field(default=7, ge=1)
    warning_baseline_days: int = Field(default=28, ge=7)
    warning_alpha: float = Field(default=0.002, gt=0, lt=1)
    warning_min_count: int = Field(default=5, ge=1)
    warning_min_ratio: float = Field(default=2.0, ge=1)
    feed_key_file: Path | None = Field(
        default=None,
        description="the node's Ed25519 signing key (audit checkpoints; at the county also the provincial feed);"
        " default <data_dir>/<code>-feed-ed25519.pem, made if absent",
    )
    audit_checkpoint_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="how often a node below the county signs its audit chain's head if it moved; 0: never",
    )
    feed_publish_interval_s: float = Field(
        default=3600.0, ge=0, description="how often the county publishes the feeds of last and this month; 0: never"
    )
