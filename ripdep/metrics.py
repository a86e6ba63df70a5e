"""Fleet metrics for Prometheus (docs/fleet.md).

- `ripdep.prom` in node_exporter's textfile folder (setting `metrics_textfile_dir`; Debian's
  prometheus-node-exporter reads /var/lib/prometheus/node-exporter): per-app series labelled
  app="NAME", from the same pass `ripdep status` makes. Written whole to a temporary name (not
  *.prom) and renamed, so node_exporter never reads half a file.
- For apps with `metrics = "/path"` in their manifest: a Caddy site on a loopback address only
  (setting `metrics_listen`) that serves each such app's metrics path and nothing else, and a
  Prometheus file_sd file listing them (/var/lib/ripdep/metrics/targets.json) with the app label.
  The app's port is inside its own network namespace: the scrape goes through its proxy socket,
  like Caddy's public route, but never through the public site.

Written by `ripdep fleet-check` (ripdep-fleet.timer, every minute, and started after each command
that changes an app). Label values are escaped; no free text an app controls (health errors) is
put in a label: values are numbers, labels are names ripdep validated.
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from ripdep.paths import PATHS, Paths

TEXTFILE = "ripdep.prom"
TARGETS = "targets.json"
SCRAPE_SITE = "scrape.caddy"
RELEASE_HOOK = None  # a callable app -> live release id, replacing live_release() (tests)


def live_release(app: str, paths: Paths = PATHS) -> str | None:
    """The app's live release as ripdep's state records it (ripdep/releases.py), or None."""
    if RELEASE_HOOK is not None:
        return RELEASE_HOOK(app)
    from ripdep.state import read_state

    state = read_state(app, paths)
    return getattr(state, "release", "") or None


def label_value(value: str) -> str:
    """The exposition format's escaping of a label value: backslash, double quote, line feed."""
    return str(value).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def number(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return repr(float(value)) if isinstance(value, float) else str(int(value))


class Exposition:
    """Series grouped by metric name, each name with its HELP and TYPE once."""

    def __init__(self) -> None:
        self.families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_text: str, labels: dict[str, str], value) -> None:
        if value is None:
            return
        family = self.families.setdefault(name, (kind, help_text, []))
        label_text = ",".join(f'{k}="{label_value(v)}"' for k, v in labels.items())
        family[2].append(f"{name}{{{label_text}}} {number(value)}" if label_text else f"{name} {number(value)}")

    def text(self) -> str:
        out = []
        for name, (kind, help_text, lines) in self.families.items():
            out.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(lines)
        return "\n".join(out) + "\n"


def _timestamp(text: str | None, fmt: str) -> float | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def cpu_seconds(unit: str) -> float | None:
    """CPU time of the unit's cgroup: cgroup v2's cpu.stat (a core file, there without CPUAccounting=;
    /sys/fs/cgroup/unified on a hybrid setup), else v1 cpuacct; None when not accounted."""
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            for line in (Path(root) / "system.slice" / unit / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
        except (OSError, ValueError):
            continue
    for controller in ("cpu,cpuacct", "cpuacct"):
        try:
            return int((Path("/sys/fs/cgroup") / controller / "system.slice" / unit / "cpuacct.usage")
                       .read_text()) / 1e9
        except (OSError, ValueError):
            continue
    return None


def database_connections(apps: list[str]) -> dict[str, int] | None:
    if not apps:
        return {}
    from ripdep.errors import RipdepError
    from ripdep.host.postgres import psql_rows

    try:
        rows = psql_rows("SELECT datname, count(*) FROM pg_stat_activity "
                         "WHERE datname = ANY (string_to_array(:'names', ',')) GROUP BY datname", names=",".join(apps))
    except RipdepError:
        return None
    return {str(name): int(count or 0) for name, count in rows}


def exposition(rows, specs: dict, connections: dict[str, int] | None, paths: Paths = PATHS,
               now: float | None = None, collect_seconds: float | None = None) -> str:
    """The textfile's content for status rows (ripdep.status.AppStatus)."""
    now = time.time() if now is None else now
    e = Exposition()
    e.add("ripdep_apps", "gauge", "Apps ripdep manages on this host.", {}, len(rows))
    for r in rows:
        a = {"app": r.app}
        running = r.desired == "running"
        e.add("ripdep_app_up", "gauge", "1 when the app's web unit is active.", a, r.active_state == "active")
        e.add("ripdep_app_desired_running", "gauge", "1 when the app should run (0: recorded as stopped).", a,
              running)
        e.add("ripdep_app_failed", "gauge", "1 when the app's web unit is in the failed state.", a,
              r.active_state == "failed")
        e.add("ripdep_app_healthy", "gauge", "1 when the app's health check through Caddy passed (absent: not "
              "checked, the app is stopped).", a, None if r.health == "unchecked" else r.health == "ok")
        e.add("ripdep_app_health_latency_seconds", "gauge", "Duration of the last health check.", a,
              None if r.health_latency_ms is None else r.health_latency_ms / 1000)
        e.add("ripdep_app_restarts", "gauge", "Automatic restarts of the web unit since it was last started "
              "(systemd's NRestarts).", a, r.restarts)
        e.add("ripdep_app_uptime_seconds", "gauge", "Seconds since the web unit became active.", a, r.uptime_seconds)
        e.add("ripdep_app_memory_bytes", "gauge", "Memory of the web unit's cgroup.", a, r.memory_bytes)
        e.add("ripdep_app_memory_max_bytes", "gauge", "MemoryMax= of the web unit (absent: no limit).", a,
              r.memory_max_bytes if r.memory_max_bytes and r.memory_max_bytes < 2 ** 63 else None)
        e.add("ripdep_app_cpu_seconds_total", "counter", "CPU time of the web unit's cgroup.", a,
              cpu_seconds(paths.unit_name(r.app)) if r.active_state == "active" else None)
        e.add("ripdep_app_database_bytes", "gauge", "Size of the app's PostgreSQL database.", a, r.database_bytes)
        if connections is not None and r.database_bytes is not None:
            e.add("ripdep_app_database_connections", "gauge", "Open connections to the app's database.", a,
                  connections.get(r.app, 0))
        e.add("ripdep_app_exposure", "gauge", "systemd-analyze security exposure score of the web unit.", a,
              r.exposure)
        e.add("ripdep_app_last_deploy_timestamp_seconds", "gauge", "When a deploy last changed the app.", a,
              _timestamp(r.last_change, "%Y-%m-%dT%H:%M:%SZ"))
        if r.backup_age_seconds is not None:
            e.add("ripdep_app_backup_last_verified_timestamp_seconds", "gauge",
                  "When the newest verified backup was taken.", a, now - r.backup_age_seconds)
        e.add("ripdep_app_backup_age_seconds", "gauge", "Age of the newest verified backup.", a, r.backup_age_seconds)
        e.add("ripdep_app_backup_size_bytes", "gauge", "Size of the newest verified backup.", a, r.backup_size_bytes)
        e.add("ripdep_app_backup_failed", "gauge", "1 when the app's last backup run failed.", a,
              r.backup_state == "failed")
        e.add("ripdep_app_backup_stale", "gauge", "1 when a scheduled app's newest verified backup is older than "
              "backup_stale_after (or there is none).", a, r.backup_state == "stale")
        spec = specs.get(r.app)
        e.add("ripdep_app_backup_scheduled", "gauge", "1 when the manifest has a [backup] schedule.", a,
              None if spec is None else bool(spec.backup.schedule))
        e.add("ripdep_app_drift", "gauge", "1 when ripdep found something on the host that differs from what it "
              "set (kind=role: the app's PostgreSQL role gained an attribute or membership).",
              {**a, "kind": "role"}, r.role_drift is not None)
        e.add("ripdep_app_degraded", "gauge", "1 when `ripdep status` shows the app as degraded.", a, r.degraded)
        e.add("ripdep_app_problem", "gauge", "1 when the app's row could not be read completely.", a,
              r.problem is not None)
        e.add("ripdep_app_scrape_target", "gauge", "1 when the app serves its own metrics (manifest key metrics).",
              a, None if spec is None else spec.metrics is not None)
        release = live_release(r.app, paths)
        if release:
            e.add("ripdep_app_release_info", "gauge", "The app's live release.", {**a, "release": release}, 1)
        for p in r.processes:
            pl = {**a, "process": p["process"], "unit": p["unit"]}
            e.add("ripdep_process_up", "gauge", "1 when a [processes] unit is active.", pl, p["state"] == "active")
            e.add("ripdep_process_restarts", "gauge", "Automatic restarts of a [processes] unit.", pl, p["restarts"])
            e.add("ripdep_process_memory_bytes", "gauge", "Memory of a [processes] unit.", pl, p["memory_bytes"])
        for j in r.jobs:
            jl = {**a, "job": j["job"]}
            e.add("ripdep_job_last_success", "gauge", "1 when a [cron] job's last run succeeded (absent: never "
                  "ran).", jl, None if j.get("result") is None else j["result"] == "success")
            e.add("ripdep_job_running", "gauge", "1 while a [cron] job runs.", jl, bool(j.get("running")))
    e.add("ripdep_metrics_generated_timestamp_seconds", "gauge", "When ripdep wrote this file.", {}, now)
    if collect_seconds is not None:
        e.add("ripdep_metrics_collect_seconds", "gauge", "How long reading the fleet took.", {}, collect_seconds)
    return e.text()


def write_atomic(path: Path, content: bytes, mode: int = 0o644) -> bool:
    """Write path whole (a temporary name without the .prom/.json suffix, then rename); False when
    the content is already there."""
    try:
        if path.read_bytes() == content:
            return False
    except OSError:
        pass
    # The folder may be another user's to write (node_exporter's sits in prometheus's own
    # /var/lib/prometheus): a new file of root's (O_EXCL, never a link, FIFO or file someone put
    # there), its mode set on the descriptor, never by name (a link swapped in would take it).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        os.unlink(tmp)  # left by a run that was killed (the name, never what it points at)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


# --- scraping apps' own metrics -----------------------------------------------------------------

def scrape_targets(specs: dict, listen: str) -> list[dict]:
    """Prometheus file_sd: one target group per app with `metrics`, all on the loopback listener."""
    if not listen:
        return []
    return [{"targets": [listen], "labels": {"app": app, "__metrics_path__": f"/{app}{spec.metrics}"}}
            for app, spec in sorted(specs.items()) if spec.metrics]


def scrape_site(specs: dict, listen: str, paths: Paths = PATHS) -> str | None:
    """The Caddy site that serves GET /APP/<metrics path> of each app with `metrics` on a loopback
    address only, through the app's proxy socket; anything else is 404. None: no such app."""
    apps = [(app, spec) for app, spec in sorted(specs.items()) if spec.metrics]
    if not listen or not apps:
        return None
    host = listen.rsplit(":", 1)[0]
    lines = ["# managed by ripdep: the loopback-only metrics listener (docs/fleet.md); written by ripdep fleet-check",
             f"http://{listen} {{", f"\tbind {host.strip('[]')}"]
    for app, spec in apps:
        lines += [f"\t@{app} {{", "\t\tmethod GET", f"\t\tpath /{app}{spec.metrics}", "\t}",
                  f"\thandle @{app} {{", f"\t\trewrite * {spec.metrics}",
                  f"\t\treverse_proxy unix/{paths.proxy_socket(app)}" + (" {" if spec.route.host else "")]
        if spec.route.host:
            lines += [f"\t\t\theader_up Host {spec.route.host}", "\t\t}"]
        lines.append("\t}")
    lines += ["\thandle {", "\t\trespond \"not a ripdep metrics path\" 404", "\t}", "}"]
    return "\n".join(lines) + "\n"


def validate_site(text: str, paths: Paths = PATHS) -> None:
    """The live Caddyfile with this scrape site in place of the live one must adapt (and not
    swallow a sentinel site after it)."""
    import tempfile

    from ripdep.errors import ValidationFailed
    from ripdep.host.caddy import SENTINEL_HOST
    from ripdep.host.proc import run

    with tempfile.TemporaryDirectory(prefix="ripdep-metrics.") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "metrics").mkdir()
        (tmp / "metrics" / SCRAPE_SITE).write_text(text)
        main = paths.caddyfile.read_text()
        main = main.replace(f"import {paths.caddy_metrics}/*.caddy", f"import {tmp}/metrics/*.caddy")
        main += f"\nhttp://{SENTINEL_HOST} {{\n\trespond \"ok\"\n}}\n"
        (tmp / "Caddyfile").write_text(main)
        result = run(["caddy", "adapt", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile", "--validate"],
                     check=False, env={"HOME": tmp_name, "XDG_DATA_HOME": tmp_name, "XDG_CONFIG_HOME": tmp_name})
        if result.returncode != 0 or SENTINEL_HOST not in result.stdout:
            raise ValidationFailed("the metrics listener's Caddy site does not validate; the live one was kept",
                                   details=result.stderr.strip().splitlines()[-10:])


def install_scrape_site(text: str | None, paths: Paths = PATHS) -> bool:
    """Write (or remove) the scrape site and reload Caddy, only when it differs; under the host
    lock, so a deploy's route change and this never reload Caddy over each other's files."""
    from ripdep.host import caddy
    from ripdep.lock import host_lock

    path = paths.caddy_metrics / SCRAPE_SITE
    current = path.read_text() if path.exists() else None
    if current == text:
        return False
    if f"import {paths.caddy_metrics}/*.caddy" not in paths.caddyfile.read_text():
        raise_missing_import(paths)
    with host_lock(paths):
        if text is not None:
            validate_site(text, paths)
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            write_atomic(path, text.encode())
        else:
            path.unlink(missing_ok=True)
        caddy.reload(paths)
    return True


def raise_missing_import(paths: Paths) -> None:
    from ripdep.errors import PreconditionFailed

    raise PreconditionFailed(f"{paths.caddyfile} does not import {paths.caddy_metrics}/*.caddy",
                             hint="run: sudo ripdep init")


def write_all(rows, specs: dict, settings, paths: Paths = PATHS, collect_seconds: float | None = None) -> dict:
    """Write the textfile, the file_sd targets and the scrape site; what was written, for the journal."""
    done: dict = {"textfile": None, "targets": None, "scrape_site_changed": False}
    if settings.metrics_textfile_dir:
        folder = Path(settings.metrics_textfile_dir)
        if paths.root != Path("/"):
            folder = paths.root / folder.relative_to("/")
        if folder.is_dir():  # node_exporter not installed: nothing reads it
            connections = database_connections([r.app for r in rows if r.database_bytes is not None])
            text = exposition(rows, specs, connections, paths, collect_seconds=collect_seconds)
            write_atomic(folder / TEXTFILE, text.encode())
            done["textfile"] = str(folder / TEXTFILE)
    targets = scrape_targets(specs, settings.metrics_listen)
    paths.metrics_root.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(paths.metrics_root / TARGETS, (json.dumps(targets, indent=1) + "\n").encode())
    done["targets"] = str(paths.metrics_root / TARGETS)
    done["scrape_site_changed"] = install_scrape_site(scrape_site(specs, settings.metrics_listen, paths), paths)
    return done
