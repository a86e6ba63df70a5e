"""Files: atomic writes with explicit owner and mode, and reads that tolerate absence."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileState:
    """What a managed file looks like now (None content = absent)."""

    content: bytes | None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def read_file(path: Path) -> FileState:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return FileState(None)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        return FileState(f.read(), st.st_mode & 0o7777, st.st_uid, st.st_gid)


def write_file(path: Path, content: bytes, *, mode: int, uid: int = 0, gid: int = 0,
               tmp_dir: Path | None = None) -> None:
    """Temp file in the same folder, created with its final mode and owner, fsync, rename, fsync dir.

    A reader (or a crash) sees the old file or the new one, never a partial one, and a secret is
    never readable by anyone else for a moment. `tmp_dir` (same filesystem) keeps the temp file out
    of a folder that another program globs (Caddy imports dotfiles too).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=tmp_dir or path.parent)
    try:
        os.fchmod(fd, mode)
        os.fchown(fd, uid, gid)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path, *, mode: int, uid: int = 0, gid: int = 0) -> bool:
    """Create or correct a directory's mode and owner; True if anything changed."""
    changed = False
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, mode)
        st = os.lstat(path)
        changed = True
    if (st.st_mode & 0o7777) != mode:
        os.chmod(path, mode)
        changed = True
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
        changed = True
    return changed


def remove_file(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def symlink(link: Path, target: Path) -> None:
    """Create or replace a symlink atomically (a temp link renamed over it)."""
    ensure_dir(link.parent, mode=0o755)
    tmp = link.with_name(f".{link.name}.tmp")
    remove_file(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, link)
