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


def start_or_restart(unit: str, action: str, state: systemd.UnitState | None) -> None:
    if state is not None and state.active_state == "failed":
        systemd.systemctl("reset-failed", unit)  # Restart= gave up earlier: clear its start limit
    systemd.systemctl(action, unit)


def plan(ctx: Context, unit_file_changes: bool) -> Step:
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
                start_or_restart(unit, action, state)
                ctx.record(started_hash=new_hash)
            c.run = run
    if ctx.state.desired != "running":
        note = f"{unit} stays stopped (ripdep stop was recorded; ripdep start runs it)"
    elif changes:
        note = ""
    else:
        note = f"{unit} is enabled and {state.active_state}"
    return Step(f"service:{unit}", changes, note)
