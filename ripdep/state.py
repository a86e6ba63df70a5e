"""ripdep's own record per app: /var/lib/ripdep/state/NAME.toml (tomli-w).

It holds only facts that must survive between runs: the allocated port, the desired state, what the
running process and the live Caddy config were started from, and the last changing deploy. Never a
timestamp that moves on a no-change run.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, replace

from ripdep.host import fs
from ripdep.paths import PATHS, Paths

MARKER = "# managed by ripdep: state of app {app}\n"


@dataclass(frozen=True)
class AppState:
    app: str
    port: int | None = None
    desired: str = "running"  # running | stopped
    started_hash: str = ""  # hash of unit+env+code the running process was (re)started with
    route: str = ""  # the path ("/hello/") or "host:NAME" this app claims; unique on the host
    caddy_hash: str = ""  # hash of the snippet last loaded into Caddy successfully
    exposure: float | None = None  # systemd-analyze security score of the unit as last written
    last_change: str = ""  # UTC time of the last deploy that changed something
    release: str = ""  # the live release's id (ripdep/releases.py)
    pinned: bool = False  # a rollback chose the live release: deploys keep it until one installs a manifest
    process_hashes: dict = field(default_factory=dict)  # unit -> what that [processes] unit was started with
    ripdep_version: str = ""  # the ripdep build (ripdep.BUILD) whose deploy last converged the app's files

    def with_(self, **kw) -> "AppState":
        return replace(self, **kw)


def read_state(app: str, paths: Paths = PATHS) -> AppState | None:
    try:
        data = tomllib.loads(paths.state(app).read_text())
    except FileNotFoundError:
        return None
    known = {k: v for k, v in data.items() if k in AppState.__dataclass_fields__}
    return AppState(**{**known, "app": app})


def render_state(state: AppState) -> bytes:
    import tomli_w

    data = {k: v for k, v in asdict(state).items() if v is not None and k != "app"}
    return (MARKER.format(app=state.app) + tomli_w.dumps(data)).encode()


def write_state(state: AppState, paths: Paths = PATHS) -> bool:
    """Write only when the bytes differ (a no-change run leaves the file and its mtime alone)."""
    content = render_state(state)
    path = paths.state(state.app)
    if fs.read_file(path).content == content:
        return False
    fs.ensure_dir(paths.state_root, mode=0o700)
    fs.write_file(path, content, mode=0o600)
    return True


def all_states(paths: Paths = PATHS) -> list[AppState]:
    try:
        names = sorted(p.stem for p in paths.state_root.glob("*.toml"))
    except FileNotFoundError:
        return []
    return [s for s in (read_state(n, paths) for n in names) if s is not None]
