"""`portraitist serve`, `portraitist worker`, `portraitist bot`: the multi-user service (docs/service.md)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from portraitist.cli.app import app, console, quiet_libraries
from portraitist.cli.options import setting
from portraitist.service.settings import CONFIG_ENV, Settings, load_settings

log = logging.getLogger("portraitist.service")

_SETTINGS_HELP = (
    "Settings come from PORTRAITIST_* environment variables and a TOML file (--config, a \\[service] table); "
    "every setting is listed in docs/service.md."
)

SERVE_HELP = (
    "Run the portrait service's HTTP API (OpenAPI page at /docs, web page at /) and its reaper.\n\n"
    "With no other settings everything lives under --data-dir: a SQLite database, a SQLite queue and a "
    "local storage folder; add --with-worker to run a job worker beside it, and the whole service runs on "
    "one machine:\n\n"
    "portraitist serve --data-dir ./service --with-worker\n\n"
    'then open http://127.0.0.1:8000, or try it from a shell (a job with "base": "tiny" runs on a '
    "laptop CPU in minutes):\n\n"
    "curl -X POST localhost:8000/v1/users\n\n"
    "For more machines use PostgreSQL, Redis and S3 (PORTRAITIST_DATABASE_URL, _QUEUE_URL, _STORAGE_URL) and "
    "start `portraitist worker --gpu N` wherever the GPUs are. " + _SETTINGS_HELP
)

WORKER_HELP = (
    "Run jobs from the queue, one at a time, on one GPU. Start one worker per GPU, on any machine that "
    "reaches the database, the queue and the storage:\n\n"
    "portraitist worker --gpu 0\n\n"
    "A worker that dies loses nothing: its job's heartbeat goes stale, and another worker resumes it from "
    "the last finished stage and training checkpoint. " + _SETTINGS_HELP
)

BOT_HELP = (
    "Run the Telegram bot, a client of the HTTP API: /start explains, users send 5-20 photos, pick styles "
    "with buttons and get their best portraits as an album.\n\n"
    "PORTRAITIST_TELEGRAM_TOKEN=123:abc PORTRAITIST_API_URL=http://127.0.0.1:8000 portraitist bot\n\n"
    + _SETTINGS_HELP
)

_config_option = typer.Option(None, "--config", help="TOML file with a \\[service] table of settings.")
_data_dir_option = setting(Settings, "data_dir")


def _settings(config: Path | None, **overrides: object) -> Settings:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    if config is not None:
        # children (the worker of --with-worker) read the same file
        os.environ[CONFIG_ENV] = str(config.resolve())
    return load_settings(**overrides)


@app.command("serve", help=SERVE_HELP)
def serve_command(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."
    ),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    data_dir: Path | None = _data_dir_option,
    with_worker: bool = typer.Option(
        False, "--with-worker", help="Also run one job worker (a child process)."
    ),
    config: Path | None = _config_option,
) -> None:
    import uvicorn

    from portraitist.service.api import create_app
    from portraitist.service.connections import server_options

    settings = _settings(config, data_dir=data_dir)
    console.print(
        f"portraitist service on http://{host}:{port} (API docs at /docs); data in {settings.data_dir}"
    )
    # the worker stops with the app's shutdown: uvicorn ends SIGTERM and SIGINT by re-raising the
    # signal once the app has shut down, so nothing after uvicorn.run would get to stop it
    uvicorn.run(create_app(settings, worker=with_worker), **server_options(settings, host, port))


@app.command("worker", help=WORKER_HELP)
def worker_command(
    gpu: int | None = typer.Option(
        None,
        "--gpu",
        help="CUDA device number to run on (default: the CPU or whatever CUDA_VISIBLE_DEVICES allows).",
    ),
    data_dir: Path | None = _data_dir_option,
    config: Path | None = _config_option,
    parent_pid: int | None = typer.Option(
        None, "--parent-pid", hidden=True, help="Stop once this process (serve --with-worker) is gone."
    ),
) -> None:
    from portraitist.service.worker import run_worker

    run_worker(_settings(config, data_dir=data_dir), gpu, parent_pid)


@app.command("bot", help=BOT_HELP)
def bot_command(config: Path | None = _config_option) -> None:
    from portraitist.service.bot import run_bot

    run_bot(_settings(config))
