"""Service settings: environment variables `PORTRAITIST_*` over a TOML file over defaults.

With nothing set, everything lives under one data folder: a SQLite database, a SQLite queue
and a local storage folder, so `portraitist serve --with-worker` runs on a laptop. For more
machines, point `database_url` at PostgreSQL, `queue_url` at Redis and `storage_url` at S3
(docs/service.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from portraitist.config import validation_problems
from portraitist.errors import PortraitistError

CONFIG_ENV = "PORTRAITIST_CONFIG"
ENV_PREFIX = "PORTRAITIST_"
# portraitist.models.loading.DEFAULT_BASE, spelled out so that the bot and the API's settings do
# not import torch (tests/service check that the two agree)
DEFAULT_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "portraitist"


class Settings(BaseSettings):
    """Everything the API, the workers, the reaper and the bot read; one description per field."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    # where things live
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Folder for the default SQLite database, SQLite queue and local storage.",
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy URL of the job database; empty: sqlite file DATA_DIR/portraitist.db. "
        "Use postgresql+psycopg://... when workers run on other machines.",
    )
    queue_url: str = Field(
        "",
        description="Huey queue: empty or sqlite:///FILE for SqliteHuey (DATA_DIR/queue.db), "
        "redis://HOST:PORT/DB for RedisHuey.",
    )
    queue_name: str = Field(
        "portraitist", description="Queue name; RedisHuey prefixes its Redis keys with it."
    )
    storage_url: str = Field(
        "",
        description="fsspec URL of the artefact store: empty for DATA_DIR/storage, a folder, "
        "s3://BUCKET/PREFIX or memory://PREFIX.",
    )
    scratch_dir: Path | None = Field(
        None,
        description="Folder for a running job's local copy of its photos and workspace and for uploads being "
        "checked; empty: DATA_DIR/scratch. What a dead process left there goes at the next reaper pass.",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description='Extra fsspec options for the store (JSON in env), e.g. {"endpoint_url": '
        '"http://minio:9000"}.',
    )
    # accounts
    signup: Literal["open", "admin"] = Field(
        "open", description="Who may create users: anyone (open) or only holders of the admin token (admin)."
    )
    admin_token: str = Field(
        "",
        description="Bearer token that may create users when signup is admin; a sign-up carrying it is "
        "under no per-address limit (the bot sends it).",
    )
    # abuse limits (docs/service.md: what a reverse proxy in front should add)
    signups_per_hour: int = Field(
        10, ge=1, description="Most sign-ups from one client address in any hour (429 beyond)."
    )
    requests_per_minute: int = Field(
        300, ge=1, description="Most API requests of one user in any minute, per API process (429 beyond)."
    )
    max_json_bytes: int = Field(
        64 * 2**10, ge=1, description="Largest request body other than an upload, in bytes (413 beyond)."
    )
    idle_timeout_s: float = Field(
        30.0, gt=0, description="How long an idle keep-alive connection stays open between requests."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Longest time a connection may take to send a request's headers (from connecting, or "
        "from its first byte on a kept-alive connection); slower ones are closed.",
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for the next part of a request body (408 beyond)."
    )
    # uploads
    photo_checks: int = Field(
        2,
        ge=1,
        description="Uploaded photos decoded and checked at once by one API process; each holds one "
        "decoded photo in memory, so this bounds the memory uploads can take.",
    )
    max_photos: int = Field(30, ge=1, description="Most photos one user may keep stored at a time.")
    max_upload_files: int = Field(30, ge=1, description="Most files one upload request may carry.")
    max_photo_bytes: int = Field(20 * 2**20, ge=1, description="Largest photo file accepted, in bytes.")
    max_photo_pixels: int = Field(
        50_000_000, ge=1, description="Largest photo accepted, in pixels (width x height)."
    )
    # jobs
    allowed_bases: list[str] = Field(
        default_factory=lambda: [DEFAULT_BASE, "tiny", "tiny-xl"],
        description="Base models a job may ask for "
        "(hub ids or presets, e.g. stabilityai/stable-diffusion-xl-base-1.0 "
        "where the GPUs have the memory for SDXL); never a path a user chooses.",
    )
    job_defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="RunConfig fields every job starts from, set by the operator (a [service.job_defaults] "
        'table), e.g. local model paths or {prepare = {clip_model = "tiny"}} offline; a job\'s own '
        "fields win.",
    )
    max_jobs_per_user: int = Field(2, ge=1, description="Most queued or running jobs one user may have.")
    max_jobs_per_address: int = Field(
        4,
        ge=1,
        description="Most queued or running jobs of all the users who signed up from one client address "
        "(signing up again does not make room).",
    )
    max_images: int = Field(64, ge=1, description="Largest n (images generated) a job may ask for.")
    max_steps: int = Field(2000, ge=1, description="Most training steps a job may ask for.")
    # reliability
    heartbeat_interval_s: float = Field(
        5.0, gt=0, description="How often a worker confirms it still runs its job."
    )
    stale_after_s: float = Field(
        60.0,
        gt=0,
        description="A running job whose heartbeat is older than this is taken over by another attempt.",
    )
    max_attempts: int = Field(
        3, ge=1, description="Attempts per job (first run + takeovers) before it is failed."
    )
    reaper_interval_s: float = Field(
        10.0, gt=0, description="How often the reaper looks for stale and lost jobs."
    )
    progress_interval_s: float = Field(
        0.5,
        gt=0,
        description="Least time between two progress writes of one job (stage changes always write).",
    )
    sync_interval_s: float = Field(
        30.0,
        ge=0,
        description="Least time between two uploads of a running job's workspace (checkpoints) to storage.",
    )
    poll_interval_s: float = Field(
        1.0, gt=0, description="Longest wait of an idle worker between queue polls."
    )
    # telegram bot
    telegram_token: str = Field("", description="The bot's token from @BotFather (for `portraitist bot`).")
    telegram_api_url: str = Field(
        "https://api.telegram.org", description="Bot API server; tests point it at a fake one on loopback."
    )
    api_url: str = Field(
        "http://127.0.0.1:8000", description="Where the bot reaches the portraitist HTTP API."
    )
    bot_job: dict[str, Any] = Field(
        default_factory=dict,
        description='Fields the bot adds to every job it starts (JSON in env), e.g. {"base": "tiny", '
        '"n": 4}.',
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit arguments (CLI flags) win over the environment, which wins over the TOML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = os.environ.get(CONFIG_ENV)
        if toml:
            sources.append(
                TomlConfigSettingsSource(settings_cls, toml_file=Path(toml), toml_table_header=("service",))
            )
        return tuple(sources)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        """Empty URLs mean 'under data_dir', so one flag moves everything."""
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'portraitist.db'}"
        if not self.queue_url:
            self.queue_url = f"sqlite:///{self.data_dir / 'queue.db'}"
        if not self.scratch_dir:
            self.scratch_dir = self.data_dir / "scratch"
        if not self.storage_url:
            self.storage_url = str(self.data_dir / "storage")
        if self.stale_after_s <= 2 * self.heartbeat_interval_s:
            raise ValueError(
                "stale_after_s must be more than twice heartbeat_interval_s, or live jobs look stale"
            )
        if self.signup == "admin" and not self.admin_token:
            raise ValueError("signup = admin needs an admin_token")
        return self

    def job_config(self, fields: dict[str, Any]) -> dict[str, Any]:
        """RunConfig fields of a job: the operator's job_defaults, then what the user asked for."""
        return {**self.job_defaults, **fields}

    def as_environment(self) -> dict[str, str]:
        """These settings as PORTRAITIST_* variables, for child processes (the worker of `serve`)."""
        env = {}
        for name, value in self.model_dump(mode="json").items():
            env[ENV_PREFIX + name.upper()] = value if isinstance(value, str) else json.dumps(value)
        return env


def load_settings(**overrides: Any) -> Settings:
    """Settings from defaults, the TOML file named by $PORTRAITIST_CONFIG, the environment, then overrides.

    Overrides that are None (CLI options not given) are ignored.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise PortraitistError(f"Invalid service settings: {validation_problems(exc)}") from exc
