"""Scratch folders: a running attempt's copy of a user's photos and workspace, an upload being checked.

They live under the service's scratch_dir (DATA_DIR/scratch), never in the system's /tmp, and
each is named for the host and process that made it. A process removes its own on every way
out it lives through (success, failure, cancel); what a process that died left (kill -9, a
power cut) is removed by `sweep`, which every reaper pass runs: a folder whose process is gone
from this host is nobody's.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

# hostnames never contain '+', so the name splits back into host, pid and purpose
_SEP = "+"


def _owner_prefix() -> str:
    return f"{socket.gethostname()}{_SEP}{os.getpid()}{_SEP}"


@contextmanager
def scratch_folder(root: Path, purpose: str) -> Iterator[Path]:
    """A new empty folder under `root`, removed when the block ends however it ends."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{_owner_prefix()}{purpose}{_SEP}", dir=root) as path:
        yield Path(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep(root: Path) -> list[Path]:
    """Remove the folders under `root` whose process on this host is gone; returns what went."""
    if not root.is_dir():
        return []
    host = socket.gethostname()
    removed = []
    for entry in root.iterdir():
        owner_host, _, rest = entry.name.partition(_SEP)
        pid = rest.partition(_SEP)[0]
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
        log.info("removed %s, left by process %s that is gone", entry, pid)
    return removed
