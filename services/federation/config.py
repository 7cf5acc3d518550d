"""Settings of the federation service (prefix ``FQ_FEDERATION_``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class FederationSettings(BaseSettings):
    """How figures are gathered from the subtree."""

    model_config = SettingsConfigDict(env_prefix="FQ_FEDERATION_", extra="ignore")

    sync_batch: int = 256
