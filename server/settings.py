"""Server configuration: defaults < SEGPRUNE_* environment variables < command-line flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from segprune_core.request import Strategy

MiB = 1024 * 1024
DEMO_MODELS = ["demo-qwen2-audio", "demo-whisper-tiny.en"]

# Lists come from the environment either as JSON ('["a","b"]') or comma-separated ("a,b").
StrList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEGPRUNE_", env_nested_delimiter="__", extra="ignore")

    # --- serving ------------------------------------------------------------------------------------
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"
    shutdown_timeout_seconds: float = Field(30.0, gt=0, description="SIGTERM: how long in-flight requests may drain")

    # --- models -------------------------------------------------------------------------------------
    models: StrList = Field(default_factory=lambda: list(DEMO_MODELS))
    served_model_names: StrList = Field(default_factory=list, description="one per model, in order; empty = ids")
    device: str = "auto"
    dtype: str = "auto"
    encoder_batch_size: int = Field(8, ge=1)

    # --- pruning defaults (a request's `pruning` object overrides them) -------------------------------
    default_retention: float = Field(0.25, gt=0, le=1)
    default_strategy: Strategy = Strategy.SEGMENTWISE
    default_segments: int = Field(10, ge=1)
    # Speech recognition does not survive 25% retention (DESIGN.md), so transcription keeps everything.
    transcription_retention: float = Field(1.0, gt=0, le=1)

    # --- limits -------------------------------------------------------------------------------------
    max_audio_seconds: float = Field(600.0, gt=0)
    max_request_bytes: int = Field(25 * MiB, ge=1)
    max_audio_parts: int = Field(8, ge=1)
    max_prompt_chars: int = Field(100_000, ge=1)
    max_tokens_limit: int = Field(4096, ge=1)
    default_max_tokens: int = Field(256, ge=1)
    queue_size: int = Field(16, ge=0, description="requests waiting per model beyond the one running")
    request_timeout_seconds: float = Field(600.0, gt=0)

    # --- security -----------------------------------------------------------------------------------
    api_keys: StrList = Field(default_factory=list)
    api_keys_file: Path | None = None
    protect_health_and_metrics: bool = False
    allow_remote_audio_urls: bool = False
    allowed_audio_url_hosts: StrList = Field(default_factory=list)
    remote_audio_timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("models", "served_model_names", "api_keys", "allowed_audio_url_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.models:
            raise ValueError("at least one model is required")
        if self.served_model_names and len(self.served_model_names) != len(self.models):
            raise ValueError(
                f"served_model_names has {len(self.served_model_names)} names for {len(self.models)} models"
            )
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("default_max_tokens exceeds max_tokens_limit")
        return self

    def served_name(self, index: int) -> str | None:
        return self.served_model_names[index] if self.served_model_names else None

    def all_api_keys(self) -> list[str]:
        """Keys from the setting plus the file (one per line; blank lines and # comments ignored)."""
        keys = list(self.api_keys)
        if self.api_keys_file is not None:
            for line in self.api_keys_file.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    keys.append(line)
        return keys
