"""service:ripdep-NAME.service — daemon-reload, enabled, running, as the recorded desired state says.

Reactions are derived here from what the plan changes, so the plan tells the truth about restarts:
- daemon-reload when the unit file changes (or systemd says it needs one);
- a first deploy starts once (never start-then-restart);
- restart only when the unit, env or code differ from what the running process was started with
  (recorded in ripdep's state, so a crash between writing a file and restarting still restarts);
- desired=stopped (from `ripdep stop`) is honoured: the unit is stopped, neither enabled nor started.
`enable` is what `systemctl enable` does for WantedBy=multi-user.target (a symlink), without its
own daemon-reload (~100 ms): the planned daemon-reload follows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ripdep.context import Context
from ripdep.host import systemd
from ripdep.paths import Paths
from ripdep.resources import Action, Change, Record, RemoveFile, Step, Symlink, Systemctl

WANTS = "multi-user.target.wants"


def started_hash(ctx: Context) -> str:
    """What the running process was started with; [files] count only when there are any (so an app
    without them keeps the hash it was started with before they existed)."""
    files = f"\0{ctx.files_digest}" if ctx.files_digest else ""
    return hashlib.sha256(f"{ctx.unit_text}\0{ctx.env_text}\0{ctx.code_hash}{files}".encode()).hexdigest()


ACTIVE = ("active", "activating", "reloading")  # ActiveState= values of a unit that runs or is starting


def is_active(state: systemd.UnitState | None) -> bool:
    return state is not None and state.active_state in ACTIVE


def diff_service(unit: str, desired: str, state: systemd.UnitState | None, unit_file_changes: bool,
                 enabled_link: bool, recorded_hash: str, new_hash: str) -> list[Change]:
    """Pure: the systemd actions that take the unit from `state` to `desired`."""
    rid = f"service:{unit}"
    changes = []
    running = desired == "running"
    if running != enabled_link:
        changes.append(Change(rid, Action.ENABLE, f"enable {unit} (start at boot)") if running
                       else Change(rid, Action.DISABLE, f"disable {unit} (ripdep stop was recorded)"))
    # A unit systemd has never loaded (not-found, so no old text in memory) is read from disk when
    # first started: systemd 252 retries loading a not-found unit once its unit folders changed
    # (~150 ms of daemon-reload saved on a first deploy). Its wants link only matters at boot.
    brand_new = state is not None and state.load_state == "not-found" and not state.need_daemon_reload
    if (unit_file_changes or (state is not None and state.need_daemon_reload) or changes) and not brand_new:
        changes.append(Change(rid, Action.DAEMON_RELOAD, "reload systemd's unit files"))
    if not running:
        if state is not None and (is_active(state) or state.active_state == "failed"):
            changes.append(Change(rid, Action.STOP, f"stop {unit}"))
        return changes
    if not is_active(state):
        changes.append(Change(rid, Action.START, f"start {unit}"))
    elif recorded_hash != new_hash:
        changes.append(Change(rid, Action.RESTART, f"restart {unit} (unit, env or code changed)"))
    return changes


def wants_link(paths: Paths, app: str) -> Path:
    return paths.units / WANTS / paths.unit_name(app)


def start_ops(paths: Paths, app: str, action: str) -> tuple:
    """Restart= may have given up earlier (failed), or a burst of quick changes may have used up
    StartLimitBurst: a start ripdep asks for is deliberate, so the app and its socket always get a
    fresh start limit ("not loaded", on a first start, is fine). A proxy that a request started while
    the app was down sits in a network namespace of its own (systemd 252 does not move it into the
    app's when the app starts later): it goes first, and the next request starts one in the app's."""
    return (Systemctl(("reset-failed", paths.unit_name(app), paths.proxy_socket_name(app)), quiet=True),
            Systemctl(("stop", paths.proxy_service_name(app)), quiet=True),
            Systemctl((action, paths.unit_name(app))))


def stop_ops(paths: Paths, app: str) -> tuple:
    """Stop (its socket goes with it: PartOf=) and forget a failure, so a stopped app is just stopped."""
    return (Systemctl(("stop", paths.unit_name(app))),
            Systemctl(("reset-failed", paths.unit_name(app), paths.proxy_socket_name(app)), quiet=True))


def restart_proxy_ops(paths: Paths, app: str) -> tuple:
    """A new socket or proxy unit file, or a socket that is not listening, while the app runs on:
    the proxy goes (the socket starts the new one at the next connection) and the socket restarts."""
    socket, proxy = paths.proxy_socket_name(app), paths.proxy_service_name(app)
    return (Systemctl(("reset-failed", socket, proxy), quiet=True), Systemctl(("stop", proxy, socket)),
            Systemctl(("start", socket)))


def plan_proxy(ctx: Context, changes: list[Change], proxy_changed: bool) -> None:
    """The socket starts and restarts with the app (PartOf=); only when the app itself is left
    alone does it need a start or restart of its own."""
    if ctx.state.desired != "running" or any(c.action in ("start", "restart") for c in changes):
        return
    socket = ctx.paths.proxy_socket_name(ctx.app)
    if proxy_changed or ctx.host.active_state(socket) != "active":
        changes.append(Change(f"service:{socket}", Action.RESTART, f"restart {socket} (Caddy's way into the app)",
                              ops=restart_proxy_ops(ctx.paths, ctx.app)))


def plan(ctx: Context, unit_file_changes: bool, proxy_changed: bool = False, force_restart: bool = False,
         record_hash: bool = True) -> Step:
    """record_hash=False (start/stop/restart, which render nothing): what the process is started
    with stays as recorded, and only a restart asked for (force_restart) restarts it."""
    unit, paths, app = ctx.unit_name, ctx.paths, ctx.app
    state = ctx.host.read_unit(unit)
    new_hash = started_hash(ctx) if record_hash else ctx.state.started_hash
    changes = diff_service(unit, ctx.state.desired, state, unit_file_changes,
                           ctx.host.is_link(wants_link(paths, app)), ctx.state.started_hash, new_hash)
    if force_restart and ctx.state.desired == "running" and not any(c.action in ("start", "restart") for c in changes):
        changes.append(Change(f"service:{unit}", Action.RESTART, f"restart {unit} (asked for)"))
    for c in changes:
        if c.action == "enable":
            c.then(Symlink(wants_link(paths, app), paths.unit(app)))
        elif c.action == "disable":
            c.then(RemoveFile(wants_link(paths, app)))
        elif c.action == "daemon-reload":
            c.then(Systemctl(("daemon-reload",)))
        elif c.action == "stop":
            c.then(*stop_ops(paths, app))
        else:
            c.then(*start_ops(paths, app, c.action), *((Record.of(started_hash=new_hash),) if record_hash else ()))
    plan_proxy(ctx, changes, proxy_changed)
    if ctx.state.desired != "running":
        note = f"{unit} stays stopped (ripdep stop was recorded; ripdep start runs it)"
    elif changes:
        note = ""
    else:
        note = f"{unit} is enabled and {state.active_state}"
    return Step(f"service:{unit}", changes, note)
