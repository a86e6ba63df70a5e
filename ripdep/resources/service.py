"""service:ripdep-NAME.service — daemon-reload, enabled, running, as the recorded desired state says.

Reactions are derived here from what the plan changes, so the plan tells the truth about restarts:
- daemon-reload when the unit file changes (or systemd says it needs one);
- a first deploy starts once (never start-then-restart);
- restart only when the unit, env or code differ from what the running process was started with
  (recorded in ripdep's state, so a crash between writing a file and restarting still restarts);
- desired=stopped (from `ripdep stop`) is honoured: the unit is neither enabled nor started.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ripdep.context import Context
from ripdep.host import fs, systemd
from ripdep.paths import Paths
from ripdep.resources import Change, Step

WANTS = "multi-user.target.wants"


def started_hash(ctx: Context) -> str:
    return hashlib.sha256(f"{ctx.unit_text}\0{ctx.env_text}\0{ctx.code_hash}".encode()).hexdigest()


def is_active(state: systemd.UnitState | None) -> bool:
    return state is not None and state.active_state in ("active", "activating", "reloading")


def diff_service(unit: str, desired: str, state: systemd.UnitState | None, unit_file_changes: bool,
                 enabled_link: bool, recorded_hash: str, new_hash: str) -> list[Change]:
    """Pure: the systemd actions that take the unit from `state` to `desired`."""
    rid = f"service:{unit}"
    changes = []
    running = desired == "running"
    if running != enabled_link:
        changes.append(Change(rid, "enable", f"enable {unit} (start at boot)") if running
                       else Change(rid, "disable", f"disable {unit} (ripdep stop was recorded)"))
    if unit_file_changes or (state is not None and state.need_daemon_reload) or changes:
        changes.append(Change(rid, "daemon-reload", "reload systemd's unit files"))
    if not running:
        return changes
    if not is_active(state):
        changes.append(Change(rid, "start", f"start {unit}"))
    elif recorded_hash != new_hash:
        changes.append(Change(rid, "restart", f"restart {unit} (unit, env or code changed)"))
    return changes


def wants_link(paths: Paths, app: str) -> Path:
    return paths.units / WANTS / paths.unit_name(app)


def enable(paths: Paths, app: str) -> None:
    """What `systemctl enable` does for WantedBy=multi-user.target, without its own daemon-reload
    (~100 ms); the caller's planned daemon-reload follows."""
    fs.symlink(wants_link(paths, app), paths.unit(app))


def disable(paths: Paths, app: str) -> None:
    fs.remove_file(wants_link(paths, app))


def start_or_restart(paths: Paths, app: str, action: str) -> None:
    # Restart= may have given up earlier (failed), or a burst of quick changes may have used up
    # StartLimitBurst: a start ripdep asks for is deliberate, so the app and its socket always get a
    # fresh start limit ("not loaded", on a first start, is fine)
    systemd.run_systemctl_quiet("reset-failed", paths.unit_name(app), paths.proxy_socket_name(app))
    systemd.systemctl(action, paths.unit_name(app))


def restart_proxy(paths: Paths, app: str) -> None:
    """A new socket or proxy unit file, or a socket that is not listening, while the app runs on:
    the proxy goes (the socket starts the new one at the next connection) and the socket restarts."""
    socket, proxy = paths.proxy_socket_name(app), paths.proxy_service_name(app)
    systemd.run_systemctl_quiet("reset-failed", socket, proxy)
    systemd.systemctl("stop", proxy, socket)
    systemd.systemctl("start", socket)


def plan_proxy(ctx: Context, changes: list[Change], proxy_changed: bool) -> None:
    """The socket starts and restarts with the app (PartOf=); only when the app itself is left
    alone does it need a start or restart of its own."""
    if ctx.state.desired != "running" or any(c.action in ("start", "restart") for c in changes):
        return
    socket = ctx.paths.proxy_socket_name(ctx.app)
    if proxy_changed or ctx.bus.read_unit(socket, with_file_state=False).active_state != "active":
        changes.append(Change(f"service:{socket}", "restart", f"restart {socket} (Caddy's way into the app)",
                              run=lambda: restart_proxy(ctx.paths, ctx.app)))


def plan(ctx: Context, unit_file_changes: bool, proxy_changed: bool = False) -> Step:
    unit, paths, app = ctx.unit_name, ctx.paths, ctx.app
    state = ctx.bus.read_unit(unit)
    new_hash = started_hash(ctx)
    changes = diff_service(unit, ctx.state.desired, state, unit_file_changes,
                           os.path.islink(wants_link(paths, app)), ctx.state.started_hash, new_hash)
    for c in changes:
        if c.action == "enable":
            c.run = lambda: enable(paths, app)
        elif c.action == "disable":
            c.run = lambda: disable(paths, app)
        elif c.action == "daemon-reload":
            c.run = systemd.daemon_reload
        else:
            def run(action=c.action):
                start_or_restart(paths, app, action)
                ctx.record(started_hash=new_hash)
            c.run = run
    plan_proxy(ctx, changes, proxy_changed)
    if ctx.state.desired != "running":
        note = f"{unit} stays stopped (ripdep stop was recorded; ripdep start runs it)"
    elif changes:
        note = ""
    else:
        note = f"{unit} is enabled and {state.active_state}"
    return Step(f"service:{unit}", changes, note)
