"""Artefacts (photos, job workspaces, results) in one fsspec store: a folder, s3://, memory://.

    users/<user>/photos/<photo><suffix>                 uploaded photos, as sent
    users/<user>/jobs/<job>/workspace/...              a running job's workspace (checkpoints, run.json)
    users/<user>/jobs/<job>/results/<attempt>/...      what the attempt that succeeded published

Keys are built from generated ids and the pipeline's own file names only: a name from an
upload never becomes part of a path. Results live under their attempt's number, so an
attempt that was taken over can upload what it likes without touching the files the job
row points at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from portraitist.errors import PortraitistError
from portraitist.workspace import atomic_path

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
CHUNK = 1 << 20


def user_prefix(user_id: str) -> str:
    return f"users/{user_id}"


def photo_key(user_id: str, photo_id: str, suffix: str) -> str:
    return f"{user_prefix(user_id)}/photos/{photo_id}{suffix}"


def job_prefix(user_id: str, job_id: str) -> str:
    return f"{user_prefix(user_id)}/jobs/{job_id}"


def workspace_prefix(user_id: str, job_id: str) -> str:
    return f"{job_prefix(user_id, job_id)}/workspace"


def results_prefix(user_id: str, job_id: str, attempt: int) -> str:
    return f"{job_prefix(user_id, job_id)}/results/{attempt}"


def check_key(key: str) -> str:
    """A relative key of plain names (no '..', no leading '/', no hidden parts), or ValueError."""
    if not _SAFE_KEY.match(key) or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"unsafe storage key {key!r}")
    return key


@dataclass(frozen=True)
class FileState:
    """What was last uploaded of a local file, to upload only what changed."""

    size: int
    mtime_ns: int


class Storage:
    """One store, addressed by relative keys under its root URL."""

    def __init__(self, url: str, options: dict[str, Any] | None = None):
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **(options or {}))
        except (ImportError, ValueError) as exc:
            raise PortraitistError(f"Cannot open the storage {url!r}: {exc}. Check storage_url.") from exc
        self.root = root.rstrip("/")
        self.local = "file" in self.fs.protocol or "local" in self.fs.protocol
        self.url = url

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def put_file(self, local: Path, key: str) -> None:
        """Upload one file; a reader never sees it half-written (S3 puts are whole, local writes rename)."""
        path = self._path(key)
        if self.local:
            with atomic_path(Path(path)) as tmp:
                shutil.copyfile(local, tmp)
        else:
            self.fs.put_file(str(local), path)

    def get_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self.fs.get_file(self._path(key), str(local))

    def exists(self, key: str) -> bool:
        path = self._path(key)
        # object stores' clients cache listings; another process (a worker) may have written since
        self.fs.invalidate_cache(path)
        return self.fs.exists(path)

    def size(self, key: str) -> int:
        return int(self.fs.size(self._path(key)))

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        """The file's bytes in chunks, for streaming a download without loading it whole."""
        with self.fs.open(self._path(key), "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def list(self, prefix: str) -> list[str]:
        """Keys of all files under `prefix`, relative to it, sorted."""
        base = self.fs._strip_protocol(self._path(prefix)).rstrip("/")
        self.fs.invalidate_cache(base)
        found = []
        for path in self.fs.find(base):
            relative = path[len(base) + 1 :]
            # a local writer's temporary file (workspace.atomic_path's) is not a file yet
            if not any(part.startswith(".") for part in relative.split("/")):
                found.append(relative)
        return sorted(found)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm_file(path)

    def delete_prefix(self, prefix: str) -> None:
        """Remove everything under `prefix` (a user's or a job's folder)."""
        path = self._path(prefix)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def download_dir(self, prefix: str, local: Path) -> dict[str, FileState]:
        """Copy every file under `prefix` into `local`; returns what is now there, as uploaded state."""
        states = {}
        for relative in self.list(prefix):
            target = local / relative
            self.get_file(f"{prefix}/{relative}", target)
            stat = target.stat()
            states[relative] = FileState(stat.st_size, stat.st_mtime_ns)
        return states

    def sync_dir(self, local: Path, prefix: str, uploaded: dict[str, FileState]) -> dict[str, FileState]:
        """Make `prefix` mirror `local`, sending only files changed since `uploaded`.

        Files go oldest first, so a file its writer finishes last (a checkpoint's marker, run.json)
        also lands last; files gone locally are deleted only after that. Hidden files (the
        temporaries of atomic writes) are skipped. Returns the new uploaded state.
        """
        current = {}
        for path in local.rglob("*"):
            relative = path.relative_to(local).as_posix()
            if path.is_file() and not any(part.startswith(".") for part in relative.split("/")):
                stat = path.stat()
                current[relative] = (stat.st_mtime_ns, FileState(stat.st_size, stat.st_mtime_ns))
        state = {}
        for relative, (_, file_state) in sorted(current.items(), key=lambda item: item[1][0]):
            if uploaded.get(relative) != file_state:
                self.put_file(local / relative, f"{prefix}/{relative}")
            state[relative] = file_state
        for relative in sorted(set(uploaded) - set(current)):
            self.delete(f"{prefix}/{relative}")
        return state
