"""Operating deployed apps: list and logs. (start, stop and restart are desired states handed to
the deploy engine: engine.START, STOP, RESTART. `stop` records desired=stopped *before* it stops
and disables the unit, so the app stays stopped across a reboot and a later deploy.)"""

from __future__ import annotations

import os

from ripdep import names
from ripdep.errors import BadInput, UnknownApp
from ripdep.paths import PATHS, Paths


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


def log_units(app: str, process: str | None, job: str | None, paths: Paths = PATHS) -> list[str]:
    """The units whose journal `ripdep logs` shows: the web unit, or one [processes] entry (every
    instance) or one [cron] job, as the installed manifest names them."""
    if process is None and job is None:
        return [paths.unit_name(app)]
    from ripdep.spec import load_manifest

    spec = load_manifest(app, paths.manifest(app))
    if process is not None:
        if process not in spec.processes:
            raise BadInput(f"--process: app {app} has no process {process!r}",
                           hint=f"its processes: {', '.join(sorted(spec.processes)) or 'none'}")
        return paths.process_unit_names(app, process, spec.processes[process].count)
    assert job is not None
    if job not in spec.cron:
        raise BadInput(f"--job: app {app} has no job {job!r}", hint=f"its jobs: {', '.join(sorted(spec.cron)) or 'none'}")
    return [paths.job_unit_name(app, job)]


def exec_logs(app: str, lines: int, follow: bool, since: str | None, paths: Paths = PATHS,
              process: str | None = None, job: str | None = None) -> None:
    """Replace this process with journalctl for the app's unit (so -f streams and ^C works)."""
    require_app(app, paths)
    if process is not None and job is not None:
        raise BadInput("--process and --job: give one of them")
    units = [arg for unit in log_units(app, process, job, paths) for arg in ("--unit", unit)]
    argv = ["journalctl", *units, "--lines", str(lines), "--no-pager", "--output", "short-iso"]
    if follow:
        argv.append("--follow")
    if since:
        argv.append(f"--since={names.check_plain_text(since, '--since')}")  # one word, never an option
        # journalctl's own refusal would exit 1 ("internal"): a bad value is bad input, said first
        from ripdep.host.proc import run

        if run(["systemd-analyze", "timestamp", "--", since], check=False).returncode != 0:
            raise BadInput(f"--since: {since!r} is not a time journalctl understands",
                           hint='e.g. --since "1 hour ago", --since today, --since "2026-11-29 10:00"')
    os.execvp("journalctl", argv)
