"""One pipeline for every verb that changes an app: validate the manifest -> read the host -> plan
(Changes as values) -> apply them in order through one dispatcher -> re-read and confirm -> health
check through Caddy. --check stops after the plan. deploy, start, stop and restart are each a desired
state handed to `converge`; the host is an object (`ripdep.host.Host`) so tests can pass a fake."""

from __future__ import annotations

import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ripdep import BUILD, names, render
from ripdep.apply import apply_change
from ripdep.context import Context
from ripdep.errors import ApplyFailed, HealthCheckFailed, PreconditionFailed, RipdepError, UnknownApp
from ripdep.host import Host, http
from ripdep.hostconfig import load_host_config
from ripdep.paths import PATHS, Paths
from ripdep.resources import (Action, Change, Record, Step, code, database, envfile, files, manifest, port, processes,
                              proxy, route, schedule, service, unit, user)
from ripdep.spec import AppSpec, load_manifest
from ripdep.state import AppState

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


@dataclass(frozen=True)
class Verb:
    """What a command wants of an app. `scope` "app" plans every resource (deploy); "service" only
    the app's systemd state (start/stop/restart must work while Caddy, PostgreSQL or SSM are down,
    and change nothing else)."""

    desired: str | None = None  # running | stopped; None = as recorded
    scope: str = "app"
    restart: bool = False


DEPLOY, START, STOP, RESTART = Verb(), Verb("running", "service"), Verb("stopped", "service"), \
    Verb("running", "service", restart=True)


def require_root() -> None:
    Host().require_root()


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
        state = ctx.host.active_state(name)
        if state != "active":
            raise PreconditionFailed(f"{name} is {state}, not running; nothing was changed",
                                     hint=f"systemctl start {name}")


def plan_desired(ctx: Context, verb: Verb) -> list[Step]:
    """The recorded desired state, changed first (a crash after it still ends as asked)."""
    if verb.desired is None or verb.desired == ctx.state.desired:
        return []
    rid = f"state:{ctx.app}"
    step = Step(rid, [Change(rid, Action.UPDATE, f"record desired state: {verb.desired}",
                             ops=(Record.of(desired=verb.desired),))])
    ctx.state = ctx.state.with_(desired=verb.desired)  # what the rest of the plan converges to
    return [step]


def plan_all(ctx: Context, manifest_file: Path | None, verb: Verb = DEPLOY) -> list[Step]:
    """Every resource, in apply order. Reads the host, validates candidates, changes nothing: the
    route claim and a new port are chosen here but recorded only when applied (re-checked then,
    under the host lock), so a refused deploy leaves no trace."""
    steps = plan_desired(ctx, verb)
    if verb.scope == "service":
        ctx.port = ctx.state.port
        web = service.plan(ctx, unit_file_changes=False, force_restart=verb.restart, record_hash=False)
        return steps + [web, processes.plan_run(ctx, web, record_hash=False)]
    # the claim first: a taken route refuses the deploy before the secrets are resolved
    ctx.manifest_given = manifest_file is not None
    manifest_step, ctx.manifest_text = manifest.plan(ctx.host, ctx.app, manifest_file, ctx.paths)
    steps += [route.claim(ctx), manifest_step]
    # secrets next: an SSM fetch that fails must stop the run before anything is recorded
    steps.append(envfile.plan_secrets(ctx))
    steps.append(user.plan(ctx))
    steps += database.plan(ctx)
    steps.append(port.plan(ctx))
    steps.append(envfile.plan(ctx))
    steps.append(code.plan(ctx))
    steps.append(files.plan(ctx))  # after the code: a rollback renders the templates of its release
    proxy_step = proxy.plan(ctx)
    steps.append(proxy_step)
    unit_step = unit.plan(ctx)
    steps.append(unit_step)
    extra = processes.plan_files(ctx)
    steps += [extra, code.plan_switch(ctx)]
    web = service.plan(ctx, unit_file_changes=unit_step.changed or proxy_step.changed or extra.changed,
                       proxy_changed=proxy_step.changed)
    steps += [web, processes.plan_run(ctx, web)]
    steps.append(route.plan(ctx))
    steps.append(schedule.plan(ctx))
    return steps


def apply_all(ctx: Context, steps: list[Step], progress) -> list[Step]:
    """Apply every change in order; returns what was applied. A failure carries the steps applied
    before it (error.result), so the report says what did change."""
    crash_after = int(os.environ.get(CRASH_AFTER, "0") or 0)
    applied: list[Step] = []
    count = 0
    for step in steps:
        done = Step(step.id, [], step.note)
        applied.append(done)
        for change in step.changes:
            try:
                try:
                    apply_change(change, ctx)
                except OSError as e:
                    raise ApplyFailed(f"{change.id}: {change.detail} failed: {e}",
                                      hint="fix the cause and run the deploy again: it resumes where it stopped") from None
            except RipdepError as e:
                e.result = RunResult(ctx.app, False, [s for s in applied if s.changes], ctx.url, ctx.port)
                raise
            done.changes.append(change)
            count += 1
            if crash_after and count >= crash_after:
                os.kill(os.getpid(), signal.SIGKILL)
        progress(step)
    return applied


# an app restarted this often by Restart= since the health check began is crash-looping: the
# reason is in the journal already, and waiting for StartLimitBurst or the deadline adds nothing
CRASH_LOOP = 2
# how long an app may run with listeners of its own, none of them on its PORT, before the wait
# ends (a server binds its one port at start; a slow start has no listener at all yet)
WRONG_PORT_AFTER = 3.0


def not_listening(ctx: Context) -> str | None:
    """What the app listens on, if it runs and listens but not on its PORT (else None)."""
    unit = ctx.host.read_unit(ctx.unit_name, with_file_state=False)
    if unit.active_state != "active" or not unit.main_pid:
        return None
    uid = None
    if ctx.spec.egress:  # the host's namespace: only the app's own sockets count
        user = ctx.host.read_user(ctx.app)
        uid = user.uid if user else -1
    ports = sorted({p for p, u in ctx.host.listeners(None if ctx.spec.egress else unit.main_pid)
                    if uid is None or u == uid})
    if not ports or ctx.allocated_port in ports:
        return None
    return f"it listens on port {', '.join(map(str, ports))}, its PORT is {ctx.allocated_port}"


def health_check(ctx: Context, deadline: float) -> http.Probe:
    started = time.monotonic()
    baseline = ctx.host.read_unit(ctx.unit_name, with_file_state=False).n_restarts
    ctx.listening = None

    def gave_up() -> str | None:
        # Restart= gives up after StartLimitBurst crashes: no point waiting for the deadline then
        for name in (ctx.unit_name, ctx.paths.proxy_socket_name(ctx.app)):
            state = ctx.host.active_state(name)
            if state in ("failed", "inactive"):
                return f"{name} is {state}"
        restarts = ctx.host.read_unit(ctx.unit_name, with_file_state=False).n_restarts - baseline
        if restarts >= CRASH_LOOP:
            return f"{ctx.unit_name} crashed and was restarted {restarts} times since the deploy"
        if time.monotonic() - started > WRONG_PORT_AFTER:
            ctx.listening = not_listening(ctx)
            if ctx.listening:
                return ctx.listening
        return None

    target = ctx.spec.health_target(str(ctx.paths.proxy_socket(ctx.app)))
    probe = ctx.host.probe(ctx.url, *target, deadline, gave_up, ctx.spec.health)
    if probe.ok and ctx.spec.egress:
        port.check_answerer(ctx.host, probe, ctx.allocated_port, ctx.app)
    return probe


def converge(app: str, manifest_file: Path | None = None, *, verb: Verb = DEPLOY, check: bool = False,
             paths: Paths = PATHS, progress=lambda step: None, lock: bool = True, host: Host | None = None,
             pin=None) -> RunResult:
    """Take the app to what `verb` asks. lock=False: the caller already holds the app's lock (config
    and secret commands). host: the machine (a fake in tests). pin: a release record to go back to
    (rollback, or the automatic revert), instead of a release from the source."""
    t0 = time.monotonic()
    host = host or Host()
    if manifest_file is None:  # the installed manifest is root's to read
        names.check_app_name(app)
        host.require_root()
    spec = load_spec(app, manifest_file, paths)  # bad input fails here, before the host is read
    render.check_templates()
    host.require_root()
    host.require_systemd()
    settings = load_host_config(paths)
    with host.app_lock(app, paths) if lock else nullcontext():
        state = host.read_state(app, paths)
        if state is None and verb.scope != "app":
            raise UnknownApp(f"app {app!r} is not managed by ripdep",
                             hint="ripdep list shows the apps it manages; deploy one with ripdep deploy APP --manifest FILE")
        ctx = Context(spec, settings, state or AppState(app), host=host, check=check, paths=paths, pin=pin)
        try:
            if verb.scope == "app":
                require_services(ctx)
            result = RunResult(app, check)
            result.steps = plan_all(ctx, manifest_file, verb)
            result.url, result.port = ctx.url, ctx.port
            if check:
                return result
            changed = result.changed
            apply_all(ctx, result.steps, progress)
            if verb.scope == "app":  # every file of the app is now as this build writes it (ripdep status)
                ctx.record(ripdep_version=BUILD)
            try:
                if changed:
                    if verb.scope == "app":
                        ctx.record(last_change=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
                    confirm_converged(ctx, verb)
                if ctx.state.desired == "running":
                    restarted = any(c.action in ("start", "restart") for s in result.steps for c in s.changes)
                    probe = health_check(ctx, settings.health_timeout if restarted or changed else 5)
                    result.health = probe
                    previous = revertible(ctx)
                    why = None if not probe.ok else watch(ctx, previous)
                    if previous is not None and (not probe.ok or why):
                        revert(ctx, result, previous, why or health_failure(ctx, probe).message, progress)
                    if not probe.ok:
                        raise health_failure(ctx, probe)
            except RipdepError as e:
                e.result = e.result or result  # everything was applied: the report must say so
                raise
            result.seconds = time.monotonic() - t0
            return result
        finally:
            ctx.close()


def revertible(ctx: Context):
    """The release to go back to if this run's new release fails: the live one before it (None on a
    first deploy, a rollback, or a run that made no new release)."""
    if ctx.pending is None or ctx.pin is not None:
        return None
    from ripdep.releases import previous_good

    before = previous_good(ctx.releases, ctx.pending.id)  # the records as planned: the live one is among them
    return before if before is not None and ctx.host.is_dir(ctx.paths.releases_root(ctx.app) / before.tree) else None


def watch(ctx: Context, previous) -> str | None:
    """A new release must stay up for the watch window: the same process, no restart, and its
    health check passing at the end. Returns why it did not, or None."""
    if previous is None:
        return None
    seconds = ctx.spec.releases.watch if ctx.spec.releases.watch is not None else ctx.settings.releases_watch
    if seconds <= 0:
        return None
    first = ctx.host.read_unit(ctx.unit_name, with_file_state=False)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        now = ctx.host.read_unit(ctx.unit_name, with_file_state=False)
        if now.active_state != "active" or now.main_pid != first.main_pid or now.n_restarts != first.n_restarts:
            return (f"{ctx.unit_name} did not stay up for the {seconds}s watch: {now.active_state}, "
                    f"{now.n_restarts - first.n_restarts} restart(s)")
    probe = health_check(ctx, 5)
    return None if probe.ok else f"the health check failed at the end of the {seconds}s watch ({probe.error})"


def revert(ctx: Context, result: RunResult, previous, why: str, progress) -> None:
    """Switch back to `previous` (its code and its manifest), restart and health-check it, and raise
    RolledBack saying why and what serves now. The failed release's record keeps the reason."""
    from dataclasses import replace

    from ripdep import releases
    from ripdep.errors import RolledBack

    assert ctx.pending is not None  # revertible() found a release to go back to from it
    failed = replace(ctx.pending, outcome="rolled_back", reason=why[:500])
    releases.write_record(ctx.host, ctx.paths, ctx.app, failed)
    details = [f"failed release {failed.id}: {why}", f"now serving release {previous.id}"]
    if failed.release_ran:
        details.append("its release phase ran: the database may be migrated"
                       + (f"; the backup taken before it is {failed.backup} (ripdep rollback "
                          f"{ctx.app} --with-data --yes restores it)" if failed.backup else ""))
    try:
        with manifest.temporary(previous.id, previous.manifest) as snapshot:
            back = converge(ctx.app, snapshot, lock=False, host=ctx.host, paths=ctx.paths, progress=progress,
                            pin=previous)
    except RipdepError as e:
        e.message = f"release {failed.id} failed ({why}) and switching back to {previous.id} failed too: {e.message}"
        e.result = RunResult(ctx.app, False, result.steps + (e.result.steps if e.result else []), ctx.url, ctx.port,
                             result.health)
        raise
    ctx.state = ctx.host.read_state(ctx.app, ctx.paths) or ctx.state
    error = RolledBack(f"release {failed.id} of {ctx.app} failed ({why}); switched back to release {previous.id}, "
                       "which serves", hint=f"ripdep releases {ctx.app}; ripdep logs {ctx.app}", details=details)
    error.result = RunResult(ctx.app, False, result.steps + back.steps, ctx.url, ctx.port, back.health)
    raise error


def deploy(app: str, manifest_file: Path | None = None, **kw) -> RunResult:
    return converge(app, manifest_file, verb=DEPLOY, **kw)


def remove(app: str, *, check: bool = False, paths: Paths = PATHS, progress=lambda step: None,
           host: Host | None = None, guard=lambda check: [], lock: bool = True) -> RunResult:
    """destroy: desired = absent, through the same plan, dispatcher and confirmation as a deploy.
    `guard(check)` runs under the app's lock before anything is planned (destroy's backup rule) and
    returns steps to show (which backup is kept); it raises to refuse. lock=False: the caller holds
    the app's lock (a restore taking back the app it had just created)."""
    from ripdep.resources import absent  # only destroy needs it (~10 ms of every deploy's imports)

    names.check_app_name(app)
    host = host or Host()
    host.require_root()
    if not paths.manifest(app).exists() and host.read_state(app, paths) is None:
        raise UnknownApp(f"app {app!r} is not managed by ripdep")
    host.require_systemd()
    with host.app_lock(app, paths) if lock else nullcontext():
        kept = guard(check)
        # only the name matters to removal: a broken or missing manifest must not block a destroy
        spec = AppSpec(app, paths.manifest(app), paths.code(app), ("/bin/true",))
        ctx = Context(spec, load_host_config(paths), host.read_state(app, paths) or AppState(app), host=host,
                      check=check, paths=paths)
        try:
            result = RunResult(app, check, absent.plan(host, paths, app))
            if not check:
                apply_all(ctx, result.steps, progress)
                left = [c for s in absent.plan(host, paths, app) for c in s.changes]
                if left:
                    raise ApplyFailed(f"{app} was not removed completely: {left[0].id} is still there",
                                      details=[f"{c.id}: {c.detail}" for c in left])
            for step in kept:
                progress(step)
            result.steps += kept
            return result
        finally:
            ctx.close()


def confirm_converged(ctx: Context, verb: Verb = DEPLOY) -> None:
    """Re-read the host after apply: anything still to do means a step did not take. (SSM values
    are not fetched again: they are not the host, and a second fetch costs a boto3 client.)"""
    again = Context(ctx.spec, ctx.settings, ctx.state, host=ctx.host, check=True, paths=ctx.paths,
                    ssm_values=ctx.ssm_values)
    settled = Verb(verb.desired, verb.scope)  # a restart asked for is done once
    left = [c for s in plan_all(again, None, settled) for c in s.changes if s.id.split(":")[0] != "manifest"]
    if left:
        raise ApplyFailed(f"the host did not converge: {left[0].id} still needs '{left[0].detail}'",
                          details=[f"{c.id}: {c.detail}" for c in left])


def health_failure(ctx: Context, probe: http.Probe) -> HealthCheckFailed:
    """The failure with its diagnosis: the cause, the journal line that names it, and what to do."""
    from ripdep.diagnose import diagnose

    what = probe.error or f"HTTP {probe.status}"
    check = ctx.spec.health
    details = [f"check: {check.method} {probe.url.rstrip('/')}{check.path} through Caddy -> {what}",
               f"timing: {probe.attempts} attempt(s) over {probe.seconds:.2f}s, last took {probe.latency_ms:.0f} ms"]
    listening = ctx.listening
    try:
        unit_state = ctx.host.read_unit(ctx.unit_name)
        details.append(f"unit: {ctx.unit_name} {unit_state.active_state} ({unit_state.sub_state}), "
                       f"restarts {unit_state.n_restarts}")
        listening = listening or not_listening(ctx)
    except Exception:  # the report must not hide the health failure behind a D-Bus error
        pass
    journal = ctx.host.journal_tail(ctx.unit_name, 300)
    found = diagnose(ctx.app, journal, probe, listening)
    details = found.details() + details
    details += ["last journal lines:"] + [f"  {line}" for line in journal[-20:]]
    return HealthCheckFailed(f"app {ctx.app} failed its health check through Caddy ({what}): {found.cause}",
                             hint=found.hint, details=details)
