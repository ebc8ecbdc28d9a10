"""One typed settings model. Every field can be set from the environment with the HYPERSCOPE_ prefix.

Every field is validated when the model is built, so a bad value stops a command before it touches a
store or a port, with one line naming the setting and its flag (`describe_error`).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The command-line flag of each setting that has one: the CLI makes its options from these and the fields'
# descriptions (cli/options.py), and error messages name them.
FLAGS = {
    "data_dir": "--data-dir",
    "host": "--host",
    "port": "--port",
    "scale": "--scale",
    "seed": "--seed",
    "cadence_seconds": "--cadence",
    "backfill_hours": "--hours",
    "live_interval_seconds": "--interval",
    "source": "--source",
    "node_data": "--node-data",
    "info_url": "--info-url",
    "market_info_url": "--market-info-url",
    "catch_up": "--catch-up",
    "watch_list": "--watch-list",
    "leaderboard": "--leaderboard",
    "public_url": "--public-url",
    "store": "--store",
    "files": "--files",
    "workers": "--workers",
    "s3_endpoint_url": "--s3-endpoint-url",
}
MIB = 1024 * 1024
SECRET_SETTINGS = frozenset({"store", "cursor_secret"})  # values never shown in messages


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYPERSCOPE_", extra="ignore", validate_default=True)

    data_dir: Path = Field(Path("data"), description="Folder for the DuckDB store, the key file and checkpoints.")
    db_file: str = Field(
        "hyperscope.duckdb", pattern=r"^[A-Za-z0-9._-]+$", description="DuckDB file name inside data_dir."
    )
    store: str | None = Field(
        None,
        description="Where the data lives: duckdb:///path/file.duckdb (default: the file db_file in data_dir) "
        "or postgresql://user:password@host:port/database (shared by an ingest and any number of API processes).",
    )
    files: str | None = Field(
        None,
        description="Where export "
        "files live: s3://bucket/prefix on an S3-compatible store (download links are pre-signed there); default: "
        "the exports folder in data_dir.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://\S+$",
        description="The S3-compatible service's URL for --files s3://... "
        "(MinIO, Ceph, moto...); default: AWS (region and credentials from the usual AWS_* variables).",
    )
    workers: int = Field(1, ge=1, le=64, description="API server processes `hyperscope serve` runs on one port.")
    host: str = Field("127.0.0.1", min_length=1, description="Address the API server listens on (an IP address).")
    port: int = Field(8000, ge=0, le=65_535, description="Port the API server listens on (0: any free port).")
    source: Literal["simulator", "node", "info", "replay"] = Field(
        "simulator",
        description="Where state updates come from: the embedded simulated market, a Hyperliquid "
        "node's snapshot files (node), a folder of them ingested as fast as possible (replay), or an info "
        "server (info: the node's local one, or the public API over a watch list).",
    )
    node_data: Path | None = Field(
        None,
        description="The node's data folder (~/hl/data) for --source node, or the folder to replay for "
        "--source replay.",
    )
    catch_up: Literal["oldest", "newest"] = Field(
        "oldest",
        description="After downtime, --source node ingests every snapshot it missed (oldest) or "
        "skips to the newest one.",
    )
    info_url: str = Field(
        "http://localhost:3001/info",
        description="Info server for --source info: the node's local one "
        "(--serve-info) or https://api.hyperliquid.xyz/info with a watch list.",
    )
    market_info_url: str | None = Field(
        "https://api.hyperliquid.xyz/info",
        description="Where --source node fetches mark prices, funding and "
        "premiums (metaAndAssetCtxs); unset: oracle prices only.",
    )
    node_orders: Literal["auto", "off"] = Field(
        "auto",
        description="Open orders for --source node (order snapshots): recorded L4 files, the node's "
        "local info server (--info-url on this machine, fileSnapshot l4Snapshots) or hl_node; off: none.",
    )
    hl_node: Path | None = Field(
        None,
        description="The node's hl-node binary: --source node then reads each snapshot's own order books "
        "with its compute-l4-snapshots (when no L4 file or local info server serves them).",
    )
    hl_chain: Literal["Mainnet", "Testnet"] = Field("Mainnet", description="The chain hl_node is run for.")
    info_weight_per_minute: int = Field(
        1200,
        ge=1,
        le=1_000_000,
        description="Request weight per minute the info client allows itself (the public API grants 1200 per IP).",
    )
    watch_list: Path | None = Field(
        None,
        description="Addresses to follow with the public API (--source info): a text file, one 0x address "
        "per line, or a stats leaderboard JSON file.",
    )
    leaderboard: Path | None = Field(
        None,
        description="A stats leaderboard JSON file: all-time PnL and volume of wallets when first seen by "
        "a node source (otherwise they count from the first snapshot hyperscope reads).",
    )
    scale: Literal["tiny", "small", "bench"] = Field("small", description="Simulator scale: tiny, small or bench.")
    seed: int = Field(7, ge=0, le=2**32 - 1, description="Simulator seed; the same seed gives the same market.")
    cadence_seconds: int = Field(
        900, ge=60, le=86_400, description="Market time between two simulated state updates (seconds)."
    )
    backfill_hours: float = Field(
        26.0,
        ge=0,
        le=24 * 90,
        description="History generated before going live on an empty store (0-2160 hours; "
        "the default holds a state update more than 24 h old, so every 24 h comparison is filled at once).",
    )
    live_interval_seconds: float = Field(
        5.0, ge=0.1, le=86_400, description="Wall-clock seconds between live state updates."
    )
    rate_limit_per_minute: int = Field(
        600, ge=1, le=1_000_000, description="Default requests per minute for a new API key."
    )
    exports_per_minute: int = Field(
        30, ge=1, le=10_000, description="Export files one API key may have built per minute (reused files are free)."
    )
    exports_max_mib: int = Field(
        1024, ge=1, le=1_048_576, description="Most disk the export folder may hold (MiB); past it exports answer 503."
    )
    cache_max_mib: int = Field(
        256, ge=0, le=65_536, description="Most memory the response cache may hold (MiB); 0 turns it off."
    )
    cursor_ttl_seconds: int = Field(86_400, ge=1, le=30 * 86_400, description="How long a nextCursor stays valid.")
    cursor_secret: str | None = Field(
        None,
        min_length=16,
        description="HMAC secret for cursors and links; generated and kept in the store when unset.",
    )
    stale_after_seconds: float | None = Field(
        None, gt=0, description="Lag past which /health answers 503 'stale'; default 3 x the expected update interval."
    )
    ingest_retries: int = Field(
        6,
        ge=0,
        le=100,
        description="Retries with backoff (1 s doubling to 60 s) of a failing state update before "
        "ingest is declared failed and the process exits.",
    )
    duckdb_memory_mib: int | None = Field(
        None,
        ge=64,
        le=1_048_576,
        description="DuckDB's memory limit (MiB); its block cache stays under it. "
        "Default: 256 at tiny and small scale, 1024 at bench scale.",
    )
    duckdb_threads: int = Field(2, ge=1, le=256, description="Threads DuckDB may use.")
    retention_metrics_days: float = Field(
        30, gt=0, le=36_500, description="Metric rows (every series, markets) older than this are deleted."
    )
    retention_full_resolution_hours: float = Field(
        1,
        ge=0,
        le=876_000,
        description="Metric rows older than this keep one state update per "
        "retention_thin_minutes; newer ones keep every state update.",
    )
    retention_thin_minutes: float = Field(
        15, gt=0, le=1_440, description="Spacing of the metric rows kept past retention_full_resolution_hours."
    )
    retention_positions_days: float = Field(
        1, gt=0, le=36_500, description="Closed position lifecycles whose close time is older than this are deleted."
    )
    retention_fills_hours: float = Field(2, gt=0, le=876_000, description="Fills older than this are deleted.")
    retention_orders_days: float = Field(
        7, gt=0, le=36_500, description="5-minute order snapshots older than this are deleted (and refused)."
    )
    retention_funding_days: float = Field(
        400,
        gt=0,
        le=36_500,
        description="Hourly funding rows (the Coin Metrics-style series) older than this are deleted.",
    )
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Absolute base URL of the API as clients "
        "reach it (e.g. https://hs.example.com); download links start with it. Default: the request's own host.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names (besides localhost, 127.0.0.1 and ::1) whose Host header may "
        "start download links and next_page_url when public_url is unset; any other Host gets the server's own "
        "address. Comma-separated in HYPERSCOPE_ALLOWED_HOSTS.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Python logging level.")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = [h for h in value.split(",") if h.strip()]
        if isinstance(value, list):
            for h in value:
                if not isinstance(h, str) or not re.fullmatch(r"[A-Za-z0-9.:\-]+", h.strip()):
                    raise ValueError(f"not a host name: {h!r}")
            return [h.strip().lower() for h in value]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("files")
    @classmethod
    def _files_url(cls, value: str | None) -> str | None:
        bucket, prefix = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", r"[A-Za-z0-9._/-]*[A-Za-z0-9._-][A-Za-z0-9._/-]*"
        if value is not None and not re.fullmatch(f"s3://{bucket}/{prefix}", value):
            raise ValueError(
                f"expected s3://bucket/prefix (a bucket name of 3-63 lowercase letters, digits, dots "
                f"or dashes, and a prefix only hyperscope writes to), got {value!r}"
            )
        return value

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("postgresql://", "postgres://")):
            from hyperscope.dsn import check_postgres_url

            check_postgres_url(value)
            return value
        if value.startswith("duckdb://") and len(value) > len("duckdb://"):
            return value
        from hyperscope.dsn import redact

        raise ValueError(
            f"expected duckdb:///path/file.duckdb or postgresql://user@host/database, got {redact(value)!r}"
        )

    @field_validator("host")
    @classmethod
    def _address(cls, value: str) -> str:
        if value == "localhost":
            return value
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"expected an IP address such as 127.0.0.1 or 0.0.0.0, got {value!r}") from None
        return value

    @field_validator("node_data")
    @classmethod
    def _node_folder(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        source = info.data.get("source")
        if source in ("node", "replay") and value is None:
            raise ValueError(f"--source {source} needs the node's data folder: --node-data DIR (or DIR as argument)")
        return value

    @property
    def duckdb_memory(self) -> int:
        """DuckDB keeps every block it reads cached up to this limit; without one, a long run's memory
        grows with its store (measured: RSS followed the file from 0.5 to 1.2 GB in an hour of live)."""
        if self.duckdb_memory_mib is not None:
            return self.duckdb_memory_mib
        return 1024 if self.scale == "bench" else 256

    @property
    def db_path(self) -> Path:
        """The DuckDB file (the default store, or the one --store duckdb:///... names)."""
        if self.store is not None and self.store.startswith("duckdb://"):
            return Path(self.store.removeprefix("duckdb://"))
        return self.data_dir / self.db_file

    @property
    def postgres(self) -> bool:
        return self.store is not None and self.store.startswith(("postgresql://", "postgres://"))

    @property
    def keys_path(self) -> Path:
        return self.data_dir / "keys.sqlite3"

    @property
    def checkpoint_path(self) -> Path:
        return self.data_dir / "simulator.npz"

    @property
    def source_checkpoint_path(self) -> Path:
        return self.data_dir / "source.npz"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"


def describe_error(error: ValidationError) -> str:
    """One line for the first invalid setting: its name, its flag, what was wrong and the value given."""
    first = error.errors()[0]
    name = ".".join(map(str, first["loc"])) or "settings"
    flag = FLAGS.get(name)
    label = f"{flag} ({name})" if flag else f"{name} (HYPERSCOPE_{name.upper()})"
    if first["type"] == "value_error":  # our own validators name the value themselves
        return f"{label}: {str(first['msg']).removeprefix('Value error, ')}"
    if name in SECRET_SETTINGS:  # never echo a value that may hold a secret
        return f"{label}: {first['msg']}"
    return f"{label}: {first['msg']} (got {first.get('input')!r})"
