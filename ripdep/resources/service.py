"""service:ripdep-NAME.service — daemon-reload, enabled, running, as the recorded desired state says.

Reactions are derived here from what the plan changes, so the plan tells the truth about restarts:
- daemon-reload when the unit file changes (or systemd says it needs one);
- a first deploy starts once (never start-then-restart);
- restart only when the unit, env or code differ from what the running process was started with
  (recorded in ripdep's state, so a crash between writing a file and restarting still restarts);
- desired=stopped (from `ripdep stop`) is honoured: nothing is enabled or started.
"""

from __future__ import annotations

import hashlib
import os

from ripdep.context import Context
from ripdep.host import fs, systemd
from ripdep.resources import Change, Step

WANTS = "multi-user.target.wants"


def started_hash(ctx: Context) -> str:
    return hashlib.sha256(f"{ctx.unit_text}\0{ctx.env_text}\0{ctx.code_hash}".encode()).hexdigest()


def diff_service(unit: str, desired: str, state: systemd.UnitState | None, unit_file_changes: bool,
                 enabled_link: bool, recorded_hash: str, new_hash: str) -> list[Change]:
    """Pure: the systemd actions that take the unit from `state` to `desired`."""
    rid = f"service:{unit}"
    changes = []
    if desired == "running" and not enabled_link:
        changes.append(Change(rid, "enable", f"enable {unit} (start at boot)"))
    if unit_file_changes or (state is not None and state.need_daemon_reload) or changes:
        changes.append(Change(rid, "daemon-reload", "reload systemd's unit files"))
    if desired != "running":
        return changes
    active = state is not None and state.active_state in ("active", "activating", "reloading")
    if not active:
        changes.append(Change(rid, "start", f"start {unit}"))
    elif recorded_hash != new_hash:
        changes.append(Change(rid, "restart", f"restart {unit} (unit, env or code changed)"))
    return changes


def plan(ctx: Context, unit_file_changes: bool) -> Step:
    unit = ctx.unit_name
    link = ctx.paths.units / WANTS / unit
    state = ctx.bus.read_unit(unit)
    new_hash = started_hash(ctx)
    changes = diff_service(unit, ctx.state.desired, state, unit_file_changes, os.path.islink(link),
                           ctx.state.started_hash, new_hash)
    for c in changes:
        if c.action == "enable":
            c.run = lambda: _enable(link, ctx.paths.unit(ctx.app))
        elif c.action == "daemon-reload":
            c.run = systemd.daemon_reload
        else:
            def start_or_restart(action=c.action):
                if state.active_state == "failed":
                    systemd.systemctl("reset-failed", unit)
                systemd.systemctl(action, unit)
                ctx.record(started_hash=new_hash)
            c.run = start_or_restart
    note = f"{unit} is {state.active_state} ({state.sub_state})" if state.load_state == "loaded" else ""
    if not changes and ctx.state.desired == "running":
        note = f"{unit} is enabled and {state.active_state}"
    elif not changes:
        note = f"{unit} stays stopped (ripdep stop was recorded)"
    return Step(f"service:{unit}", changes, note)


def _enable(link, target) -> None:
    """What `systemctl enable` does for WantedBy=multi-user.target, without its extra daemon-reload
    (the planned daemon-reload follows)."""
    fs.ensure_dir(link.parent, mode=0o755)
    tmp = link.with_name(f".{link.name}.tmp")
    fs.remove_file(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, link)
