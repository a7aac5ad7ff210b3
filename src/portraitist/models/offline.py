"""Whether the Hugging Face hub can be reached, decided once per process, and loading from it.

Offline, the hub libraries retry each file of each model before giving up: half a minute to
minutes per model. So the hub is probed once (HF_HUB_OFFLINE, else a TCP connection with a short
timeout); when it cannot be reached, models load from the local hub cache only and a missing
one fails at once, naming the setting that gives a local model or an offline stand-in.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from portraitist.errors import PortraitistError

T = TypeVar("T")
PROBE_TIMEOUT_S = 2.0
_TRUE = {"1", "on", "yes", "true"}


def hub_endpoint() -> str:
    """The hub's address: huggingface.co, or the mirror HF_ENDPOINT names."""
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


@functools.cache
def hub_unreachable() -> str | None:
    """Why the hub cannot be reached from this process ('HF_HUB_OFFLINE is set', ...); None when it can."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return f"{name} is set"
    url = urlsplit(hub_endpoint())
    host, port = url.hostname or "", url.port or (80 if url.scheme == "http" else 443)
    failure: list[str] = [f"no answer within {PROBE_TIMEOUT_S:g} s"]

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
            failure.clear()
        except OSError as exc:
            failure[0] = str(exc) or type(exc).__name__

    # in a thread, because the name lookup before the connection has no timeout of its own
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S + 0.5)
    return f"{host}:{port} cannot be reached: {failure[0]}" if failure else None


def load_from_hub(load: Callable[[bool], T], spec: str, what: str, instead: str) -> T:
    """`load(local_files_only)` of `spec`, a local folder or a hub id. Offline, a hub id loads from the
    hub cache only, and if the model is not there a PortraitistError says at once `instead` (how to give
    a local model or a stand-in). Online, `load`'s own errors pass through for the caller to explain.
    """
    if Path(spec).expanduser().exists():
        return load(True)
    if spec.startswith((".", "/", "~")):
        raise PortraitistError(f"There is no {what} at {spec}. {instead}")
    offline = hub_unreachable()
    try:
        return load(offline is not None)
    except (OSError, ValueError) as exc:
        if offline is None:
            raise
        raise PortraitistError(
            f"The {what} {spec!r} comes from the Hugging Face hub, which is out of reach ({offline}), "
            f"and it is not in the local hub cache. {instead}"
        ) from exc


def load_pretrained(spec: str, what: str, instead: str, *classes: Any) -> list[Any]:
    """Each class's `from_pretrained(spec)` (a model, its processor, its tokenizer), as `load_from_hub`
    loads."""
    return load_from_hub(
        lambda local_only: [cls.from_pretrained(spec, local_files_only=local_only) for cls in classes],
        spec,
        what,
        instead,
    )
