"""A file ripdep owns: content, mode and owner are compared and corrected; a file at that path that
does not start with ripdep's marker line is someone else's and is never overwritten."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from ripdep.errors import Conflict
from ripdep.host import fs
from ripdep.resources import Action, Change, WriteFile


@dataclass(frozen=True)
class DesiredFile:
    path: Path
    content: bytes
    mode: int
    uid: int = 0
    gid: int = 0
    marker: str | None = None  # first line that proves the file is ripdep's
    masked: bytes | None = None  # what a diff may show instead of content (secrets masked)
    dirs: tuple[tuple[Path, int], ...] = ()  # folders (path, mode) ensured before the write
    group: str = ""  # written with this group's id (looked up when written: it may not exist yet)

    def write(self) -> WriteFile:
        return WriteFile(self.path, self.content, self.mode, self.uid, self.gid, self.dirs, group=self.group)


def has_marker(content: bytes | None, marker: str) -> bool:
    return content is not None and content.decode(errors="replace").startswith(marker)


def refuse_foreign(path: Path, content: bytes | None, marker: str) -> None:
    """A file at ripdep's path without ripdep's marker is someone else's: never overwrite or remove it."""
    if content is not None and not has_marker(content, marker):
        raise Conflict(f"{path} exists and was not written by ripdep",
                       hint="move it away, or pick another app name; ripdep never adopts files it did not create")


def unified_diff(path: Path, old: bytes | None, new: bytes) -> str:
    a = (old or b"").decode(errors="replace").splitlines(keepends=True)
    b = new.decode(errors="replace").splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, f"{path} (live)" if old is not None else "/dev/null", f"{path} (new)"))


def diff_file(rid: str, current: fs.FileState, want: DesiredFile, current_masked: bytes | None = None) -> list[Change]:
    """Pure: the changes that turn `current` into `want` (without their `run`)."""
    if current.content is None:
        return [Change(rid, Action.CREATE, f"create {want.path}", unified_diff(want.path, None, want.masked or want.content))]
    if want.marker:
        refuse_foreign(want.path, current.content, want.marker)
    changes = []
    if current.content != want.content:
        old = current_masked if current_masked is not None else current.content
        changes.append(Change(rid, Action.UPDATE, f"update {want.path}", unified_diff(want.path, old, want.masked or want.content)))
    elif (current.mode, current.uid, current.gid) != (want.mode, want.uid, want.gid):
        changes.append(Change(rid, Action.FIX, f"set mode {want.mode:04o} owner {want.uid}:{want.gid} on {want.path}"))
    return changes


def plan_file(host, rid: str, want: DesiredFile, current_masked=None) -> list[Change]:
    current = host.read_file(want.path)
    changes = diff_file(rid, current, want, current_masked(current) if current_masked and current.content else None)
    return [c.then(want.write()) for c in changes]
