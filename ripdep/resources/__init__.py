"""Host resources. Each module plans one kind: it reads the host (through `ctx.host`), compares with
what the manifest wants (a pure diff), and returns Changes as values: what to do is data (`ops`),
carried out by one dispatcher (ripdep/apply.py). An empty list means unchanged. Resource ids look
like `kind:name` and appear unchanged in logs, JSON and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import NamedTuple


class Action(str, Enum):
    """What a change does to its resource (shown in output and JSON as its value)."""

    CREATE = "create"
    UPDATE = "update"
    FIX = "fix"
    REMOVE = "remove"
    ENABLE = "enable"
    DISABLE = "disable"
    DAEMON_RELOAD = "daemon-reload"
    START = "start"
    RESTART = "restart"
    STOP = "stop"
    RELOAD = "reload"
    ALLOCATE = "allocate"
    CLAIM = "claim"
    RESTORE = "restore"
    ROTATE = "rotate"
    RUN = "run"
    SWITCH = "switch"

    def __str__(self) -> str:
        return self.value


# --- what a change does: plain values, carried out in order by apply.apply_op -------------------
# NamedTuples, not dataclasses: every command that plans imports all of them, and a dataclass costs
# ~0.5 ms to define (measured: +10 ms on a no-change deploy), a NamedTuple a tenth of that.

class WriteFile(NamedTuple):
    path: Path
    content: bytes  # may hold secrets: never in a repr or a log (see __repr__)
    mode: int
    uid: int = 0
    gid: int = 0
    dirs: tuple[tuple[Path, int], ...] = ()  # folders (path, mode) ensured first, in order
    tmp_dir: Path | None = None
    group: str = ""  # a group whose id is looked up when written (the app's, created earlier in the run)

    def __repr__(self) -> str:
        return f"WriteFile({self.path}, {len(self.content)} bytes, mode={self.mode:04o})"


class EnsureDir(NamedTuple):
    path: Path
    mode: int


class PgHba(NamedTuple):
    """Write pg_hba.conf (keeping its mode and owner), reload PostgreSQL, and put the previous file
    back and reload again if PostgreSQL reports errors in it."""

    path: Path
    content: bytes
    previous: object  # fs.FileState of the file as it was


class RemoveFile(NamedTuple):
    path: Path


class Symlink(NamedTuple):
    link: Path
    target: Path


class Systemctl(NamedTuple):
    args: tuple[str, ...]
    quiet: bool = False  # "already so" is fine


class Sql(NamedTuple):
    statements: tuple = ()  # psycopg.sql objects, or text with psql variables (:"app", :'marker')
    transaction: bool = False
    variables: tuple[tuple[str, str], ...] = ()  # psql variables of text statements (never secrets)


class RemoveTree(NamedTuple):
    """A folder and everything below it (links are removed, never followed)."""

    path: Path


class DeleteUser(NamedTuple):
    name: str


class CreateUser(NamedTuple):
    name: str
    gecos: str
    home: str


class ModifyUser(NamedTuple):
    name: str
    gecos: str
    home: str


class InstallCode(NamedTuple):
    app: str
    source: Path
    digest: str


class InstallTree(NamedTuple):
    """Build a release's code tree from the source (hard links from the live tree where the content
    is the same); nothing when it is already built."""

    app: str
    tree: str
    source: Path
    scan: object  # releases.Scan
    link_from: str | None


class SwitchCode(NamedTuple):
    """Point the app's code link at a tree, with one rename."""

    app: str
    tree: str


class ReleasePhase(NamedTuple):
    """The manifest's `release` command for a release: a verified backup first (when the app has a
    database and a release before this one), then the command as the app, in the new tree."""

    release: str  # the release's id


class LiveRecord(NamedTuple):
    """Mark the run's release (as the release phase left it) live in its record."""

    release: str


class RemoveTrees(NamedTuple):
    app: str
    trees: tuple[str, ...]


class WriteSecret(NamedTuple):
    folder: Path
    key: str
    value: object  # a secret.Secret, which masks itself in a repr


class Record(NamedTuple):
    """Facts for ripdep's state, written when this point of the plan has been applied."""

    fields: tuple[tuple[str, object], ...]

    @classmethod
    def of(cls, **fields) -> "Record":
        return cls(tuple(sorted(fields.items())))


class Claim(NamedTuple):
    """Record the app's route, re-checked under the host lock (a parallel deploy may have taken it)."""

    key: str


class CaddySwap(NamedTuple):
    """Write the snippets and reload Caddy; on a failed reload put the previous ones back."""

    wanted: dict
    previous: dict

    def __repr__(self) -> str:
        return f"CaddySwap({', '.join(map(str, self.wanted))})"


Op = (WriteFile | EnsureDir | PgHba | RemoveFile | RemoveTree | Symlink | Systemctl | Sql | CreateUser | ModifyUser | DeleteUser
      | InstallCode | InstallTree | SwitchCode | ReleasePhase | LiveRecord | RemoveTrees | WriteSecret | Record | Claim | CaddySwap)


@dataclass
class Change:
    id: str  # "unit:ripdep-hello.service"
    action: Action
    detail: str  # one human sentence, never a secret value
    diff: str = ""  # unified diff, secrets masked
    ops: tuple = field(default=(), repr=False, compare=False)  # what apply.apply_op carries out

    def __post_init__(self) -> None:
        self.action = Action(self.action)  # a typo'd action fails here, not in a report

    def then(self, *ops) -> "Change":
        """The same change doing more after what it already does."""
        self.ops = (*self.ops, *ops)
        return self

    def as_dict(self) -> dict:
        return {"id": self.id, "action": self.action.value, "detail": self.detail}


@dataclass
class Step:
    """The outcome of planning one resource: its id, what it found, and what must change."""

    id: str
    changes: list[Change]
    note: str = ""  # why nothing changes, or a fact worth showing (the unit's exposure score)

    @property
    def changed(self) -> bool:
        return bool(self.changes)
