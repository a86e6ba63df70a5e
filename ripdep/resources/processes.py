"""processes:NAME — the app's [processes] (ripdep-NAME.PROC.service, one per instance) and [cron]
jobs (ripdep-NAME.job.JOB.service + .timer): unit files in the app's own sandbox (units/sandbox.j2,
verified and scored like the web unit), then their systemd state.

Grouping is systemd's: each process unit and each timer is WantedBy= the app's unit (a link in
ripdep-NAME.service.wants/, so adding one never changes the web unit) and PartOf= it, so starting the
app starts them, stopping or restarting it stops or restarts them. A job's service is started only
by its timer; a oneshot that is still running is never started twice. Each process restarts only
when what it was started with changes (its unit, the env, the code, the [files]): its hash is
recorded per unit in ripdep's state, like the web unit's.
"""

from __future__ import annotations

import hashlib

from ripdep import render
from ripdep.context import Context
from ripdep.resources import Action, Change, Record, RemoveFile, Step, Symlink, Systemctl
from ripdep.resources.file import DesiredFile, has_marker, plan_file
from ripdep.resources.schedule import check_calendar
from ripdep.resources.service import ACTIVE
from ripdep.resources.unit import validate_unit, verifiable


def desired_units(ctx: Context) -> dict[str, str]:
    credentials = tuple(ctx.secrets) if ctx.spec.delivery == "credentials" else ()
    return {**render.render_process_units(ctx.spec, ctx.paths, credentials),
            **render.render_job_units(ctx.spec, ctx.paths, credentials)}


def unit_names(ctx: Context) -> list[str]:
    """The names the manifest asks for, without rendering them (start/stop/restart render nothing)."""
    names = [u for n, p in ctx.spec.processes.items() for u in ctx.paths.process_unit_names(ctx.app, n, p.count)]
    return names + [ctx.paths.job_unit_name(ctx.app, j, "timer") for j in ctx.spec.cron]


def existing_units(host, paths, app: str) -> list[str]:
    """Process and job units ripdep wrote for this app (its marker), the proxy's aside."""
    prefix, marker = paths.app_units_prefix(app), render.MARKER.format(app=app)
    own = {paths.unit_name(app), paths.proxy_socket_name(app), paths.proxy_service_name(app)}
    return sorted(n for n in host.list_dir(paths.units) or () if n.startswith(prefix) and n not in own
                  and n.endswith((".service", ".timer")) and has_marker(host.read_file(paths.units / n).content, marker))


def pulled_in(name: str) -> bool:
    """Started by the app (a process or a timer), not by a timer (a job's service)."""
    return name.endswith(".timer") or ".job." not in name


def started_hash(ctx: Context, text: str) -> str:
    return hashlib.sha256(f"{text}\0{ctx.env_text}\0{ctx.code_hash}\0{ctx.files_digest}".encode()).hexdigest()


def plan_files(ctx: Context) -> Step:
    """Write, verify and link the wanted units; stop and remove the ones no longer wanted."""
    app, paths, host = ctx.app, ctx.paths, ctx.host
    marker = render.MARKER.format(app=app)
    wanted = desired_units(ctx)
    ctx.extra_units = wanted
    changes: list[Change] = []
    for name, text in wanted.items():
        written = plan_file(host, f"unit:{name}", DesiredFile(paths.units / name, text.encode(), 0o644, marker=marker))
        if written and written[0].action != "fix":
            if name.endswith(".service"):
                validate_unit(host, name, verifiable(ctx, text), ctx.spec.profile)
            else:
                job = name[len(paths.app_units_prefix(app)) + len("job."):-len(".timer")]
                check_calendar(host, ctx.spec.cron[job].schedule, f"cron.{job}.schedule")
        changes += written
        link = paths.app_wants(app) / name
        if pulled_in(name) and not host.is_link(link):
            changes.append(Change(f"unit:{name}", Action.ENABLE, f"start {name} with {ctx.unit_name}",
                                  ops=(Symlink(link, paths.units / name),)))
    hashes = dict(ctx.state.process_hashes)
    for name in existing_units(host, paths, app):
        if name not in wanted:
            hashes.pop(name, None)
            changes.append(Change(f"unit:{name}", Action.REMOVE, f"stop and remove {name}", ops=(
                Systemctl(("stop", name), quiet=True), RemoveFile(paths.app_wants(app) / name),
                RemoveFile(paths.units / name), Systemctl(("reset-failed", name), quiet=True),
                Record.of(process_hashes=dict(hashes)))))
    ctx.process_hashes = hashes
    count = len(ctx.spec.processes), len(ctx.spec.cron)
    return Step(f"processes:{app}", changes, f"{count[0]} process(es), {count[1]} job(s)" if any(count) else "")


def plan_run(ctx: Context, web: Step, record_hash: bool = True) -> Step:
    """Each process and timer running (or stopped) as the app is. The web unit's own start pulls
    them in and its restart restarts them (PartOf=): what is left is a unit that is down, or one
    whose own inputs changed while the web process stays as it is."""
    host, app = ctx.host, ctx.app
    web_restarts = any(c.action in ("start", "restart") for c in web.changes)
    web_stops = any(c.action == "stop" for c in web.changes)
    running = ctx.state.desired == "running"
    hashes = dict(ctx.process_hashes if record_hash else ctx.state.process_hashes)
    texts = ctx.extra_units if record_hash else {}
    changes: list[Change] = []
    for name in unit_names(ctx):
        state = host.active_state(name)
        rid = f"service:{name}"
        new = started_hash(ctx, texts[name]) if record_hash else hashes.get(name, "")
        record = (Record.of(process_hashes={**hashes, name: new}),) if hashes.get(name) != new else ()
        hashes[name] = new
        if not running:
            if not web_stops and (state in ACTIVE or state == "failed"):  # else PartOf= stops it
                changes.append(Change(rid, Action.STOP, f"stop {name}", ops=(
                    Systemctl(("stop", name)), Systemctl(("reset-failed", name), quiet=True))))
        elif state not in ACTIVE:
            changes.append(Change(rid, Action.START, f"start {name}", ops=(
                Systemctl(("reset-failed", name), quiet=True), Systemctl(("start", name)), *record)))
        elif record and not web_restarts:
            changes.append(Change(rid, Action.RESTART, f"restart {name} (its unit, env or code changed)",
                                  ops=(Systemctl(("restart", name)), *record)))
        elif record:  # restarted with the web unit (PartOf=)
            web.changes[-1].then(*record)
    return Step(f"processes-service:{app}", changes)
