"""Operating deployed apps: list, start, stop, restart, logs.

`stop` records desired=stopped in ripdep's state *before* it stops and disables the unit, so the
app stays stopped across a reboot and a later deploy; `start` records desired=running, enables,
starts and waits for the health check; `restart` restarts and waits for it.
"""

from __future__ import annotations

import os
import time

from ripdep import names
from ripdep.context import Context
from ripdep.engine import RunResult, health_check, health_failure, require_root
from ripdep.errors import UnknownApp
from ripdep.host import systemd
from ripdep.hostconfig import load_host_config
from ripdep.lock import app_lock
from ripdep.paths import PATHS, Paths
from ripdep.resources import Change, Step, service
from ripdep.spec import load_manifest
from ripdep.state import read_state


def installed_apps(paths: Paths = PATHS) -> list[str]:
    """The apps ripdep manages: those with an installed manifest (nothing else on the host)."""
    try:
        found = [p.stem for p in paths.manifests.glob("*.toml")]
    except FileNotFoundError:
        return []
    return sorted(n for n in found if names.APP_NAME.fullmatch(n))


def require_app(app: str, paths: Paths = PATHS) -> None:
    names.check_app_name(app)
    if not paths.manifest(app).exists() or not paths.state(app).exists():
        raise UnknownApp(f"app {app!r} is not managed by ripdep",
                         hint="ripdep list shows the apps it manages; deploy one with ripdep deploy APP --manifest FILE")


def app_context(app: str, paths: Paths = PATHS) -> Context:
    """The context of a deployed app, read under its lock (it may have been destroyed meanwhile)."""
    state = read_state(app, paths)
    if state is None or not paths.manifest(app).exists():
        require_app(app, paths)  # raises UnknownApp
    ctx = Context(load_manifest(app, paths.manifest(app)), load_host_config(paths), state, paths=paths)
    ctx.port = ctx.state.port
    return ctx


def _operate(app: str, paths: Paths, body) -> RunResult:
    t0 = time.monotonic()
    require_root()
    require_app(app, paths)
    systemd.require_systemd()
    with app_lock(app, paths):
        ctx = app_context(app, paths)
        try:
            result = RunResult(app, False, url=ctx.url, port=ctx.port)
            body(ctx, result)
            result.seconds = time.monotonic() - t0
            return result
        finally:
            ctx.close()


def _wait_healthy(ctx: Context, result: RunResult) -> None:
    probe = health_check(ctx, ctx.host.health_timeout)
    result.health = probe
    if not probe.ok:
        raise health_failure(ctx, probe)


def stop(app: str, paths: Paths = PATHS) -> RunResult:
    def body(ctx: Context, result: RunResult) -> None:
        rid, unit = f"service:{ctx.unit_name}", ctx.unit_name
        changes = []
        if ctx.state.desired != "stopped":
            ctx.record(desired="stopped")  # first: a crash from here on still ends stopped
            changes.append(Change(f"state:{app}", "update", "record desired state: stopped"))
        if os.path.islink(service.wants_link(paths, app)):
            service.disable(paths, app)
            systemd.daemon_reload()
            changes.append(Change(rid, "disable", f"disable {unit}"))
        state = ctx.bus.read_unit(unit)
        if service.is_active(state) or state.active_state == "failed":
            systemd.systemctl("stop", unit)
            if state.active_state == "failed":
                systemd.systemctl("reset-failed", unit)
            changes.append(Change(rid, "stop", f"stop {unit}"))
        result.steps = [Step(rid, changes, "" if changes else f"{unit} is already stopped and disabled")]
    return _operate(app, paths, body)


def start(app: str, paths: Paths = PATHS) -> RunResult:
    def body(ctx: Context, result: RunResult) -> None:
        rid, unit = f"service:{ctx.unit_name}", ctx.unit_name
        changes = []
        if ctx.state.desired != "running":
            ctx.record(desired="running")
            changes.append(Change(f"state:{app}", "update", "record desired state: running"))
        if not os.path.islink(service.wants_link(paths, app)):
            service.enable(paths, app)
            systemd.daemon_reload()
            changes.append(Change(rid, "enable", f"enable {unit}"))
        state = ctx.bus.read_unit(unit)
        if not service.is_active(state):
            service.start_or_restart(paths, app, "start")
            changes.append(Change(rid, "start", f"start {unit}"))
        result.steps = [Step(rid, changes, "" if changes else f"{unit} is already enabled and running")]
        _wait_healthy(ctx, result)
    return _operate(app, paths, body)


def restart(app: str, paths: Paths = PATHS) -> RunResult:
    def body(ctx: Context, result: RunResult) -> None:
        rid, unit = f"service:{ctx.unit_name}", ctx.unit_name
        service.start_or_restart(paths, app, "restart")
        result.steps = [Step(rid, [Change(rid, "restart", f"restart {unit}")])]
        _wait_healthy(ctx, result)
    return _operate(app, paths, body)


def exec_logs(app: str, lines: int, follow: bool, since: str | None, paths: Paths = PATHS) -> None:
    """Replace this process with journalctl for the app's unit (so -f streams and ^C works)."""
    require_app(app, paths)
    argv = ["journalctl", "--unit", paths.unit_name(app), "--lines", str(lines), "--no-pager", "--output", "short-iso"]
    if follow:
        argv.append("--follow")
    if since:
        argv.append(f"--since={names.check_plain_text(since, '--since')}")  # one word, never an option
    os.execvp("journalctl", argv)
