"""One typed settings model. Every field can be set from the environment with the HYPERSCOPE_ prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYPERSCOPE_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Folder for the DuckDB store and simulator checkpoint.")
    db_file: str = Field("hyperscope.duckdb", description="DuckDB file name inside data_dir.")
    host: str = Field("127.0.0.1", description="Address the API server listens on.")
    port: int = Field(8000, description="Port the API server listens on.")
    scale: str = Field("small", description="Simulator scale: tiny, small (default) or bench.")
    seed: int = Field(7, description="Simulator seed; the same seed gives the same market.")
    cadence_seconds: int = Field(900, description="Market time between two state updates (seconds).")
    backfill_hours: float = Field(24.0, description="History generated before going live on an empty store.")
    live_interval_seconds: float = Field(5.0, description="Wall-clock seconds between live state updates.")
    rate_limit_per_minute: int = Field(600, description="Default requests per minute for a new API key.")
    cursor_ttl_seconds: int = Field(86_400, description="How long a nextCursor stays valid.")
    cursor_secret: str | None = Field(
        None, description="HMAC secret for cursors and links; generated and kept in the store when unset."
    )
    log_level: str = Field("INFO", description="Python logging level.")

    @property
    def db_path(self) -> Path:
        return self.data_dir / self.db_file

    @property
    def checkpoint_path(self) -> Path:
        return self.data_dir / "simulator.npz"
