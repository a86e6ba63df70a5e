"""deploy = validate the manifest -> read the host -> plan (pure diffs) -> apply in order ->
re-read and confirm -> health check through Caddy. --check stops after the plan."""

from __future__ import annotations

import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ripdep import names, render
from ripdep.context import Context
from ripdep.errors import ApplyFailed, HealthCheckFailed, PreconditionFailed, UnknownApp
from ripdep.host import http, systemd
from ripdep.hostconfig import load_host_config
from ripdep.lock import app_lock
from ripdep.paths import PATHS, Paths
from ripdep.resources import (Step, code, database, envfile, manifest, port, proxy, route, schedule, service, unit,
                              user)
from ripdep.spec import AppSpec, load_manifest
from ripdep.state import AppState, read_state

# test hook: SIGKILL ourselves after this many applied changes (tests/integration/test_crash.py)
CRASH_AFTER = "RIPDEP_TEST_CRASH_AFTER"


@dataclass
class RunResult:
    """What a deploy, start, stop or restart did: its steps, where the app answers, its health."""

    app: str
    check: bool
    steps: list[Step] = field(default_factory=list)
    url: str | None = None
    port: int | None = None
    health: http.Probe | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)


def require_root() -> None:
    if os.geteuid() != 0:
        raise PreconditionFailed("ripdep must run as root", hint="use sudo ripdep ...")


def load_spec(app: str, manifest_file: Path | None, paths: Paths) -> AppSpec:
    names.check_app_name(app)
    if manifest_file is not None:
        return load_manifest(app, manifest_file)
    installed = paths.manifest(app)
    if not installed.exists():
        raise UnknownApp(f"app {app!r} is not managed by ripdep (no manifest at {installed})",
                         hint=f"install one: ripdep deploy {app} --manifest path/to/ripdep.toml")
    return load_manifest(app, installed)


def require_services(ctx: Context) -> None:
    """Caddy (and PostgreSQL for an app with a database) must be running before anything changes:
    otherwise the deploy would apply everything and then fail its health check (exit 4)."""
    needed = ["caddy.service"] + (["postgresql.service"] if ctx.spec.database else [])
    for name in needed:
        state = ctx.bus.read_unit(name, with_file_state=False)
        if state.active_state != "active":
            raise PreconditionFailed(f"{name} is {state.active_state}, not running; nothing was changed",
                                     hint=f"systemctl start {name}")


def plan_all(ctx: Context, manifest_file: Path | None) -> list[Step]:
    """Every resource, in apply order. Reads the host, validates candidates, changes nothing: the
    route claim and a new port are chosen here but recorded only when applied (re-checked then,
    under the host lock), so a refused deploy leaves no trace."""
    # the claim first: a taken route refuses the deploy before the secrets are resolved
    steps = [route.claim(ctx), manifest.plan(ctx.app, manifest_file, ctx.paths)]
    # secrets next: an SSM fetch that fails must stop the run before anything is recorded
    steps.append(envfile.plan_secrets(ctx))
    steps.append(user.plan(ctx))
    steps += database.plan(ctx)
    steps.append(port.plan(ctx))
    steps.append(envfile.plan(ctx))
    steps.append(code.plan(ctx))
    proxy_step = proxy.plan(ctx)
    steps.append(proxy_step)
    unit_step = unit.plan(ctx)
    steps.append(unit_step)
    steps.append(service.plan(ctx, unit_file_changes=unit_step.changed or proxy_step.changed,
                              proxy_changed=proxy_step.changed))
    steps.append(route.plan(ctx))
    steps.append(schedule.plan(ctx))
    return steps


def apply_all(steps: list[Step], progress) -> None:
    crash_after = int(os.environ.get(CRASH_AFTER, "0") or 0)
    applied = 0
    for step in steps:
        for change in step.changes:
            if change.run is not None:
                try:
                    change.run()
                except OSError as e:
                    raise ApplyFailed(f"{change.id}: {change.detail} failed: {e}",
                                      hint="fix the cause and run the deploy again: it resumes where it stopped") from None
                applied += 1
                if crash_after and applied >= crash_after:
                    os.kill(os.getpid(), signal.SIGKILL)
        progress(step)


def health_check(ctx: Context, deadline: float) -> http.Probe:
    def gave_up() -> str | None:
        # Restart= gives up after StartLimitBurst crashes: no point waiting for the deadline then
        for name in (ctx.unit_name, ctx.paths.proxy_socket_name(ctx.app)):
            state = ctx.bus.read_unit(name, with_file_state=False)
            if state.active_state in ("failed", "inactive"):
                return f"{name} is {state.active_state}"
        return None

    probe = http.probe(ctx.url, *ctx.spec.health_target(str(ctx.paths.proxy_socket(ctx.app))), deadline, gave_up)
    if probe.ok and ctx.spec.egress:
        port.check_answerer(probe, ctx.port, ctx.app)
    return probe


def deploy(app: str, manifest_file: Path | None = None, *, check: bool = False, paths: Paths = PATHS,
           progress=lambda step: None, lock: bool = True) -> RunResult:
    """lock=False: the caller already holds the app's lock (config and secret commands)."""
    t0 = time.monotonic()
    spec = load_spec(app, manifest_file, paths)  # bad input fails here, before the host is read
    render.check_templates()
    require_root()
    systemd.require_systemd()
    host = load_host_config(paths)
    with app_lock(app, paths) if lock else nullcontext():
        state = read_state(app, paths) or AppState(app)
        ctx = Context(spec, host, state, check=check, paths=paths)
        try:
            require_services(ctx)
            result = RunResult(app, check)
            result.steps = plan_all(ctx, manifest_file)
            result.url, result.port = ctx.url, ctx.port
            if check:
                return result
            changed = result.changed
            apply_all(result.steps, progress)
            if changed:
                ctx.record(last_change=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
                confirm_converged(ctx)
            if ctx.state.desired == "running":
                restarted = any(c.action in ("start", "restart") for s in result.steps for c in s.changes)
                probe = health_check(ctx, host.health_timeout if restarted or changed else 5)
                result.health = probe
                if not probe.ok:
                    raise health_failure(ctx, probe)
            result.seconds = time.monotonic() - t0
            return result
        finally:
            ctx.close()


def confirm_converged(ctx: Context) -> None:
    """Re-read the host after apply: anything still to do means a step did not take. (SSM values
    are not fetched again: they are not the host, and a second fetch costs a boto3 client.)"""
    again = Context(ctx.spec, ctx.host, ctx.state, check=True, paths=ctx.paths, ssm_values=ctx.ssm_values,
                    _bus=ctx._bus, _pg=ctx._pg)
    left = [c for s in plan_all(again, None) for c in s.changes if s.id.split(":")[0] != "manifest"]
    if left:
        raise ApplyFailed(f"the host did not converge: {left[0].id} still needs '{left[0].detail}'",
                          details=[f"{c.id}: {c.detail}" for c in left])


def health_failure(ctx: Context, probe: http.Probe) -> HealthCheckFailed:
    what = probe.error or f"HTTP {probe.status}"
    details = [f"check: GET {probe.url.rstrip('/')}{ctx.spec.health} through Caddy -> {what}",
               f"timing: {probe.attempts} attempt(s) over {probe.seconds:.2f}s, last took {probe.latency_ms:.0f} ms"]
    try:
        unit_state = ctx.bus.read_unit(ctx.unit_name)
        details.append(f"unit: {ctx.unit_name} {unit_state.active_state} ({unit_state.sub_state}), "
                       f"restarts {unit_state.n_restarts}")
    except Exception:  # the report must not hide the health failure behind a D-Bus error
        pass
    details += ["last journal lines:"] + [f"  {line}" for line in systemd.journal_tail(ctx.unit_name)]
    return HealthCheckFailed(f"app {ctx.app} failed its health check through Caddy ({what})",
                             hint=f"ripdep logs {ctx.app}; if the journal shows SIGSYS or a crash at start, "
                                  f"try profile = \"jit\" (docs/hardening.md)", details=details)
