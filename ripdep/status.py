"""`ripdep status`: every app's real state in one pass — one D-Bus connection (two property reads
per app), one PostgreSQL query for all database sizes, health checks through Caddy in parallel."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from ripdep import BUILD
from ripdep.errors import RipdepError
from ripdep.host import Host, http, systemd
from ripdep.host.postgres import RoleState, psql_rows, read_roles
from ripdep.hostconfig import load_host_config
from ripdep.paths import PATHS, Paths
from ripdep.resources import port
from ripdep.resources.database import marker
from ripdep.spec import load_manifest
from ripdep.state import read_state

HEALTH_TIMEOUT = 2.0


@dataclass
class AppStatus:
    app: str
    desired: str | None = None
    active_state: str | None = None
    sub_state: str | None = None
    main_pid: int | None = None
    uptime_seconds: int | None = None
    restarts: int | None = None
    memory_bytes: int | None = None
    memory_max_bytes: int | None = None
    port: int | None = None
    url: str | None = None
    health: str = "unchecked"  # ok | failing | unchecked (stopped)
    health_status: int | None = None
    health_latency_ms: float | None = None
    health_error: str | None = None
    database_bytes: int | None = None
    exposure: float | None = None
    last_change: str | None = None
    backup_state: str = "none"  # none | ok | stale (scheduled, too old) | failed (last run failed)
    backup_last: str | None = None  # newest verified backup
    backup_age_seconds: int | None = None
    backup_size_bytes: int | None = None
    backup_error: str | None = None  # of the last run, when it failed
    role_drift: str | None = None  # what the app's PostgreSQL role gained beyond LOGIN in ripdep_apps
    release: str | None = None  # the live release (ripdep releases APP)
    release_previous: str | None = None  # the one a rollback goes back to
    processes: list = field(default_factory=list)  # [processes]: unit, state, restarts, memory
    jobs: list = field(default_factory=list)  # [cron]: job, timer, last_run, result, next_run
    ripdep_version: str | None = None  # the ripdep build whose deploy last converged the app's files
    problem: str | None = None  # why the row could not be read completely

    @property
    def degraded(self) -> bool:
        failed = self.active_state == "failed"
        down = self.desired == "running" and self.active_state not in ("active", "activating", "reloading")
        return (failed or down or self.health == "failing" or self.problem is not None
                or self.backup_state in ("failed", "stale") or self.role_drift is not None
                or any(self.desired == "running" and p["state"] != "active" for p in self.processes)
                or any(j["result"] not in (None, "success") for j in self.jobs))

    @property
    def outdated(self) -> bool:
        """The app runs with files another ripdep build wrote (before an upgrade or a rollback, or
        before builds were recorded): its next deploy rewrites what this build renders differently."""
        return self.desired is not None and self.ripdep_version != BUILD

    def as_dict(self) -> dict:
        return {**asdict(self), "degraded": self.degraded, "outdated": self.outdated}


def collect(apps: list[str], paths: Paths = PATHS) -> list[AppStatus]:
    """Health checks (waiting on the apps) and the database-size query run in threads while the
    main thread reads systemd over D-Bus: the three overlap instead of adding up."""
    systemd.require_systemd()
    host = load_host_config(paths)  # an uninitialised host is a clear error, not an empty table
    rows, targets, extras = [], {}, {}
    for app in apps:
        row = AppStatus(app)
        rows.append(row)
        state = read_state(app, paths)
        if state is not None:
            row.desired, row.port, row.exposure = state.desired, state.port, state.exposure
            row.release = state.release or None
            if state.release:
                from ripdep.releases import previous_good, read_records

                before = previous_good(read_records(Host(), paths, app), state.release)
                row.release_previous = before.id if before else None
            row.last_change = state.last_change or None
            row.ripdep_version = state.ripdep_version or None
        try:
            spec = load_manifest(app, paths.manifest(app))
        except RipdepError as e:
            row.problem = f"manifest: {e.message}"
            continue
        row.url = spec.url
        extras[app] = spec
        _backup_columns(row, spec, host, paths)
        if row.desired == "running" and row.port:
            targets[app] = (row.url, *spec.health_target(str(paths.proxy_socket(app))),
                            row.port if spec.egress else None, app, spec.health)
    with ThreadPoolExecutor(max_workers=min(32, len(targets) + 1)) as pool:
        sizes = pool.submit(_database_sizes, [r.app for r in rows])
        probes = {app: pool.submit(_probe, *target) for app, target in targets.items()}
        _read_units(rows, paths)
        _read_processes_and_jobs(rows, extras, paths)
        for row in rows:
            if row.app in probes:
                _set_health(row, probes[row.app].result())
        _set_sizes(rows, sizes.result())
    return rows


def _backup_columns(row: AppStatus, spec, host, paths: Paths) -> None:
    from ripdep import backup

    verified = [b for b in backup.local_backups(row.app, paths) if b.verified]
    if verified:
        newest = verified[-1]
        row.backup_last, row.backup_age_seconds, row.backup_size_bytes = newest.name, newest.age_seconds, newest.size_bytes
        row.backup_state = "ok"
    last = backup.last_run(row.app, paths)
    if last is not None and not last.get("ok"):
        row.backup_state, row.backup_error = "failed", last.get("error") or "unverified"
    elif spec.backup.schedule and (row.backup_age_seconds is None or row.backup_age_seconds > host.backup_stale_after):
        row.backup_state = "stale"


def _read_units(rows: list[AppStatus], paths: Paths) -> None:
    now_us = time.time() * 1_000_000
    bus = systemd.Bus()
    try:
        for row in rows:
            unit = bus.read_unit(paths.unit_name(row.app), with_file_state=False)
            row.active_state, row.sub_state = unit.active_state, unit.sub_state
            row.main_pid = unit.main_pid or None
            row.restarts, row.memory_bytes, row.memory_max_bytes = unit.n_restarts, unit.memory_current, unit.memory_max
            if unit.active_state == "active" and unit.active_enter_usec:
                row.uptime_seconds = int((now_us - unit.active_enter_usec) / 1_000_000)
    finally:
        bus.close()


def _read_processes_and_jobs(rows: list[AppStatus], specs: dict, paths: Paths) -> None:
    """[processes] and [cron] of the apps that have any (one more D-Bus connection only then)."""
    wanted = [r for r in rows if r.app in specs and (specs[r.app].processes or specs[r.app].cron)]
    if not wanted:
        return
    bus = systemd.Bus()
    try:
        for row in wanted:
            spec = specs[row.app]
            for name, process in spec.processes.items():
                for unit_name in paths.process_unit_names(row.app, name, process.count):
                    unit = bus.read_unit(unit_name, with_file_state=False)
                    row.processes.append({"process": name, "unit": unit_name, "state": unit.active_state,
                                          "sub_state": unit.sub_state, "restarts": unit.n_restarts,
                                          "memory_bytes": unit.memory_current})
            for job in spec.cron:
                found = bus.read_job(paths.job_unit_name(row.app, job), paths.job_unit_name(row.app, job, "timer"))
                row.jobs.append({"job": job, **found})
    finally:
        bus.close()


def _probe(url: str, target: int | str, path: str, host: str | None, egress_port: int | None, app: str,
           check) -> http.Probe:
    probe = http.probe(url, target, path, host, 0, check=check)  # one attempt, no retries
    if probe.ok and egress_port:
        port.check_answerer(Host(), probe, egress_port, app)
    return probe


def _set_health(row: AppStatus, probe: http.Probe) -> None:
    row.health = "ok" if probe.ok else "failing"
    row.health_status, row.health_latency_ms = probe.status, round(probe.latency_ms, 1)
    row.health_error = probe.error or None


def _database_sizes(apps: list[str]) -> tuple[dict[str, int], dict[str, RoleState]] | RipdepError:
    """Database sizes and the app roles' attributes (a role that gained SUPERUSER, CREATEROLE, a
    membership... is how an escaped app would show itself in PostgreSQL)."""
    if not apps:
        return {}, {}
    try:
        rows = psql_rows("SELECT datname, pg_database_size(oid) FROM pg_database "
                         "WHERE datname = ANY (string_to_array(:'names', ','))", names=",".join(apps))
        roles = read_roles(apps)
    except RipdepError as e:
        return e
    return {str(name): int(size or 0) for name, size in rows}, roles


def _set_sizes(rows: list[AppStatus], found: tuple[dict[str, int], dict[str, RoleState]] | RipdepError) -> None:
    for row in rows:
        if isinstance(found, RipdepError):
            row.problem = row.problem or f"database size: {found.message}"
            continue
        sizes, roles = found
        row.database_bytes = sizes.get(row.app)
        role = roles.get(row.app)
        drift = role.drift() if role is not None and role.comment == marker(row.app) else []
        row.role_drift = ", ".join(drift) or None


# --- rendering -------------------------------------------------------------------------------

def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "K", "M", "G"):
        if size < 1024 or unit == "G":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return "-"


def human_duration(s: int | None) -> str:
    if s is None:
        return "-"
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60}m"
    if s >= 60:
        return f"{s // 60}m{s % 60}s"
    return f"{s}s"


COLUMNS = ("APP", "DESIRED", "STATE", "PID", "UP", "RESTARTS", "MEMORY", "PORT", "HEALTH", "DB", "EXPOSURE",
           "LAST DEPLOY", "BACKUP", "URL")


def backup_cell(r: AppStatus) -> str:
    if r.backup_state == "failed":
        return "FAILED"
    if r.backup_last is None:
        return "STALE (none)" if r.backup_state == "stale" else "none"
    cell = f"{human_duration(r.backup_age_seconds)} ago {human_bytes(r.backup_size_bytes)}"
    return f"STALE {cell}" if r.backup_state == "stale" else cell


def table(rows: list[AppStatus], colour: bool) -> str:
    """The human table. Every app-influenced text (health errors, backup errors) goes through
    report.printable: escape sequences in it are shown, never sent to the terminal."""
    from ripdep.report import printable

    lines: list[tuple[str, ...]] = [COLUMNS]
    for r in rows:
        memory = human_bytes(r.memory_bytes) + (f"/{human_bytes(r.memory_max_bytes)}" if r.memory_max_bytes else "")
        health = r.health if r.health != "ok" else f"ok {r.health_latency_ms:.0f}ms"
        if r.health == "failing":
            health = f"FAILING ({r.health_status or r.health_error})"
        lines.append(tuple(printable(cell) for cell in (r.app, r.desired or "-", f"{r.active_state}/{r.sub_state}", str(r.main_pid or "-"),
                      human_duration(r.uptime_seconds), str(r.restarts if r.restarts is not None else "-"), memory,
                      str(r.port or "-"), health, human_bytes(r.database_bytes),
                      "-" if r.exposure is None else f"{r.exposure:.1f}", r.last_change or "-", backup_cell(r),
                      r.url or "-")))
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    out = []
    for i, line in enumerate(lines):
        text = "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        if colour and i and rows[i - 1].degraded:
            text = f"\033[1;31m{text}\033[0m"
        out.append(text)
    for r in rows:
        if r.problem:
            out.append(printable(f"{r.app}: {r.problem}"))
        if r.backup_error:
            out.append(printable(f"{r.app}: last backup failed: {r.backup_error}"))
        for p in r.processes:
            out.append(printable(f"{r.app}: process {p['unit']} {p['state']}/{p['sub_state']}, restarts {p['restarts']}, "
                                 f"memory {human_bytes(p['memory_bytes'])}"))
        for j in r.jobs:
            out.append(printable(f"{r.app}: job {j['job']} last run {j['last_run'] or 'never'} "
                                 f"({j['result'] or '-'}{', running' if j['running'] else ''}), next {j['next_run'] or '-'}"))
        if r.outdated:
            by = f"ripdep {r.ripdep_version}" if r.ripdep_version else "a ripdep that did not record its build"
            out.append(printable(f"{r.app}: files written by {by}, this is {BUILD} ('ripdep deploy {r.app}' "
                                 "rewrites what changed)"))
        if r.role_drift:
            out.append(printable(f"{r.app}: PostgreSQL role {r.app} has {r.role_drift} (ripdep deploy {r.app} "
                                 "resets it; find out how it got there)"))
    return "\n".join(out)
