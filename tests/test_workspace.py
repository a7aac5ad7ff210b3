"""The workspace's atomic writes: whole files and folders only, with the mode the user's umask gives."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import portraitist
from portraitist.workspace import UMASK, atomic_dir, write_bytes_atomic

WRITE = (
    "import sys; from pathlib import Path; from portraitist.workspace import write_bytes_atomic; "
    "write_bytes_atomic(Path(sys.argv[1]), b'{}')"
)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_an_atomic_write_gets_the_mode_the_umask_gives(tmp_path: Path, umask: int, mode: int) -> None:
    target = tmp_path / "sub" / "scores.json"
    env = {**os.environ, "PYTHONPATH": str(Path(portraitist.__file__).parents[1])}
    subprocess.run(
        [sys.executable, "-c", WRITE, str(target)], env=env, preexec_fn=lambda: os.umask(umask), check=True
    )
    assert target.read_bytes() == b"{}"
    assert stat.S_IMODE(target.stat().st_mode) == mode  # as open() would give, not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["scores.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_bytes_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_an_atomic_folder_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "step-0000010"
    (target / "old").mkdir(parents=True)
    with atomic_dir(target) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "weights").write_bytes(b"new")
        assert not (target / "sub").exists()  # nothing shows before the block ends
    assert [p.name for p in target.iterdir()] == ["sub"] and (
        target / "sub" / "weights"
    ).read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~UMASK  # as mkdir would give, not mkdtemp's 0700
    assert [p.name for p in tmp_path.iterdir()] == ["step-0000010"]


def test_a_failed_folder_leaves_the_old_one_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "dataset"
    (target / "manifest.json").parent.mkdir()
    (target / "manifest.json").write_bytes(b"old")
    with pytest.raises(OSError), atomic_dir(target) as tmp:
        (tmp / "half").write_bytes(b"half")
        raise OSError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"] and [p.name for p in target.iterdir()] == [
        "manifest.json"
    ]


def test_a_folder_that_cannot_be_renamed_in_leaves_the_old_one(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "base"
    target.mkdir()
    (target / "weights").write_bytes(b"old")
    real_replace = os.replace

    def replace(src: object, dst: object) -> None:
        if Path(str(src)).name.endswith(".tmp"):  # the new folder's rename onto `target`
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError), atomic_dir(target) as tmp:
        (tmp / "weights").write_bytes(b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["base"] and (target / "weights").read_bytes() == b"old"
