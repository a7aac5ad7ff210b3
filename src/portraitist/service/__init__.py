"""The multi-user service: HTTP API, job workers, reaper, web page and Telegram bot (docs/service.md)."""
