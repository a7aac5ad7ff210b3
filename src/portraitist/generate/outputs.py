"""Where sampled images go, each with a JSON record of how it was made (docs/generate.md).

A workspace keeps them in outputs/images/ + outputs/generations.jsonl (swaps in
outputs/swaps/ + outputs/swaps.jsonl); without one, `--out DIR` holds the images and the log.
A file's name carries the seed and a hash of the settings, so rerunning the same request
rewrites the same files and records instead of piling up copies.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from portraitist.workspace import Workspace, write_bytes_atomic

# record fields that differ between the images of one request, so they stay out of the name's hash
_PER_IMAGE = ("file", "seed", "rank")


@dataclass(frozen=True)
class OutputFolder:
    root: Path  # records name files relative to this
    images: Path
    log: Path

    @classmethod
    def in_workspace(cls, workspace: Workspace, images: str, log: str) -> OutputFolder:
        return cls(workspace.root, workspace.outputs_dir / images, workspace.outputs_dir / log)

    @classmethod
    def plain(cls, out: Path, log: str) -> OutputFolder:
        out = out.expanduser().resolve()
        return cls(out, out, out / log)

    def name(self, stem: str, record: dict[str, Any]) -> Path:
        """`<stem>-s<seed>-<hash of the other settings>.png`."""
        settings = {k: v for k, v in record.items() if k not in _PER_IMAGE}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return self.images / f"{stem}-s{record['seed']}-{digest}.png"

    def save(self, stem: str, items: list[tuple[Image.Image, dict[str, Any]]]) -> list[Path]:
        """Write the images and add (or replace) their records in the log."""
        paths, records = [], []
        for image, record in items:
            path = self.name(stem, record)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            write_bytes_atomic(path, buffer.getvalue())
            paths.append(path)
            records.append({"file": path.relative_to(self.root).as_posix(), **record})
        new_files = {r["file"] for r in records}
        self._write([r for r in self.read() if r.get("file") not in new_files] + records)
        return paths

    def remove(self, files: Iterable[str]) -> None:
        """Delete these images (named as their records name them) and their records."""
        gone = set(files)
        if not gone:
            return
        for file in gone:
            (self.root / file).unlink(missing_ok=True)
        self._write([r for r in self.read() if r.get("file") not in gone])

    def _write(self, records: list[dict[str, Any]]) -> None:
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
        write_bytes_atomic(self.log, "".join(lines).encode())

    def read(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
